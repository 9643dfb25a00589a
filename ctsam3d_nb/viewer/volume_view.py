"""`VolumeView`: the masks as 3D surfaces (ipyvolume), or a static picture where ipyvolume cannot render.

    view = VolumeView(predictor)          # an ipywidgets VBox: display it, or HBox([viewer, view])
    view.update()                         # after clicks; SliceViewer(..., volume_view=view) does it for you
    VolumeView(predictor, backend="static")   # a matplotlib picture (PNG): no WebGL or no ipyvolume front-end

Surfaces come from :func:`ctsam3d_nb.meshes.mask_surface` (scikit-image marching cubes:
closed meshes) on masks any-pooled so no axis exceeds ``max_size``. The scene is in millimetres
with the patient seen from the front: x = patient left, y = head, z = anterior (a right-handed
frame, so nothing is mirrored); the box has the CT's proportions (``Figure.box_size``), so the
aspect is physical and a thin scan is a slab, not a slab in an empty cube.
The Figure widget itself is displayed: ``ipv.show()``'s control panel fails in JupyterLab 4.

``backend="auto"`` (default) uses ipyvolume and falls back to the static picture when ipyvolume
cannot be imported or its Figure cannot be created (the legend says why). A browser without
WebGL cannot be detected from Python: choose ``backend="static"`` there.
"""
from __future__ import annotations

import html
import io

import ipywidgets as W
import numpy as np
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LightSource
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from scipy import ndimage

from ..anatomy import by_id
from ..meshes import mask_surface
from ..settings import is_whole
from ..volume import CTVolume
from .geometry import Orientation, downsample_mask, label_colors, predictor_labels

__all__ = ["VolumeView", "BACKENDS"]

BACKENDS = ("auto", "ipyvolume", "static")
_CAMERA_AZIMUTH, _CAMERA_ELEVATION = 20.0, 20.0  # degrees: from the front, towards the patient's left, above


def _ipv():
    try:
        import ipyvolume  # heavy (pythreejs), and only for the 3D view: imported when one is made
    except ImportError as e:  # ipyvolume 0.6.3 imports ipython_genutils without declaring it
        raise ImportError(f"VolumeView needs ipyvolume ({e}); install it with "
                          "`pip install ipyvolume ipython_genutils`") from None
    return ipyvolume


def _bboxes(labels_c: np.ndarray, ids=None) -> dict:
    """``{id: (lo, hi)}`` index boxes of the non-zero ids of a label map (one pass, scipy)."""
    lab = labels_c.view(np.uint8) if labels_c.dtype == bool else labels_c
    found = ndimage.find_objects(lab, max_label=max(ids) if ids else 0)
    wanted = set(ids) if ids else None
    return {i + 1: (np.array([s.start for s in sl]), np.array([s.stop for s in sl]))
            for i, sl in enumerate(found) if sl is not None and (wanted is None or i + 1 in wanted)}


