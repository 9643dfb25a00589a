"""`VolumeView`: the masks as 3D surfaces (ipyvolume), optionally over a CT volume render.

    view = VolumeView(predictor)          # or VolumeView(label_map, ct)
    view                                  # displays the ipyvolume Figure widget
    view.update()                         # after clicks; SliceViewer(..., volume_view=view) does it for you

Surfaces come from :func:`.geometry.mask_surface` (surface nets in numpy: ipyvolume's
``plot_isosurface`` needs scikit-image, which we do not depend on), on masks any-pooled
so no axis exceeds ``max_size``. The scene is in millimetres with the patient seen
from the front: x = patient left, y = head, z = anterior (a right-handed frame, so
nothing is mirrored); all three axes have the same range, so the aspect is physical.
The Figure widget itself is displayed: ``ipv.show()``'s control panel fails in JupyterLab 4.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np

from ..volume import CTVolume
from .geometry import Orientation, downsample_mask, label_colors, mask_surface, predictor_labels

__all__ = ["VolumeView"]


def _ipv():
    try:
        import ipyvolume
    except ImportError as e:  # ipyvolume 0.6.3 imports ipython_genutils without declaring it
        raise ImportError(f"VolumeView needs ipyvolume ({e}); install it with "
                          "`pip install ipyvolume ipython_genutils`") from None
    return ipyvolume


def _bboxes(labels_c: np.ndarray, ids=None) -> dict:
    """``{id: (lo, hi)}`` index boxes of the non-zero ids of a label map (one pass, scipy)."""
    from scipy import ndimage

    lab = labels_c.view(np.uint8) if labels_c.dtype == bool else labels_c
    found = ndimage.find_objects(lab, max_label=max(ids) if ids else 0)
    wanted = set(ids) if ids else None
    return {i + 1: (np.array([s.start for s in sl]), np.array([s.stop for s in sl]))
            for i, sl in enumerate(found) if sl is not None and (wanted is None or i + 1 in wanted)}


class VolumeView:
    """The current masks as coloured 3D surfaces, updated on demand.

    Args:
        predictor_or_labels: a :class:`~ctsam3d_nb.predictor.Predictor` (its objects are shown),
            or a label map / bool mask on the CT grid ``(z, y, x)``.
        ct: the CT the labels belong to (spacing and orientation); default: the predictor's.
            Without it, unit spacing and the array axes as given.
        show_ct: also volume-render the CT, strided so no axis exceeds ``ct_size``.
        max_size: masks are any-pooled by an integer factor until no axis exceeds this.
        width, height: pixel size of the 3D canvas.
        ct_window: HU range ``(low, high)`` mapped onto the volume render's transfer function.
        ct_size: largest axis of the volume-rendered CT.

    Attributes:
        figure: the ``ipyvolume.Figure`` widget (``figure.meshes``: one Mesh per label shown).
    """

    def __init__(self, predictor_or_labels, ct: CTVolume | None = None, show_ct: bool = False,
                 max_size: int = 128, width: int = 420, height: int = 420, ct_window=(-300, 1200),
                 ct_size: int = 128):
        ipv = _ipv()
        src = predictor_or_labels
        self.predictor = src if hasattr(src, "objects") and hasattr(src, "label_map") else None
        if self.predictor is not None:
            ct = ct if ct is not None else self.predictor.ct
            if ct is None:
                raise RuntimeError("the predictor has no volume: call predictor.set_volume(ct) first")
            self._labels, self._colors = None, {}
        else:
            self._labels = np.asarray(src)
            if self._labels.ndim != 3 or self._labels.dtype.kind not in "biu":
                raise ValueError(f"expected a Predictor or a 3D bool/integer label map, got "
                                 f"{type(src).__name__} {getattr(self._labels, 'shape', '')}")
            self._colors = {1: (255, 64, 64)} if self._labels.dtype == bool else {}
        if ct is not None and not isinstance(ct, CTVolume):
            raise TypeError(f"ct= must be a CTVolume, got {type(ct).__name__}")
        shape = ct.shape if ct is not None else self._labels.shape
        if self._labels is not None and self._labels.shape != shape:
            raise ValueError(f"labels shape {self._labels.shape} differs from the CT's {shape} (z, y, x)")
        self.ct, self.max_size = ct, int(max_size)
        self.orient = (Orientation.from_ct(ct) if ct is not None
                       else Orientation(tuple(shape), (0, 1, 2), (False, False, False), (1.0, 1.0, 1.0)))
        self.figure = ipv.Figure(width=int(width), height=int(height))
        self._set_limits()
        self.meshes: dict[int, object] = {}  # label value -> ipyvolume Mesh
        self.legend = W.HTML()
        self.legend.add_class("ctsam3d-volume-legend")
        self._widget = W.VBox([self.figure, self.legend])
        if show_ct:
            if ct is None:
                raise ValueError("show_ct=True needs ct=")
            self._add_ct(ct_window, int(ct_size))
        self.update()

    @property
    def widget(self):
        """The top-level widget: the ipyvolume Figure and a colour legend."""
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display

        display(self._widget)

    def show(self):
        """Display the view in the current notebook cell."""
        self._ipython_display_()

    # ------------------------------------------------------------------ geometry
    def _to_scene(self, canon_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canonical (z', y', x') indices → scene mm (x = left, y = head, z = anterior)."""
        sz, sy, sx = self.orient.spacing
        return canon_zyx[:, 2] * sx, canon_zyx[:, 0] * sz, -canon_zyx[:, 1] * sy

    def _set_limits(self):
        n = np.asarray(self.orient.shape, float)
        corners = np.array([[-0.5] * 3, n - 0.5])
        x, y, z = self._to_scene(corners)
        centre = [v.mean() for v in (x, y, z)]
        half = max(np.ptp(v) for v in (x, y, z)) / 2
        self.figure.xlim, self.figure.ylim, self.figure.zlim = ([c - half, c + half] for c in centre)

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

        Existing Mesh widgets are updated in place; labels that vanished are removed.
        """
        ipv = _ipv()
        surf = self.surfaces(labels, colors)
        names = self._names(surf)
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
        items = [f"<span style='color:#{r:02x}{g:02x}{b:02x}'>■</span> {html.escape(names[i])}"
                 for i, (*_, (r, g, b)) in surf.items()]
        self.legend.value = " &nbsp; ".join(items) or "<i>no masks yet</i>"

    def _names(self, surf) -> dict:
        """Label value → display name: the predictor's object names, else ontology names."""
        from ..anatomy import by_id

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
