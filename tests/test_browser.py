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

The page helpers (click targets, layout report, Run menu, status line) are in ``browser_page.py``.

Needs Chromium at /usr/bin/chromium (``tests/setup_browser.sh`` installs it on Debian as root)
and the ``playwright`` package (dev extras; no browser download). Skipped when one is missing,
except under ``CI=true``, where that is a failure.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from browser_page import (ML_RE, THIN_Z0, TIMEOUT_MS, VIEWPORT, VOXEL_RE, _assert_view_fits, _layout_report,
                          _run_all_cells, _targets, _thin_target, _wait_status)
from lab_server import CHROMIUM, CHROMIUM_ARGS, jupyterlab, lab_env, require_browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_quickstart.ipynb"
PROBE = ('_probe = globals().get("_probe", 0) + 1\n'
         'print(f"PROBE#{_probe}", "".join("+" if c[2] else "-" for c in pred.object.clicks), int(pred.mask.sum()))')
THIN_NOTEBOOK = "thin_scan.ipynb"
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


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of the quickstart; yields its base URL."""
    require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    _notebook_copy(root)
    with jupyterlab(root, lab_env(root), tmp_path / "jupyterlab.log") as url:
        yield url


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