class VolumeView(W.VBox):
    """The current masks as coloured 3D surfaces, updated on demand; an ``ipywidgets.VBox``.

    Args:
        predictor_or_labels: a :class:`~ctsam3d_nb.predictor.Predictor` (its objects are shown),
            or a label map / bool mask on the CT grid ``(z, y, x)``.
        ct: the CT the labels belong to (spacing and orientation); default: the predictor's.
            Without it, unit spacing and the array axes as given.
        show_ct: also volume-render the CT, strided so no axis exceeds ``ct_size`` (ipyvolume only).
        max_size: masks are any-pooled by an integer factor until no axis exceeds this
            (default 128 with ipyvolume, 64 for the static picture).
        width, height: pixel size of the 3D canvas or picture.
        ct_window: HU range ``(low, high)`` mapped onto the volume render's transfer function.
        ct_size: largest axis of the volume-rendered CT.
        backend: "auto" (ipyvolume, else the static picture), "ipyvolume" (errors if it cannot
            be used) or "static" (a matplotlib PNG, re-rendered by :meth:`update`).

    Attributes:
        backend: the backend in use, "ipyvolume" or "static".
        figure: the ``ipyvolume.Figure`` widget (``figure.meshes``: one Mesh per label shown); None when static.
        image: the ``ipywidgets.Image`` of the static picture; None with ipyvolume.
        meshes: label value -> ipyvolume Mesh (static: -> surface tuple), for every label shown.
    """

    def __init__(self, predictor_or_labels, ct: CTVolume | None = None, show_ct: bool = False,
                 max_size: int | None = None, width: int = 420, height: int = 420, ct_window=(-300, 1200),
                 ct_size: int = 128, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        src = predictor_or_labels
        predictor = src if hasattr(src, "objects") and hasattr(src, "label_map") else None
        labels, colors = None, {}
        if predictor is not None:
            ct = ct if ct is not None else predictor.ct
            if ct is None:
                raise RuntimeError("the predictor has no volume: call predictor.set_volume(ct) first")
        else:
            labels = np.asarray(src)
            if labels.ndim != 3 or labels.dtype.kind not in "biu":
                raise ValueError(f"expected a Predictor or a 3D bool/integer label map, got "
                                 f"{type(src).__name__} {getattr(labels, 'shape', '')}")
            colors = {1: (255, 64, 64)} if labels.dtype == bool else {}
        if ct is not None and not isinstance(ct, CTVolume):
            raise TypeError(f"ct= must be a CTVolume, got {type(ct).__name__}")
        shape = ct.shape if ct is not None else labels.shape
        if labels is not None and labels.shape != shape:
            raise ValueError(f"labels shape {labels.shape} differs from the CT's {shape} (z, y, x)")
        if show_ct and ct is None:
            raise ValueError("show_ct=True needs ct=")
        figure, why = None, ""
        if backend != "static":
            try:
                figure = _ipv().Figure(width=int(width), height=int(height))
            except Exception as e:  # not installed, or it cannot build its widget here
                if backend == "ipyvolume":
                    raise
                why = f"{type(e).__name__}: {e}"
        super().__init__()
        self.add_class("ctsam3d-volume-view")
        self.predictor, self._labels, self._colors = predictor, labels, colors
        self.backend = "ipyvolume" if figure is not None else "static"
        self.ct, self.figure, self.image, self.volume = ct, figure, None, None
        if max_size is not None and not (is_whole(max_size) and max_size >= 1):
            raise ValueError(f"max_size is the largest side of the 3D view's masks in voxels, a whole number >= 1 "
                             f"(default 64, 128 with a figure=), got {max_size!r}")
        self.max_size = int(max_size) if max_size is not None else (128 if figure is not None else 64)
        self.orient = (Orientation.from_ct(ct) if ct is not None
                       else Orientation(tuple(shape), (0, 1, 2), (False, False, False), (1.0, 1.0, 1.0)))
        self.meshes: dict[int, object] = {}  # label value -> ipyvolume Mesh (static: surface tuple)
        self.legend = W.HTML()
        self.legend.add_class("ctsam3d-volume-legend")
        self._note = ""
        if figure is not None:
            self._set_limits()
            if show_ct:
                self._add_ct(ct_window, int(ct_size))
            view = figure
        else:
            self.image = W.Image(format="png", layout=W.Layout(width=f"{int(width)}px", height="auto"))
            self.image.add_class("ctsam3d-volume-static")
            self._size_px = (int(width), int(height))
            reasons = [f"ipyvolume is not usable here ({html.escape(why)})" if why else "",
                       "the CT volume render needs ipyvolume" if show_ct else ""]
            self._note = "static picture" + "".join(f"; {r}" for r in reasons if r)
            view = self.image
        self.children = [view, self.legend]
        self.update()

    @property
    def widget(self):
        """The view itself (an ``ipywidgets.VBox``: the 3D figure or picture, and a colour legend)."""
        return self

    def _ipython_display_(self):
        display(self._repr_mimebundle_(), raw=True)

    def __repr__(self) -> str:
        return f"VolumeView(backend={getattr(self, 'backend', None)!r}, labels={sorted(getattr(self, 'meshes', {}))})"

    def show(self):
        """Display the view in the current notebook cell."""
        self._ipython_display_()

    # ------------------------------------------------------------------ geometry
    def _to_scene(self, canon_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canonical (z', y', x') indices → scene mm (x = left, y = head, z = anterior)."""
        sz, sy, sx = self.orient.spacing
        return canon_zyx[:, 2] * sx, canon_zyx[:, 0] * sz, -canon_zyx[:, 1] * sy

    def _scene_box(self, equal: bool = True):
        """``[(lo, hi)] * 3``: the CT's box in scene mm; ``equal``: each axis widened to the longest
        (ipyvolume draws a cube, so equal ranges keep the physical aspect)."""
        n = np.asarray(self.orient.shape, float)
        corners = np.array([[-0.5] * 3, n - 0.5])
        x, y, z = self._to_scene(corners)
        if not equal:
            return [(float(v.min()), float(v.max())) for v in (x, y, z)]
        centre = [v.mean() for v in (x, y, z)]
        half = max(np.ptp(v) for v in (x, y, z)) / 2
        return [(c - half, c + half) for c in centre]

    def _set_limits(self):
        """The CT's own box on each axis, and ``box_size`` in the same proportions: physical aspect
        without an empty cube around a thin scan (ipyvolume scales its unit box by ``box_size``)."""
        box = self._scene_box(equal=False)
        self.figure.xlim, self.figure.ylim, self.figure.zlim = ([lo, hi] for lo, hi in box)
        ranges = np.array([hi - lo for lo, hi in box])
        self.figure.box_size = [float(r) for r in ranges / ranges.max()]
        # seen from the front-left and a little above (as ipv.view(20, 20)): a thin slab is not edge-on
        r = float(np.linalg.norm(self.figure.camera.position))
        az, el = np.radians(_CAMERA_AZIMUTH), np.radians(_CAMERA_ELEVATION)
        self.figure.camera.position = (r * np.sin(az) * np.cos(el), r * np.sin(el), r * np.cos(az) * np.cos(el))

    def _add_ct(self, window, size):
        ipv = _ipv()
        hu = self.orient.to_canonical(self.ct.array)
        step = max(1, int(np.ceil(max(hu.shape) / size)))
        small = hu[::step, ::step, ::step]
        lo, hi = window
        data = np.clip((small.astype(np.float32) - lo) / (hi - lo), 0, 1)
        data = np.ascontiguousarray(np.transpose(data, (1, 0, 2))[::-1])  # [z=anterior, y=head, x=left]
        n = np.asarray(small.shape)
        sz, sy, sx = (s * step for s in self.orient.spacing)
        # voxel i of the strided array sits at canonical step*i; the box spans half a voxel beyond
        extent = [[-0.5 * sx, (n[2] - 0.5) * sx], [-0.5 * sz, (n[0] - 0.5) * sz], [-(n[1] - 0.5) * sy, 0.5 * sy]]
        tf = ipv.TransferFunctionWidgetJs3(level1=0.3, opacity1=0.02, width1=0.1, level2=0.6, opacity2=0.05,
                                           width2=0.1, level3=0.9, opacity3=0.15, width3=0.1)
        with np.errstate(invalid="ignore", divide="ignore"):  # ipyvolume normalises zero gradients
                self.volume = ipv.Volume(data_original=data, tf=tf, data_min=0.0, data_max=1.0, show_min=0.0,
                                     show_max=1.0,
                                     extent_original=extent, data_max_shape=max(data.shape),
                                     rendering_lighting=False, description="CT")
        self.figure.volumes = [self.volume]

    # ------------------------------------------------------------------ surfaces
    def surfaces(self, labels=None, colors=None) -> dict:
        """``{label value: (x, y, z, triangles, rgb)}`` in scene mm for every non-empty label."""
        if labels is None:
            if self.predictor is not None:
                labels, colors = predictor_labels(self.predictor)
            else:
                labels, colors = self._labels, self._colors
        if labels is None:
            return {}
        labels = np.asarray(labels)
        if labels.shape != self.orient.ct_shape:
            raise ValueError(f"labels shape {labels.shape} differs from the CT's {self.orient.ct_shape} (z, y, x)")
        lab_c = self.orient.to_canonical(labels)
        ids = sorted(i for i in (colors or {}) if i > 0)
        boxes = _bboxes(lab_c, ids)
        if not boxes:
            return {}
        lut = label_colors(max(boxes) + 1, colors)
        f = max(1, int(np.ceil(max(lab_c.shape) / self.max_size)))
        out = {}
        for i, (lo, hi) in boxes.items():
            lo = lo // f * f  # align to the pooling grid, so every object is pooled alike
            sub = downsample_mask(lab_c[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == i, f)
            verts, tris = mask_surface(sub)
            if not len(tris):
                continue
            canon = lo + verts * f + (f - 1) / 2.0
            x, y, z = self._to_scene(canon)
            # the scene frame is a reflection of (z', y', x'): reverse the winding to face outward
            out[i] = (x.astype(np.float32), y.astype(np.float32), z.astype(np.float32),
                      np.ascontiguousarray(tris[:, ::-1]), tuple(int(c) for c in lut[i, :3]))
        return out

    def update(self, labels=None, colors=None):
        """Recompute the surfaces: from ``labels`` (CT grid) if given, else from the predictor.

        ipyvolume: existing Mesh widgets are updated in place; labels that vanished are removed.
        Static: the picture is drawn again.
        """
        surf = self.surfaces(labels, colors)
        names = self._names(surf)
        if self.figure is None:
            self.meshes = dict(surf)
            self.image.value = render_static(surf, self._scene_box(equal=False), self._size_px)
        else:
            self._update_ipv(surf, names)
        items = [f"<span style='color:#{r:02x}{g:02x}{b:02x}'>■</span> {html.escape(names[i])}"
                 for i, (*_, (r, g, b)) in surf.items()]
        text = " &nbsp; ".join(items) or "<i>no masks yet</i>"
        self.legend.value = text + (f" <span style='opacity:.6'>({self._note})</span>" if self._note else "")

    def _update_ipv(self, surf, names):
        ipv = _ipv()
        for i in list(self.meshes):
            if i not in surf:
                del self.meshes[i]
        for i, (x, y, z, tris, rgb) in surf.items():
            color = "#%02x%02x%02x" % rgb
            mesh = self.meshes.get(i)
            if mesh is None:
                self.meshes[i] = ipv.Mesh(x=x, y=y, z=z, triangles=tris, color=color, description=names[i])
            else:
                with mesh.hold_sync():
                    mesh.x, mesh.y, mesh.z, mesh.triangles, mesh.color = x, y, z, tris, color
                    mesh.description = names[i]
        self.figure.meshes = list(self.meshes.values())

    def _names(self, surf) -> dict:
        """Label value → display name: the predictor's object names, else ontology names."""
        names = {}
        if self.predictor is not None:
            objs = self.predictor.objects
            names = {1: objs[0].name} if len(objs) == 1 else {o.label_id: o.name for o in objs}
        for i in surf:
            if i not in names:
                try:
                    names[i] = by_id(i).name
                except KeyError:
                    names[i] = f"label {i}"
        return names


def render_static(surfaces: dict, box, size_px=(420, 420)) -> bytes:
    """PNG of surfaces ``{label: (x, y, z, triangles, rgb)}`` in scene mm (x = left, y = head,
    z = anterior), seen from the front-left and above, with shading. ``box``: the scene limits
    ``[(lo, hi)] * 3``, drawn in their physical proportions (a thin scan is a slab, with no empty cube)."""
    fig = Figure(figsize=(size_px[0] / 100, size_px[1] / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1), projection="3d")
    # matplotlib's z is up: plot (x, -z, y) = (left, posterior, head), i.e. LPS, seen from the front
    for x, y, z, tris, rgb in surfaces.values():
        pts = np.stack([x, -z, y], 1)
        ax.add_collection3d(Poly3DCollection(pts[tris], facecolors=np.asarray(rgb) / 255.0, shade=True,
                                             lightsource=LightSource(azdeg=225, altdeg=45), linewidths=0))
    (x0, x1), (y0, y1), (z0, z1) = box
    ax.set(xlim=(x0, x1), ylim=(-z1, -z0), zlim=(y0, y1))
    ax.set_box_aspect((x1 - x0, z1 - z0, y1 - y0))  # physical proportions
    ax.view_init(elev=_CAMERA_ELEVATION, azim=-90 + _CAMERA_AZIMUTH)  # as the ipyvolume camera
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
