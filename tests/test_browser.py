"""Real-browser test: JupyterLab 4 + Chromium + Playwright drive the quickstart's SliceViewer.

A copy of ``notebooks/01_quickstart.ipynb`` (outputs stripped, one probe cell appended) is opened
in JupyterLab on 127.0.0.1 and run through the menu (Run → Run All Cells). Then, like a user:
reset the liver object, left-click inside the liver on the axial canvas (the status line reports a
volume in mL), right-click outside it (a negative prompt), click *undo* (the mask is back); the
probe cell reads the predictor's clicks and mask back from the kernel.

The window is a 1280 x 800 laptop screen with JupyterLab's file browser open: the whole axial view
must be visible (inside the output area and the window, not scrolled, not covered by the matplotlib
toolbar), the HU read-out uncropped and the legend present. A second notebook shows a thin scan
(20 slices of the bundled phantom): a click on its coronal view must prompt the voxel under the mouse.

The liver's page position comes from the viewer's own geometry: a plain ``SliceViewer`` built here
with the same size gives the axial axes' data → pixel transform, scaled onto the canvas' bounding
box; the voxel the viewer reports for the click must lie within one voxel of the target.

Needs Chromium at /usr/bin/chromium (``tests/setup_browser.sh`` installs it on Debian as root)
and the ``playwright`` package (dev extras; no browser download). Skipped when one is missing,
except under ``CI=true``, where that is a failure.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_quickstart.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PROBE = ('_probe = globals().get("_probe", 0) + 1\n'
         'print(f"PROBE#{_probe}", "".join("+" if c[2] else "-" for c in pred.object.clicks), int(pred.mask.sum()))')
VOXEL_RE = re.compile(r"\(z, y, x\) = \((\d+), (\d+), (\d+)\)")
ML_RE = re.compile(r"liver: ([\d.]+) mL, (\d+) clicks?")
TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1280, "height": 800}  # a workshop laptop
THIN_NOTEBOOK = "thin_scan.ipynb"
THIN_Z0 = 63  # the thin scan: phantom slices 63..82 (through the liver), 20 x 2.5 mm
THIN_SOURCE = f"""%matplotlib widget
import ctsam3d_nb as cs
from ctsam3d_nb.viewer import SliceViewer

ct, labels, names = cs.load_sample()
z0 = {THIN_Z0}
thin = cs.load_ct(ct.array[z0:z0 + 20], spacing=ct.spacing, origin=tuple(ct.index_to_physical((z0, 0, 0))),
                  direction=ct.direction)
viewer = SliceViewer(thin, cs.Predictor(cs.load_model("nano")))
viewer.new_object("liver")
viewer"""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _unavailable(reason: str):
    """Skip, or fail under CI=true: CI must never skip the browser test silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run: {reason}. Run tests/setup_browser.sh (as root) and "
                    "pip install -e '.[dev]' first.")
    pytest.skip(f"browser test skipped: {reason} (tests/setup_browser.sh installs Chromium)")


def _require_browser():
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            _unavailable(f"the {module} package is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_copy(root: Path) -> Path:
    """The quickstart without outputs or saved widget state, plus the probe cell, under ``root/notebooks``;
    and the thin-scan notebook next to it."""
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "browser-probe", "metadata": {},
                        "outputs": [], "source": PROBE})
    (root / "notebooks").mkdir()
    path = root / "notebooks" / NOTEBOOK.name
    path.write_text(json.dumps(nb))
    thin = {"cells": [{"cell_type": "code", "execution_count": None, "id": "thin-scan", "metadata": {}, "outputs": [],
                       "source": THIN_SOURCE}], "metadata": nb["metadata"], "nbformat": 4, "nbformat_minor": 5}
    (root / "notebooks" / THIN_NOTEBOOK).write_text(json.dumps(thin))
    return path


