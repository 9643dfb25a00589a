"""What ``test_browser.py`` does in and reads from the page: where to click (from the viewer's own
geometry), the layout measured in the DOM, JupyterLab's dialogs and Run menu, the viewer's status line."""
from __future__ import annotations

import re
import time

import numpy as np
from scipy import ndimage

VOXEL_RE = re.compile(r"\(z, y, x\) = \((\d+), (\d+), (\d+)\)")
ML_RE = re.compile(r"liver: ([\d.]+) mL, (\d+) clicks?")
TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1280, "height": 800}  # a workshop laptop
THIN_Z0 = 63  # the thin scan: phantom slices 63..82 (through the liver), 20 x 2.5 mm


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
