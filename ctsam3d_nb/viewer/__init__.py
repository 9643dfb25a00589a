"""Notebook viewers: click-to-segment slice views (ipympl) and a 3D surface view (ipyvolume).

    from ctsam3d_nb.viewer import SliceViewer, VolumeView
    %matplotlib widget                                   # so that clicks reach Python
    view3d = VolumeView(predictor)                       # backend="static": a PNG where ipyvolume cannot render
    viewer = SliceViewer(ct, predictor, volume_view=view3d)
    viewer                                               # left click = include, right click = exclude
    HBox([viewer, view3d])                               # both are ipywidgets boxes: put them in any layout
    viewer.save_figure("views.png"); viewer.export_mesh("liver.stl")

``SliceViewer`` is one class over plain functions, each tested without a display: the pixel ↔ voxel
geometry and click markers in :mod:`ctsam3d_nb.viewer.geometry`, the view sizes in
:mod:`ctsam3d_nb.viewer.layout`, the figures (built once, updated with ``set_data``) in
:mod:`ctsam3d_nb.viewer.canvas`, the widgets and status texts in :mod:`ctsam3d_nb.viewer.controls`,
what is written to disk in :mod:`ctsam3d_nb.viewer.exports`. ``VolumeView`` imports ipyvolume only
when used.
"""
from .canvas import ipympl_active
from .geometry import VIEWS, Orientation, data_to_voxel, voxel_to_data
from .layout import plan_views
from .slice_viewer import SliceViewer

__all__ = ["SliceViewer", "VolumeView", "Orientation", "VIEWS", "data_to_voxel", "voxel_to_data", "ipympl_active",
           "plan_views"]


def __getattr__(name):
    if name == "VolumeView":  # lazy: ipyvolume (and pythreejs) take a while to import
        from .volume_view import VolumeView

        return VolumeView
    raise AttributeError(f"module 'ctsam3d_nb.viewer' has no attribute {name!r}")