def _lab_settings(root: Path) -> Path:
    """JupyterLab user settings: every cell stays in the DOM (no windowing), the notebook's kernel
    starts without a "Select Kernel" dialog, no news pop-up."""
    settings = root / ".settings"
    for ext, name, value in (("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none",
                                                                         "autoStartDefaultKernel": True}),
                             ("@jupyterlab/apputils-extension", "notification",
                              {"fetchNews": "false", "checkForUpdates": False})):
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    return settings


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of the quickstart; yields its base URL."""
    _require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    _notebook_copy(root)
    port = _free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(_lab_settings(root)), JUPYTER_RUNTIME_DIR=str(root / ".rt"),
               JUPYTER_PLATFORM_DIRS="1",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))  # the kernel shares the CPU with Chromium
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
           "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={root / '.ws'}"]
    log = open(tmp_path / "jupyterlab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (tmp_path / "jupyterlab.log").read_text(errors="replace")[-3000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        # the server and its kernels form one process group, started above
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def _targets():
    """Where to click on the axial slice the notebook shows after its own click: one voxel deep
    inside the liver, one in the body far from it, as ``{name: ((z, y, x), fx, fy)}`` with
    ``fx, fy`` the fractions of the canvas' width and height (from its top left); and the CT's
    voxel volume in mL."""
    from ctsam3d_nb import first_click, load_sample
    from ctsam3d_nb.anatomy import by_name
    from ctsam3d_nb.viewer import SliceViewer, voxel_to_data

    ct, labels, _ = load_sample()  # the notebook's CT and labels
    liver_id = by_name("liver").id
    click = first_click(labels == liver_id, spacing=ct.spacing)  # where the notebook's viewer.click went
    viewer = SliceViewer(ct, labels=labels == liver_id, interactive=False)  # same geometry as the notebook's
    k = int(viewer.orient.canonical_index(np.asarray(click))[0])  # the axial slice viewer.click moved to
    lab = viewer.orient.to_canonical(labels)[k]  # the axial image shown: (y', x')
    spacing_yx = viewer.orient.spacing[1:]
    inside = ndimage.distance_transform_edt(lab == liver_id, sampling=spacing_yx)
    outside = np.where((lab > 0) & (lab != liver_id), ndimage.distance_transform_edt(lab != liver_id,
                                                                                      sampling=spacing_yx), 0)
    ax, fig = viewer.axes["axial"], viewer.figures["axial"]
    out = {}
    for name, depth in (("inside", inside), ("outside", outside)):
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        voxel = tuple(int(v) for v in viewer.orient.ct_index(np.array([k, row, col])))
        _, xd, yd = voxel_to_data(viewer.orient, "axial", voxel)
        px, py = ax.transData.transform((xd, yd))  # figure pixels, origin bottom left
        out[name] = (voxel, px / fig.bbox.width, 1 - py / fig.bbox.height)
    return out, ct.voxel_volume_ml


def _thin_target():
    """Where to click on the thin scan's coronal view (the slice the viewer opens on): the deepest liver
    voxel of that slice, as ``((z, y, x), fx, fy)`` with fractions of the canvas, and the view's plan."""
    from ctsam3d_nb import load_ct, load_sample
    from ctsam3d_nb.anatomy import by_name
    from ctsam3d_nb.viewer import SliceViewer, voxel_to_data

    ct, labels, _ = load_sample()
    z0 = THIN_Z0
    thin = load_ct(ct.array[z0:z0 + 20], spacing=ct.spacing, origin=tuple(ct.index_to_physical((z0, 0, 0))),
                   direction=ct.direction)
    liver = labels[z0:z0 + 20] == by_name("liver").id
    viewer = SliceViewer(thin, labels=liver, interactive=False)  # the notebook's geometry
    k = viewer.cursor[1]  # the coronal slice shown first (canonical y')
    lab = viewer.orient.to_canonical(liver)[:, k]  # the coronal image: (z', x')
    depth = ndimage.distance_transform_edt(lab, sampling=(viewer.orient.spacing[0], viewer.orient.spacing[2]))
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    voxel = tuple(int(v) for v in viewer.orient.ct_index(np.array([row, k, col])))
    _, xd, yd = voxel_to_data(viewer.orient, "coronal", voxel)
    ax, fig = viewer.axes["coronal"], viewer.figures["coronal"]
    px, py = ax.transData.transform((xd, yd))
    return voxel, px / fig.bbox.width, 1 - py / fig.bbox.height, viewer.plan["coronal"]


def _layout_report(page, strip_px: int) -> dict:
    """Boxes (CSS px) of what a user must see, measured in the page; ``visible``: whether the pixels
    at the corners and the centre of each image (below the strip of ``strip_px``) belong to its canvas."""
    return page.evaluate("""(strip) => {
      const box = e => { const b = e.getBoundingClientRect(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
      const v = document.querySelector('.ctsam3d-viewer');
      const inside = (el, x, y) => { const hit = document.elementFromPoint(x, y); return !!hit && el.contains(hit); };
      return {
        output: box(v.closest('.jp-OutputArea-output')),
        sidebar: box(document.querySelector('#jp-left-stack')),
        views: [...v.querySelectorAll('.jupyter-matplotlib-canvas-div')].map(d => {
          const b = box(d), t = d.closest('.jupyter-matplotlib').querySelector('.jupyter-matplotlib-toolbar');
          const c = d.closest('.jupyter-matplotlib-canvas-container');
          return {canvas: b, toolbar: t ? box(t) : null,
                  scrolls: c.scrollWidth > c.clientWidth || c.scrollHeight > c.clientHeight,
                  visible: [[3, strip + 3], [b.w - 3, strip + 3], [3, b.h - 3], [b.w - 3, b.h - 3],
                            [b.w / 2, (strip + b.h) / 2]].map(([x, y]) => inside(d, b.x + x, b.y + y))};
        }),
        readout: (e => ({text: e.innerText, cropped: e.scrollWidth > e.clientWidth}))(
          v.querySelector('.ctsam3d-window-readout')),
        legend: v.querySelector('.ctsam3d-legend').innerText,
      };
    }""", strip_px)


