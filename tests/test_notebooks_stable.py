"""The tracked tutorials do not change when JupyterLab opens and saves them, and their stored widgets render
after a reload (issue 14).

What JupyterLab 4 does to a notebook it saves was measured in Chromium (the browser test at the end
does it again on every tutorial): the server writes ``nbformat.write``'s JSON, and the front end turns
every integral float into an int (JavaScript has one number type). ``tools/normalize_notebooks.py``
writes the notebooks that way; here every tracked notebook must already be in that form, with the
``python3`` kernel's metadata, and with every widget view's model (and a picture for every matplotlib
canvas) in the stored widget state.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from browser_page import TIMEOUT_MS, VIEWPORT
from lab_server import CHROMIUM, CHROMIUM_ARGS, jupyterlab, lab_env, require_browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
FIX = "python tools/normalize_notebooks.py --execute <notebook> (or without --execute to only rewrite it)"


def _tool():
    spec = importlib.util.spec_from_file_location("normalize_notebooks", REPO / "tools" / "normalize_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


norm = _tool()


def test_the_five_tutorials_are_checked():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_interactive_editing.ipynb", "03_training.ipynb",
                                         "04_evaluation.ipynb", "05_3d_and_dicom.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_tracked_notebook_is_in_jupyterlab_form(path):
    found = norm.problems(path)
    assert not found, f"{path.name}:\n  " + "\n  ".join(found) + f"\nfix: {FIX}"


def _nb(cells, metadata=None):
    nb = nbformat.v4.new_notebook(metadata=metadata or {})
    nb.cells = cells
    return nb


def test_jupyterlab_numbers_and_bytes():
    """Integral floats become ints (as JSON.stringify writes them), others keep Python's repr; indent 1,
    sorted keys, non-ASCII as is, one trailing newline."""
    cell = nbformat.v4.new_code_cell("x", id="c1")
    cell.metadata["tags"] = ["é"]
    nb = _nb([cell], {"zeta": {"a": [1.0, 0.5, -0.0, 1e21, 33.0, 1e-7, True, None]}, "alpha": 2.0})
    out = norm.to_bytes(norm.lab_roundtrip(nb)).decode("utf-8")
    meta = json.loads(out)["metadata"]
    assert meta["zeta"]["a"] == [1, 0.5, 0, 1e21, 33, 1e-7, True, None]
    assert [type(v) for v in meta["zeta"]["a"][:5]] == [int, float, int, float, int]
    assert type(meta["alpha"]) is int
    assert out.endswith("}\n") and not out.endswith("\n\n")
    assert '\n "metadata": {\n  "alpha": 2,\n  "zeta": {' in out  # indent 1, keys sorted
    assert '"é"' in out
    # idempotent: what JupyterLab saved it saves again unchanged
    again = norm.to_bytes(norm.lab_roundtrip(nbformat.reads(out, as_version=nbformat.NO_CONVERT)))
    assert again.decode("utf-8") == out


def _state(refs=(), **state):
    return {"model_name": "VBoxModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
            "state": {"children": [f"IPY_MODEL_{r}" for r in refs], **state}}


def test_normalize_strips_timing_and_keeps_only_state_a_view_needs(tmp_path):
    a, b, c, d = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
    cell = nbformat.v4.new_code_cell("w", id="c1", outputs=[nbformat.v4.new_output(
        "display_data", data={norm.WIDGET_VIEW: {"model_id": a, "version_major": 2, "version_minor": 0},
                              "text/plain": "VBox()"})])
    cell.metadata["execution"] = {"iopub.status.busy": "2026-12-02T14:22:50.667437Z"}
    cell.metadata["tags"] = ["keep"]
    state = {a: _state([b], step=1.0), b: _state(), c: _state([d]), d: _state()}
    nb = _nb([cell], {"widgets": {norm.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}})
    out = norm.normalize(nb)
    assert out.cells[0].metadata == {"tags": ["keep"]}
    assert set(norm.widget_state(out)) == {a, b}  # c and d: never displayed
    assert norm.widget_state(out)[a]["state"]["step"] == 1 and type(norm.widget_state(out)[a]["state"]["step"]) is int
    assert nb.cells[0].metadata["execution"]  # the input is not modified

    # no widget view in any output: no widget state at all
    nb.cells[0].outputs = []
    assert "widgets" not in norm.normalize(nb).metadata


def test_check_names_each_problem(tmp_path):
    spec, lang = norm.kernel_metadata()
    assert spec["name"] == "python3"
    a, gone = "a" * 32, "e" * 32
    canvas = {"model_name": "MPLCanvasModel", "model_module": "jupyter-matplotlib", "model_module_version": "^0.12",
              "state": {"_data_url": None, "toolbar": f"IPY_MODEL_{gone}"}}
    cell = nbformat.v4.new_code_cell("fig.canvas", id="c1", outputs=[nbformat.v4.new_output(
        "display_data", data={norm.WIDGET_VIEW: {"model_id": a, "version_major": 2, "version_minor": 0}})])
    nb = _nb([cell], {"kernelspec": {**spec, "name": "python2"}, "language_info": {**lang, "name": "R"},
                      "widgets": {norm.WIDGET_STATE: {"state": {a: canvas}, "version_major": 2, "version_minor": 0}},
                      "x": 33.0})
    path = tmp_path / "bad.ipynb"
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    found = "\n".join(norm.problems(path))
    for words in ("JupyterLab would save it differently", "'\"x\": 33.0' -> '\"x\": 33'", "kernelspec",
                  "language_info", "not in the stored widget state", "no stored picture"):
        assert words in found, (words, found)

    # the tool rewrites what it can; the rest needs a re-run
    assert norm.main([str(path)]) == 1
    found = "\n".join(norm.problems(path))
    assert "JupyterLab would save" not in found and "kernelspec" in found

    # a notebook in the right form passes, and --check leaves files alone
    good = tmp_path / "good.ipynb"
    good.write_bytes(norm.to_bytes(norm.normalize(_nb([nbformat.v4.new_markdown_cell("hi", id="m1")],
                                                      {"kernelspec": spec, "language_info": lang}))))
    before = good.read_bytes()
    assert norm.problems(good) == [] and norm.main(["--check", str(good)]) == 0 and good.read_bytes() == before


# ------------------------------------------------------------------ JupyterLab itself, in Chromium

@pytest.mark.browser
@pytest.mark.slow
def test_jupyterlab_opens_and_saves_every_tutorial_unchanged(tmp_path):
    """Open each tutorial in JupyterLab (its kernel starts), let the stored widgets render, save (Ctrl+S):
    the file must be byte-identical, the tab never dirty, no "Error displaying widget", and every restored
    matplotlib canvas must show its picture. The notebooks are trusted first (``jupyter trust``, in a
    private data dir), as after ``jupyter trust notebooks/*.ipynb``: untrusted, JupyterLab shows the
    widgets' text instead."""
    require_browser()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab"
    (root / "notebooks").mkdir(parents=True)
    for p in NOTEBOOKS:
        shutil.copyfile(p, root / "notebooks" / p.name)
    env = lab_env(root, JUPYTER_DATA_DIR=str(root / ".data"))
    subprocess.run([sys.executable, "-m", "jupyter", "trust", *map(str, (root / "notebooks").glob("*.ipynb"))],
                   env=env, check=True, capture_output=True)
    with jupyterlab(root, env, tmp_path / "jupyterlab.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        try:
            for src in NOTEBOOKS:
                _open_save_compare(page, url, root / "notebooks" / src.name, src.read_bytes())
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()


def _open_save_compare(page, url, path: Path, tracked: bytes):
    nb = nbformat.reads(tracked.decode("utf-8"), as_version=4)
    views = len(norm.widget_views(nb))
    report = _open_and_render(page, url, path, views)
    if report["errors"] and all(e.endswith("model not found") for e in report["errors"]):
        # an upstream race (ipywidgets #3823): jupyterlab_widgets' WidgetManager starts a restore in its constructor
        # (kernel, then the notebook's stored state) and another when the kernel connects (kernel only), and
        # swallows their errors; when the second marks the manager restored without the stored state, a view stays
        # "model not found" for good (CI, 2 of 05_3d_and_dicom's 3 views, after 60 s). Every view's model is in the
        # stored state (test_tracked_notebook_is_in_jupyterlab_form), so reload once, as a user would; an error
        # that stays after that fails the test.
        print(f"{path.name}: {report['errors']} after the first load; reloading once")
        report = _open_and_render(page, url, path, views)
    assert not report["errors"], f"{path.name}: {report['errors']}"
    assert report["painted"] >= report["canvas_divs"], f"{path.name}: a restored canvas is blank: {report}"
    assert not report["dirty"], f"{path.name}: JupyterLab changed the notebook on opening it"
    mtime = path.stat().st_mtime_ns
    page.locator(".jp-NotebookPanel:visible .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == mtime:
        assert time.monotonic() < deadline, f"{path.name}: JupyterLab did not save"
        page.wait_for_timeout(200)
    page.wait_for_timeout(500)  # the write is atomic (a rename), but let it finish
    assert path.read_bytes() == tracked, f"{path.name}: JupyterLab saved it differently; fix: {FIX}"


def _open_and_render(page, url, path: Path, views: int) -> dict:
    """Open ``path`` alone in JupyterLab, wait for its kernel and its ``views`` widget views, and report errors,
    painted canvases and whether the tab is dirty."""
    page.goto(f"{url}/lab/tree/notebooks/{path.name}?reset", wait_until="domcontentloaded")  # only this tab
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
    page.locator("#jp-main-statusbar", has_text=re.compile(r"\|\s*Idle")).wait_for()  # kernel up: language_info set
    # a widget view's output area is a panel without the data-mime-type attribute rendered outputs have
    panel = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"  # this notebook's tab
    widget_outputs = (f"[...{panel}.querySelectorAll('.jp-OutputArea-output')]"
                      ".filter(o => !o.hasAttribute('data-mime-type'))")
    page.wait_for_function(f"""n => {{
        const outs = {widget_outputs};
        return outs.length === n && outs.every(o => (o.querySelector('.jupyter-widgets')
            || /Error displaying widget/.test(o.innerText)) && !/Loading widget/.test(o.innerText));
    }}""", arg=views)
    # a view can render before the starting kernel's widget-state restore and show "model not found"; the
    # restore then renders it again (ipywidgets PR #2570, jupyterlab #10533): give that 60 s (20 s was too short
    # for 05_3d_and_dicom's views once, with a training run sharing the 2-core CPU); an error that stays is reported
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.wait_for_function(f"() => !{widget_outputs}.some(o => /Error displaying widget/.test(o.innerText))",
                               timeout=60_000)
    except PlaywrightTimeout:
        pass  # the error stayed: the caller sees it in the report
    page.wait_for_timeout(1500)  # canvases draw their stored picture once its image has loaded
    return page.evaluate(f"""() => {{
      const outs = {widget_outputs};
      const canvases = outs.flatMap(o => [...o.querySelectorAll('.jupyter-matplotlib-canvas-div canvas')]);
      return {{
        errors: [...{panel}.querySelectorAll('.jp-OutputArea-output')]
            .filter(o => /Error displaying widget/.test(o.innerText)).map(o => o.innerText.slice(0, 200)),
        painted: canvases.filter(c => c.width > 0
            && c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v > 0)).length,
        canvas_divs: outs.flatMap(o => [...o.querySelectorAll('.jupyter-matplotlib-canvas-div')]).length,
        dirty: document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current')
            .classList.contains('jp-mod-dirty'),
      }};
    }}""")
