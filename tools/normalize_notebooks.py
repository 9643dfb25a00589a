"""Keep the tutorial notebooks in the form JupyterLab saves, so that opening one leaves git clean.

JupyterLab 4 sends the notebook through the browser when it saves: JavaScript has one number type,
so every float with an integral value comes back as an integer (``"pan_zoom_throttle": 33.0`` is
saved as ``33``, ipyvolume's matrices ``1.0, 0.0`` as ``1, 0``). The server then writes the JSON
with ``nbformat.write`` (indent 1, sorted keys, non-ASCII kept, a trailing newline). Nothing else
changes when the kernel reports the same ``language_info``. A notebook written by ``nbconvert
--execute`` keeps ``33.0``, so the first save in JupyterLab would rewrite the tracked file.

Re-run a tutorial with this script (one at a time on a small machine; 1-3 min each)::

    python tools/normalize_notebooks.py --execute notebooks/01_quickstart.ipynb

It executes the notebook like ``jupyter nbconvert --to notebook --execute --inplace`` (kernel
``python3``, in the notebook's folder, widget state stored in the metadata) and then writes it in
JupyterLab's form. Also:

* no per-cell ``execution`` timestamps (nbclient's timing; JupyterLab drops them when it runs a
  cell), so a re-run changes only what the cells print;
* each matplotlib widget canvas (ipympl) gets a PNG of its figure in its stored widget state
  (``_data_url``, which ipympl's front end draws when it restores a canvas without a kernel);
  without it a reloaded notebook shows empty canvases;
* the stored widget state keeps only the models a displayed widget needs (widgets never shown,
  closed figures).

Other modes::

    python tools/normalize_notebooks.py notebooks/*.ipynb           # rewrite without running
    python tools/normalize_notebooks.py --check notebooks/*.ipynb   # exit 1 naming every problem

``tests/test_notebooks_stable.py`` runs the check on every tracked notebook.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import nbformat

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KERNEL = "python3"
MAX_BYTES = 2_000_000  # a tutorial stays small enough to clone and open quickly
_REF = re.compile(r"IPY_MODEL_([0-9a-f]{32})")

# Run in the kernel after the last cell, as a cell that is then removed: a PNG of every ipympl
# canvas widget not closed, in the canvas' `_data_url` (the whole data URL, which is what ipympl's front end
# puts in its image). ipympl itself only fills it when a canvas is displayed on its own, not when it
# sits in a layout such as the viewer's VBox; and a canvas no front end has shown has size 0 x 0.
# Prints how many canvases it stored.
_SNAPSHOT_CELL = '''\
def _snapshot_canvases():
    import base64, io, sys
    backend = sys.modules.get("ipympl.backend_nbagg")
    if backend is None:
        return 0
    from ipywidgets.widgets.widget import _instances
    n = 0
    for w in list(_instances.values()):
        if isinstance(w, backend.Canvas):
            buf = io.BytesIO()
            w.figure.savefig(buf, format="png", dpi="figure")
            w._data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
            if not any(w._size):  # set by the front end once it shows the canvas: the figure's size in CSS px
                w._size = tuple(inch * w.figure.dpi / w.device_pixel_ratio for inch in w.figure.get_size_inches())
            n += 1
    return n
print("canvases stored:", _snapshot_canvases())
del _snapshot_canvases'''


def js_numbers(obj):
    """``obj`` with every integral float (below 1e21, where JavaScript stops printing digits) made an int.

    This is what a notebook's numbers become on their way through JupyterLab's front end."""
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 1e21:
        return int(obj)
    if isinstance(obj, dict):
        return {k: js_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [js_numbers(v) for v in obj]
    return obj


def lab_roundtrip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook JupyterLab's front end sends back when it saves ``nb`` (numbers as JavaScript has them)."""
    return nbformat.from_dict(js_numbers(nb))


def to_bytes(nb: nbformat.NotebookNode) -> bytes:
    """The file jupyter_server's FileContentsManager writes for ``nb``: nbformat's JSON and a newline."""
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def widget_views(nb) -> list[str]:
    """Model ids of the widget views in the outputs, in order."""
    return [out["data"][WIDGET_VIEW]["model_id"] for cell in nb.cells for out in cell.get("outputs", [])
            if WIDGET_VIEW in out.get("data", {})]


