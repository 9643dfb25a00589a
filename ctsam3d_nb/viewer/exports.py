"""What :class:`~ctsam3d_nb.viewer.SliceViewer` writes to disk: plain functions (which object's mask,
the picture of the three views, which writer a file name picks) and :class:`ViewerExports`, the viewer's
``export``, ``export_mesh`` and ``save_figure`` methods built on them.

Every writer refuses to replace an existing file unless ``overwrite=True`` and writes atomically
(a failure leaves no half-written file).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .._atomic import atomic_write, export_target
from ..io import save_mask
from ..meshes import MESH_SUFFIXES
from ..meshes import export_mesh as write_mesh
from ..predictor_state import object_index, to_ct_mask
from .geometry import VIEWS, view_layout

__all__ = ["FIGURE_FORMATS", "ViewerExports", "compose_figure", "export_by_name", "export_kind", "label_mask",
           "object_mask", "save_figure"]

FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "tif", "tiff")
_GAP_PX, _LEGEND_ROW_PX, _LEGEND_COLUMN_PX = 10, 19, 170  # figure pixels at 100 dpi


def export_kind(name: str) -> str:
    """What the viewer's export box writes for a file name: "mesh" (.stl/.ply/.obj), "figure" (.png, .pdf,
    ...: :data:`FIGURE_FORMATS`) or "labels" (anything else: a label map through ``io.save_mask``)."""
    suffix = name.strip().lower().rsplit(".", 1)[-1] if "." in name else ""
    if f".{suffix}" in MESH_SUFFIXES:
        return "mesh"
    return "figure" if suffix in FIGURE_FORMATS else "labels"


def export_by_name(viewer, name: str, overwrite: bool = False) -> tuple[Path, str]:
    """What the viewer's export box does: write to ``name`` by :func:`export_kind` through the viewer's
    ``export_mesh`` (current object), ``save_figure`` or ``export`` (label map).

    Returns:
        ``(written path, what was written)``.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is False (the message says to tick 'overwrite').
    """
    name = name.strip()
    kind = export_kind(name)
    try:
        if kind == "mesh":
            return viewer.export_mesh(name, overwrite=overwrite), "mesh of the current object"
        if kind == "figure":
            return viewer.save_figure(name, overwrite=overwrite), "figure"
        return viewer.export(name, overwrite=overwrite), "label map"
    except FileExistsError as e:
        raise FileExistsError(f"{e.args[0].split(';')[0]}: tick 'overwrite' to replace it, or change the "
                              "file name") from None


def object_mask(predictor, which=None) -> tuple[np.ndarray, str, tuple[int, int, int]]:
    """``(bool mask on the CT grid (z, y, x), name, rgb)`` of one of a predictor's objects.

    ``which``: the object's index or name; None: the current object.
    """
    p = predictor
    if not p.objects:
        raise RuntimeError("nothing to export yet: segment something first")
    if which is None:
        obj = p.objects[p.current]
        return p.mask, obj.name, obj.color
    obj = p.objects[object_index(p.objects, which, "which= is an object's index (int) or name (str)")]
    return to_ct_mask(obj.masks, p.grid, p.ct, p.threshold), obj.name, obj.color


def label_mask(labels, entries, which=None) -> tuple[np.ndarray, str, tuple[int, int, int]]:
    """``(bool mask, name, rgb)`` of one label of a plain viewer's label map.

    Args:
        labels: the label map ``(z, y, x)`` shown, or None.
        entries: the legend, ``(label value, name, rgb, is_current)`` per label.
        which: a label id or (case-insensitive) name; None if only one label is shown.
    """
    entries = {i: (name, rgb) for i, name, rgb, _ in entries}
    if labels is None or not entries:
        raise RuntimeError("this viewer shows no labels: nothing to export")
    if which is None:
        if len(entries) > 1:
            raise ValueError(f"the viewer shows {len(entries)} labels: choose one with which=<label id or "
                             f"name>, e.g. which={next(iter(entries))}")
        which = next(iter(entries))
    if isinstance(which, str):
        found = [i for i, (name, _) in entries.items() if name.lower() == which.lower()]
        if not found:
            raise KeyError(f"no label named {which!r}; labels shown: {[n for n, _ in entries.values()]}")
        which = found[0]
    if isinstance(which, bool) or not isinstance(which, (int, np.integer)) or int(which) not in entries:
        raise KeyError(f"no label {which!r} in this viewer; labels shown: {sorted(entries)}")
    name, rgb = entries[int(which)]
    return labels == int(which), name, rgb


def compose_figure(viewer, dpi: float = 100) -> Figure:
    """One matplotlib Figure (Agg, not displayed) with the viewer's three views as they are now.

    The same slices, window, overlays, crosshair, click markers and orientation letters, side
    by side at the viewer's pixel sizes (``viewer.plan``), with the legend (object names and
    colours, ``viewer.legend_entries``) below. Reads the artists in ``viewer.views``.
    """
    sizes = [viewer.plan[v] for v in VIEWS]
    entries = viewer.legend_entries
    width = sum(s.figure_px[0] for s in sizes) + _GAP_PX * (len(sizes) - 1)
    ncol = max(1, min(len(entries), width // _LEGEND_COLUMN_PX))
    legend_px = (-(-len(entries) // ncol) * _LEGEND_ROW_PX + 12) if entries else 0
    height = max(s.figure_px[1] for s in sizes) + legend_px
    fig = Figure(figsize=(width / 100, height / 100), dpi=dpi)
    FigureCanvasAgg(fig)
    x, top = 0, max(s.figure_px[1] for s in sizes)
    for view, size in zip(VIEWS, sizes):
        art = viewer.views[view]
        iw, ih = size.image_px
        left = x + (size.figure_px[0] - iw) / 2
        bottom = legend_px + top - size.figure_px[1]  # tops aligned
        ax = fig.add_axes((left / width, bottom / height, iw / width, ih / height))
        ax.set_axis_off()
        origin = view_layout(view)[3]
        for im in (art.image, art.overlay):
            ax.imshow(im.get_array(), cmap=im.get_cmap(), clim=im.get_clim(), origin=origin, aspect="auto",
                      interpolation="nearest")
        ax.set_xlim(art.axes.get_xlim())
        ax.set_ylim(art.axes.get_ylim())
        vline, hline = art.crosshair  # axvline/axhline: data x (y), axes-fraction extent
        for line, draw in ((vline, ax.axvline), (hline, ax.axhline)):
            draw(line.get_xdata()[0] if draw == ax.axvline else line.get_ydata()[0], color=line.get_color(),
                 lw=line.get_linewidth(), alpha=line.get_alpha())
        for line in art.markers:
            ax.plot(line.get_xdata(), line.get_ydata(), color=line.get_color(), lw=line.get_linewidth(),
                    alpha=line.get_alpha(), marker=line.get_marker(), ms=line.get_markersize(),
                    mew=line.get_markeredgewidth(), ls=line.get_linestyle())
        for t in art.axes.texts:  # orientation letters, stretch note
            ax.text(*t.get_position(), t.get_text(), transform=ax.transAxes, color=t.get_color(),
                    fontsize=t.get_fontsize(), ha=t.get_ha(), va=t.get_va(), bbox=t.get_bbox_patch() and
                    dict(facecolor="black", alpha=0.55, pad=1.5, linewidth=0))
        fig.text((left + 4) / width, (bottom + ih + 6) / height, art.title.get_text(), fontsize=9, va="bottom")
        x += size.figure_px[0] + _GAP_PX
    if entries:
        handles = [Patch(facecolor=np.asarray(rgb) / 255.0, label=name + (" (current)" if current else ""))
                   for _, name, rgb, current in entries]
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9,
                   borderaxespad=0.3, labelspacing=0.35, handlelength=1.2, columnspacing=1.2)
    return fig


def save_figure(viewer, path, overwrite: bool = False, dpi: float = 150) -> Path:
    """Write :func:`compose_figure` of ``viewer`` to ``path``, atomically.

    Args:
        viewer: a :class:`~ctsam3d_nb.viewer.SliceViewer`.
        path: the file; its suffix picks the format (:data:`FIGURE_FORMATS`).
        overwrite: replace an existing file (never done otherwise).
        dpi: resolution; 100 dpi reproduces the views' screen pixels.

    Returns:
        The resolved path.

    Raises:
        ValueError: an unknown suffix. FileExistsError: the file exists and ``overwrite`` is False.
        FileNotFoundError: the folder does not exist.
    """
    path = Path(path).expanduser()
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"cannot tell the picture format of '{path}' from its suffix; use one of "
                         f"{', '.join('.' + f for f in FIGURE_FORMATS)}")
    target = export_target(path, viewer.ct.source, overwrite)
    fig = compose_figure(viewer)
    atomic_write(target, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white"))
    return target


class ViewerExports:
    """The writing methods of :class:`~ctsam3d_nb.viewer.SliceViewer` (a mixin: it uses the viewer's ``ct``,
    ``predictor``, ``_labels`` and ``legend_entries``)."""

    def export(self, path, overwrite: bool = False, current_only: bool = False) -> Path:
        """Write all objects as a label map (ontology ids) in the CT's geometry via ``io.save_mask``.

        ``current_only`` writes the current object as a 0/1 mask. Refuses to replace a file
        unless ``overwrite``. Returns the written path.
        """
        if self.predictor is None or not self.predictor.objects:
            raise RuntimeError("nothing to export yet: segment something first")
        p = self._checked_predictor()  # the predictor's masks are in this viewer's CT geometry
        data = p.mask if current_only else p.label_map
        return save_mask(data, self.ct, path, overwrite=overwrite)

    def export_mesh(self, path, overwrite: bool = False, which=None) -> Path:
        """Write one object's surface as an STL, PLY (with the colour) or OBJ mesh in LPS mm (``meshes.export_mesh``).

        ``which``: with a predictor, the object's index or name (default: the current object); in a plain
        viewer, the label id or ontology name (default: the only label shown). Never replaces a file unless
        ``overwrite``. Returns the written path.
        """
        if self.predictor is not None:
            mask, name, rgb = object_mask(self._checked_predictor(), which)
        else:
            mask, name, rgb = label_mask(self._labels, self.legend_entries, which)
        return write_mesh(mask, self.ct, path, overwrite=overwrite, name=name, color=rgb)

    def save_figure(self, path, overwrite: bool = False, dpi: float = 150) -> Path:
        """Save the three views as they are now (with the legend) as one picture, e.g. for slides.

        The suffix of ``path`` picks the format (png, pdf, svg, jpg, tif); an existing file is replaced only
        with ``overwrite``; ``dpi`` 100 reproduces the screen pixels. Returns the resolved path.
        See :func:`save_figure` for the errors.
        """
        return save_figure(self, path, overwrite, dpi)
