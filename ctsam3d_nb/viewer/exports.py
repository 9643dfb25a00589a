"""What :class:`~ctsam3d_nb.viewer.SliceViewer` writes to disk (a mixin): label maps, meshes, figures.

Every writer refuses to replace an existing file unless ``overwrite=True`` and writes atomically
(a failure leaves no half-written file).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .geometry import VIEWS, view_layout

__all__ = ["ExportMixin", "FIGURE_FORMATS", "compose_figure"]

FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "tif", "tiff")
_GAP_PX, _LEGEND_ROW_PX, _LEGEND_COLUMN_PX = 10, 19, 170  # figure pixels at 100 dpi


def compose_figure(viewer, dpi: float = 100):
    """One matplotlib Figure (Agg, not displayed) with the viewer's three views as they are now.

    The same slices, window, overlays, crosshair, click markers and orientation letters, side
    by side at the viewer's pixel sizes, with the legend (object names and colours) below.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sizes = [viewer.plan[v] for v in VIEWS]
    entries = viewer._legend_entries()
    width = sum(s.figure_px[0] for s in sizes) + _GAP_PX * (len(sizes) - 1)
    ncol = max(1, min(len(entries), width // _LEGEND_COLUMN_PX))
    legend_px = (-(-len(entries) // ncol) * _LEGEND_ROW_PX + 12) if entries else 0
    height = max(s.figure_px[1] for s in sizes) + legend_px
    fig = Figure(figsize=(width / 100, height / 100), dpi=dpi)
    FigureCanvasAgg(fig)
    x, top = 0, max(s.figure_px[1] for s in sizes)
    for view, size in zip(VIEWS, sizes):
        src = viewer.axes[view]
        iw, ih = size.image_px
        left = x + (size.figure_px[0] - iw) / 2
        bottom = legend_px + top - size.figure_px[1]  # tops aligned
        ax = fig.add_axes((left / width, bottom / height, iw / width, ih / height))
        ax.set_axis_off()
        origin = view_layout(view)[3]
        for im in (viewer.images[view], viewer.overlays[view]):
            ax.imshow(im.get_array(), cmap=im.get_cmap(), clim=im.get_clim(), origin=origin, aspect="auto",
                      interpolation="nearest")
        ax.set_xlim(src.get_xlim())
        ax.set_ylim(src.get_ylim())
        vline, hline = viewer.crosshair[view]  # axvline/axhline: data x (y), axes-fraction extent
        for line, draw in ((vline, ax.axvline), (hline, ax.axhline)):
            draw(line.get_xdata()[0] if draw == ax.axvline else line.get_ydata()[0], color=line.get_color(),
                 lw=line.get_linewidth(), alpha=line.get_alpha())
        for line in viewer.markers[view]:
            ax.plot(line.get_xdata(), line.get_ydata(), color=line.get_color(), lw=line.get_linewidth(),
                    alpha=line.get_alpha(), marker=line.get_marker(), ms=line.get_markersize(),
                    mew=line.get_markeredgewidth(), ls=line.get_linestyle())
        for t in src.texts:  # orientation letters, stretch note
            ax.text(*t.get_position(), t.get_text(), transform=ax.transAxes, color=t.get_color(),
                    fontsize=t.get_fontsize(), ha=t.get_ha(), va=t.get_va(), bbox=t.get_bbox_patch() and
                    dict(facecolor="black", alpha=0.55, pad=1.5, linewidth=0))
        fig.text((left + 4) / width, (bottom + ih + 6) / height, viewer.titles[view].get_text(), fontsize=9,
                 va="bottom")
        x += size.figure_px[0] + _GAP_PX
    if entries:
        handles = [Patch(facecolor=np.asarray(rgb) / 255.0, label=name + (" (current)" if current else ""))
                   for _, name, rgb, current in entries]
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9,
                   borderaxespad=0.3, labelspacing=0.35, handlelength=1.2, columnspacing=1.2)
    return fig


class ExportMixin:
    """Writers of ``SliceViewer``: :meth:`export` (label map), :meth:`export_mesh`, :meth:`save_figure`."""

    def export(self, path, overwrite: bool = False, current_only: bool = False) -> Path:
        """Write all objects as a label map (ontology ids) in the CT's geometry via ``io.save_mask``.

        ``current_only`` writes the current object as a 0/1 mask. Refuses to replace a file
        unless ``overwrite``. Returns the written path.
        """
        from ..io import save_mask

        if self.predictor is None or not self.predictor.objects:
            raise RuntimeError("nothing to export yet: segment something first")
        data = self.predictor.mask if current_only else self.predictor.label_map
        return save_mask(data, self.ct, path, overwrite=overwrite)

    def export_mesh(self, path, overwrite: bool = False, which=None) -> Path:
        """Write one object's surface as an STL, PLY or OBJ mesh in LPS millimetres (see ``meshes.export_mesh``).

        Args:
            path: ``.stl``, ``.ply`` or ``.obj`` file; the suffix picks the format.
            overwrite: replace an existing file (never done otherwise).
            which: with a predictor, the object's index or name (default: the current object);
                in a plain viewer, the label id or ontology name (default: the only label shown).

        Returns:
            The written path. PLY files carry the object's colour.
        """
        from ..meshes import export_mesh

        mask, name, rgb = self._object_mask(which)
        return export_mesh(mask, self.ct, path, overwrite=overwrite, name=name, color=rgb)

    def _object_mask(self, which):
        """``(bool mask on the CT grid, name, rgb)`` of one object or label."""
        p = self.predictor
        if p is not None:
            if not p.objects:
                raise RuntimeError("nothing to export yet: segment something first")
            if which is None:
                obj = p.objects[p.current]
                return p.mask, obj.name, obj.color
            if isinstance(which, bool) or not isinstance(which, (int, np.integer, str)):
                raise TypeError(f"which= is an object's index (int) or name (str), got {which!r}")
            idx = next((i for i, o in enumerate(p.objects) if o.name == which), None) if isinstance(which, str) \
                else int(which)
            if idx is None or not 0 <= idx < len(p.objects):
                raise KeyError(f"no object {which!r}; objects: {[o.name for o in p.objects]}")
            from ..predictor_state import to_ct_mask

            obj = p.objects[idx]
            return to_ct_mask(obj.masks, p.grid, p.ct, p.threshold), obj.name, obj.color
        entries = {i: (name, rgb) for i, name, rgb, _ in self._legend_entries()}
        if self._labels is None or not entries:
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
        return self._labels == int(which), name, rgb

    def save_figure(self, path, overwrite: bool = False, dpi: float = 150) -> Path:
        """Save the three views as they are now (with the legend) as one picture, e.g. for slides.

        Args:
            path: the file; its suffix picks the format (png, pdf, svg, jpg, tif).
            overwrite: replace an existing file (never done otherwise).
            dpi: resolution; 100 dpi reproduces the views' screen pixels, 150 (default) is sharper.

        Returns:
            The resolved path.

        Raises:
            ValueError: an unknown suffix. FileExistsError: the file exists and ``overwrite`` is False.
            FileNotFoundError: the folder does not exist.
        """
        from .._atomic import atomic_write

        path = Path(path).expanduser()
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FIGURE_FORMATS:
            raise ValueError(f"cannot tell the picture format of '{path}' from its suffix; use one of "
                             f"{', '.join('.' + f for f in FIGURE_FORMATS)}")
        target = path.resolve()
        if not target.parent.is_dir():
            raise FileNotFoundError(f"output folder '{target.parent}' does not exist; create it first")
        if target.exists() and not overwrite:
            raise FileExistsError(f"'{target}' exists; pass overwrite=True to replace it, or choose another name")
        fig = compose_figure(self)
        atomic_write(target, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white"))
        return target