def widget_state(nb) -> dict:
    """model id -> stored widget state (empty when the notebook stores none)."""
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def reachable_models(nb) -> tuple[set[str], set[str]]:
    """(models a displayed view needs, the ones of those missing from the stored state)."""
    state, seen, missing = widget_state(nb), set(), set()
    todo = widget_views(nb)
    while todo:
        model_id = todo.pop()
        if model_id in seen:
            continue
        seen.add(model_id)
        if model_id not in state:
            missing.add(model_id)
            continue
        todo.extend(_REF.findall(json.dumps(state[model_id])))
    return seen - missing, missing


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` in the stored form: no timing metadata, only the widget state displayed views need,
    numbers as JupyterLab saves them."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    keep, _ = reachable_models(nb)
    if keep:
        state = nb.metadata.widgets[WIDGET_STATE]["state"]
        nb.metadata.widgets[WIDGET_STATE]["state"] = {k: v for k, v in state.items() if k in keep}
    else:
        nb.metadata.pop("widgets", None)
    return lab_roundtrip(nb)


def kernel_metadata() -> tuple[dict, dict]:
    """(kernelspec, language_info) that JupyterLab puts in a notebook run here on the ``python3`` kernel."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL)  # NoSuchKernel when it is not installed
    return ({"display_name": spec.display_name, "language": spec.language, "name": KERNEL},
            dict(IPythonKernel.language_info))


def problems(path: Path) -> list[str]:
    """Why opening ``path`` in JupyterLab here would change it, or a reload would show broken widgets."""
    raw = path.read_bytes()
    nb = nbformat.reads(raw.decode("utf-8"), as_version=nbformat.NO_CONVERT)
    found = []
    saved = to_bytes(lab_roundtrip(nb))
    if raw != saved:
        old, new = raw.decode("utf-8").splitlines(), saved.decode("utf-8").splitlines()
        line = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        found.append(f"JupyterLab would save it differently (first at line {line + 1}: "
                     f"{old[line].strip() if line < len(old) else '<end>'!r} -> "
                     f"{new[line].strip() if line < len(new) else '<end>'!r})")
    if to_bytes(normalize(nb)) != saved:
        found.append("not normalized (execution timestamps or widget state no displayed view needs)")
    if (nb.nbformat, nb.nbformat_minor) != (4, nbformat.v4.nbformat_minor):
        found.append(f"nbformat {nb.nbformat}.{nb.nbformat_minor}; JupyterLab writes 4.{nbformat.v4.nbformat_minor}")
    spec, lang = kernel_metadata()
    if nb.metadata.get("kernelspec") != spec:
        found.append(f"kernelspec {nb.metadata.get('kernelspec')} is not this environment's {spec}")
    stored_lang = dict(nb.metadata.get("language_info", {}))
    # the version is the one line a user on another Python sees JupyterLab change; the rest must match
    if {**stored_lang, "version": None} != {**lang, "version": None}:
        found.append(f"language_info {stored_lang} is not what the kernel reports ({lang})")
    shown, missing = reachable_models(nb)
    if missing:
        found.append(f"{len(missing)} widget model(s) shown in outputs are not in the stored widget state: "
                     "a reload without the kernel shows 'Error displaying widget: model not found'")
    state = widget_state(nb)
    blank = [k for k in shown if state[k].get("model_name") == "MPLCanvasModel"
             and not str(state[k].get("state", {}).get("_data_url") or "").startswith("data:image/png;base64,")]
    if blank:
        found.append(f"{len(blank)} matplotlib canvas(es) have no stored picture: empty after a reload")
    if len(raw) > MAX_BYTES:
        found.append(f"{len(raw) / 1e6:.2f} MB (more than {MAX_BYTES / 1e6:.0f} MB)")
    return found


def execute(path: Path) -> None:
    """Run the notebook on the ``python3`` kernel in its folder, like ``nbconvert --execute``, storing
    widget state and canvas pictures; then write it in the stored form."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)  # never keep state from an earlier run
    nb.cells.append(nbformat.v4.new_code_cell(_SNAPSHOT_CELL))
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=1800, record_timing=False, store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    client.execute()
    snapshot = nb.cells.pop()
    print(f"{path}: {''.join(o.get('text', '') for o in snapshot.outputs).strip()}")
    path.write_bytes(to_bytes(normalize(nb)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 naming every problem")
    mode.add_argument("--execute", action="store_true", help="run each notebook first (like nbconvert --execute)")
    args = parser.parse_args(argv)
    bad = 0
    for path in args.notebooks:
        if args.execute:
            execute(path)
        elif not args.check:
            nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
            data = to_bytes(normalize(nb))
            if data != path.read_bytes():
                path.write_bytes(data)
                print(f"{path}: rewritten")
        found = problems(path)
        for p in found:
            print(f"{path}: {p}", file=sys.stderr)
        bad += bool(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