def _assert_view_fits(report: dict, index: int, strip_px: int):
    """The view is entirely inside the output area and the window, unscrolled, and nothing covers its image."""
    out, view = report["output"], report["views"][index]
    c = view["canvas"]
    assert c["x"] >= out["x"] - 0.5 and c["x"] + c["w"] <= min(out["x"] + out["w"], VIEWPORT["width"]) + 0.5, (c, out)
    assert c["y"] >= 0 and c["y"] + c["h"] <= VIEWPORT["height"], f"the view is cut by the window: {c}"
    assert not view["scrolls"], "the canvas container scrolls (scrollbars under the view)"
    assert all(view["visible"]), f"part of the image is covered or clipped: {view['visible']}"
    assert view["toolbar"] is not None, "no matplotlib toolbar found next to the canvas"
    assert view["toolbar"]["y"] + view["toolbar"]["h"] <= c["y"] + strip_px + 0.5, (view["toolbar"], c)  # in the strip


def _accept_dialogs(page):
    """Accept a dialog JupyterLab may still show (e.g. "Select Kernel": the default is the right one)."""
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    if accept.count() and accept.first.is_visible():
        accept.first.click()


def _run_all_cells(page):
    """Run → Run All Cells, once the kernel is idle; again if the command was not enabled yet."""
    idle = page.locator("#jp-main-statusbar", has_text=re.compile(r"\|\s*Idle"))
    started = page.locator(".jp-CodeCell .jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        _accept_dialogs(page)
        if idle.count():
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            item = page.locator(".lm-Menu-item:not(.lm-mod-disabled)",
                                has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")))
            if item.count():
                item.first.click()
                try:
                    started.first.wait_for(timeout=10_000)
                    return
                except Exception:  # not started: try the menu again
                    pass
            else:
                page.keyboard.press("Escape")  # close the menu, wait for the command to be enabled
        page.wait_for_timeout(500)
    raise AssertionError("Run → Run All Cells never started the notebook")


def _status(page) -> str:
    return page.locator(".ctsam3d-status").inner_text()


def _wait_status(page, pattern: str, what: str) -> str:
    """Wait until the viewer's status line matches ``pattern``; returns its text."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        _accept_dialogs(page)
        text = _status(page) if page.locator(".ctsam3d-status").count() else ""
        if re.search(pattern, text):
            return text
        page.wait_for_timeout(200)
    text = _status(page) if page.locator(".ctsam3d-status").count() else "(no status line: the viewer cell did not run)"
    raise AssertionError(f"{what}: the status line never matched {pattern!r}; it reads {text!r}")


def test_quickstart_viewer_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    targets, voxel_ml = _targets()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=VIEWPORT)
        try:
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{lab}/lab/tree/notebooks/{NOTEBOOK.name}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
            _run_all_cells(page)
            _wait_status(page, r"liver: [\d.]+ mL, 1 click", "the notebook's own click")
            probe = page.locator(".jp-CodeCell", has_text="_probe = globals()")
            probe.locator(".jp-OutputArea-output", has_text="PROBE#1").wait_for()  # every cell has run

            viewer = page.locator(".jp-OutputArea-output", has=page.locator(".ctsam3d-status"))
            canvas = viewer.locator(".jupyter-matplotlib-canvas-div canvas").first  # the axial view
            canvas.scroll_into_view_if_needed()

            # a laptop with the file browser open: the whole axial view is visible, nothing cropped
            from ctsam3d_nb.viewer.layout import STRIP_PX

            report = _layout_report(page, STRIP_PX)
            assert report["sidebar"]["w"] > 200, f"the file browser is not open: {report['sidebar']}"
            _assert_view_fits(report, 0, STRIP_PX)
            assert not report["readout"]["cropped"] and "HU" in report["readout"]["text"], report["readout"]
            assert "liver" in report["legend"], report["legend"]

            def press(where: str, button: str):
                # an 800-px window: the buttons below the views scroll them away; bring the canvas back
                canvas.evaluate("c => c.scrollIntoView({block: 'center'})")
                box = canvas.bounding_box()
                assert box and box["width"] > 100, f"the axial canvas is not laid out: {box}"
                _, fx, fy = targets[where]
                x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
                assert 0 <= y < VIEWPORT["height"] and 0 <= x < VIEWPORT["width"], f"target off screen: {(x, y)}"
                page.mouse.click(x, y, button=button)

            # start the object over, then segment the liver with a real mouse click
            viewer.locator("button", has_text=re.compile(r"^\s*reset object\s*$")).click()
            _wait_status(page, r"liver: 0\.0 mL, 0 clicks", "reset object")
            press("inside", "left")
            text = _wait_status(page, r"\+ click at .*liver: [\d.]+ mL, 1 click", "left click in the liver")
            clicked = tuple(int(v) for v in VOXEL_RE.search(text).groups())
            want = targets["inside"][0]
            assert max(abs(a - b) for a, b in zip(clicked, want)) <= 1, f"clicked {clicked}, expected ~{want}"
            ml_after_left = float(ML_RE.search(text).group(1))
            assert ml_after_left > 0, f"no overlay after the click: {text!r}"

            # a negative prompt outside the liver
            press("outside", "right")
            text = _wait_status(page, r"− click at .*liver: [\d.]+ mL, 2 clicks", "right click outside the liver")
            clicked = tuple(int(v) for v in VOXEL_RE.search(text).groups())
            want = targets["outside"][0]
            assert max(abs(a - b) for a, b in zip(clicked, want)) <= 1, f"clicked {clicked}, expected ~{want}"

            # undo takes the negative click back and restores the mask
            viewer.locator("button", has_text=re.compile(r"^\s*undo\s*$")).click()
            text = _wait_status(page, r"undo · liver: [\d.]+ mL, 1 click\b", "undo")
            assert float(ML_RE.search(text).group(1)) == ml_after_left, text

            # the kernel agrees: one positive click, and the mask the status line reported
            probe.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            out = probe.locator(".jp-OutputArea-output", has_text="PROBE#2")
            out.wait_for()
            signs, voxels = out.inner_text().split()[1:3]
            assert signs == "+", out.inner_text()
            assert round(int(voxels) * voxel_ml, 1) == ml_after_left, (voxels, ml_after_left)
        except Exception:
            shot = tmp_path / "failure.png"
            page.screenshot(path=str(shot), full_page=True)
            log = (tmp_path / "jupyterlab.log").read_text(errors="replace")[-2000:]
            print(f"screenshot of the page: {shot}\nJupyterLab log (end):\n{log}")
            raise
        finally:
            browser.close()


def test_thin_scan_viewer_in_jupyterlab(lab, tmp_path):
    """A 20-slice scan: the coronal view is tall enough to click, and the click prompts the voxel under the mouse."""
    from playwright.sync_api import sync_playwright

    want, fx, fy, plan = _thin_target()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=VIEWPORT)
        try:
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{lab}/lab/tree/notebooks/{THIN_NOTEBOOK}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
            _run_all_cells(page)
            _wait_status(page, r"liver: 0\.0 mL, 0 clicks", "the thin scan's viewer")
            viewer = page.locator(".jp-OutputArea-output", has=page.locator(".ctsam3d-status"))
            canvas = viewer.locator(".jupyter-matplotlib-canvas-div").nth(1)  # the coronal view
            canvas.scroll_into_view_if_needed()
            report = _layout_report(page, plan.strip_px)
            for i in range(3):
                _assert_view_fits(report, i, plan.strip_px)
            c = report["views"][1]["canvas"]
            assert c["h"] >= plan.image_px[1] + plan.strip_px - 1 and plan.image_px[1] >= 120, c  # not a 29-px strip
            assert "liver" in report["legend"], report["legend"]

            page.mouse.click(c["x"] + fx * c["w"], c["y"] + fy * c["h"])
            text = _wait_status(page, r"\+ click at .*liver: [\d.]+ mL, 1 click", "left click on the coronal view")
            clicked = tuple(int(v) for v in VOXEL_RE.search(text).groups())
            assert max(abs(a - b) for a, b in zip(clicked, want)) <= 1, f"clicked {clicked}, expected ~{want}"
        except Exception:
            shot = tmp_path / "failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the page: {shot}")
            raise
        finally:
            browser.close()
