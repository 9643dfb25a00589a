"""Triangle meshes of masks (scikit-image marching cubes) and their export as STL, PLY or OBJ.

    mesh = mask_mesh(pred.mask, ct)                       # LPS millimetres, watertight
    export_mesh(pred.mask, ct, "liver.stl")               # for a 3D printer / slicer
    export_mesh(pred.label_map, ct, "spleen.ply", label=by_name("spleen").id)

Surfaces are the 0.5 level set of the padded binary mask (``marching_cubes(method="lorensen")``):
closed, every edge shared by exactly two triangles, triangles wound counter-clockwise seen from
outside, vertices half a voxel outside the outermost voxels. (The Lewiner variant joins touching
sheets along edges used by four triangles; Lorensen's table keeps them apart.) Physical
coordinates apply the CT's spacing, direction and origin exactly: a vertex at voxel index
``(z, y, x)`` lands where ``ct.index_to_physical`` puts that index, in LPS mm ``(x, y, z)``.

The writers are plain numpy: binary STL (no units in the format; slicers read mm), binary
little-endian PLY (optional vertex colour) and OBJ text. Nothing is ever overwritten unless asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.measure import marching_cubes

from ._atomic import atomic_write, export_target
from .volume import CTVolume

__all__ = ["MESH_SUFFIXES", "Mesh", "mask_surface", "mask_mesh", "export_mesh"]

MESH_SUFFIXES = (".stl", ".ply", ".obj")


def mask_surface(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed triangle surface around the True voxels of a 3D bool mask, in voxel index units.

    Marching cubes on the mask padded with False, cropped to its bounding box first (a small
    object in a large scan costs only its box).

    Args:
        mask: bool (or 0/1) array ``(z, y, x)``.

    Returns:
        ``verts`` float32 ``(N, 3)`` in voxel index units ``(z, y, x)`` of ``mask`` (a vertex
        between voxel ``i`` and ``i + 1`` lies at ``i + 0.5``), and ``triangles`` uint32 ``(M, 3)``,
        counter-clockwise seen from outside in the ``(z, y, x)`` frame (positive signed volume).
        Both are empty if the mask is empty.
    """
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be 3D (z, y, x), got shape {m.shape}")
    m = m.astype(bool, copy=False)
    hit = [np.flatnonzero(m.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    if any(h.size == 0 for h in hit):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32)
    lo = np.array([h[0] for h in hit])
    hi = np.array([h[-1] + 1 for h in hit])
    box = np.pad(m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(box, level=0.5, method="lorensen", allow_degenerate=False)
    verts = (verts + (lo - 1)).astype(np.float32)  # undo the crop and the padding
    # skimage winds them clockwise from outside in (z, y, x) order: reverse to face outward
    return verts, np.ascontiguousarray(faces[:, ::-1]).astype(np.uint32)


@dataclass(frozen=True)
class Mesh:
    """A closed triangle mesh in LPS millimetres.

    Attributes:
        vertices: float64 ``(N, 3)``, LPS mm ``(x, y, z)`` (+x patient left, +y posterior, +z head).
        faces: uint32 ``(M, 3)`` vertex indices, counter-clockwise seen from outside.
    """

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def volume_ml(self) -> float:
        """Enclosed volume in mL (signed: positive when the faces point outward)."""
        a, b, c = (self.vertices[self.faces[:, i]] for i in range(3))
        return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0 / 1000.0)

    def face_normals(self) -> np.ndarray:
        """Unit outward normals ``(M, 3)`` (zero for degenerate triangles)."""
        a, b, c = (self.vertices[self.faces[:, i]] for i in range(3))
        n = np.cross(b - a, c - a)
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def _binary_mask(mask, ct: CTVolume, label) -> np.ndarray:
    if not isinstance(ct, CTVolume):
        raise TypeError(f"ct must be the CTVolume the mask belongs to (from load_ct), got {type(ct).__name__}")
    m = np.asarray(mask)
    if m.shape != ct.shape:
        raise ValueError(f"mask shape {m.shape} differs from the CT's {ct.shape} (z, y, x): pass a mask on the "
                         "CT's grid (e.g. pred.mask or pred.label_map)")
    if m.dtype.kind not in "biu":
        raise TypeError(f"mask must be bool or integer labels, got dtype {m.dtype}; threshold a probability map "
                        "first (e.g. prob > 0.5)")
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"label must be an integer label id, got {label!r}")
        out = m == label
        if not out.any():
            present = np.unique(m[m != 0])[:12].tolist()
            raise ValueError(f"label {label} does not occur in the mask (ids present: {present}): nothing to mesh")
        return out
    if m.dtype != bool:
        ids = np.unique(m[m != 0])
        if ids.size > 1:
            raise ValueError(f"the mask holds several labels (ids {ids[:12].tolist()}): pass one of them, "
                             f"e.g. label={int(ids[0])}, or a bool mask such as label_map == {int(ids[0])}")
    out = m.astype(bool)
    if not out.any():
        raise ValueError("the mask is empty (no voxel set): nothing to mesh. Segment the object first, or check "
                         "that the mask belongs to this CT")
    return out


def mask_mesh(mask, ct: CTVolume, label: int | None = None) -> Mesh:
    """The surface of a mask on ``ct``'s grid as a :class:`Mesh` in LPS millimetres.

    Args:
        mask: bool array ``(z, y, x)`` of ``ct.shape``, or an integer label map with ``label=``.
        ct: the CTVolume the mask belongs to: its spacing, direction and origin place the vertices.
        label: the label id to mesh when ``mask`` is a label map with several ids.

    Returns:
        A closed :class:`Mesh` (faces counter-clockwise seen from outside, in LPS mm).

    Raises:
        ValueError: the shape differs from the CT's, the mask is empty, or a label map holds
            several ids and no ``label`` was given.

    Example:
        >>> mesh = mask_mesh(pred.mask, ct)          # doctest: +SKIP
        >>> mesh.volume_ml, len(mesh.faces)          # doctest: +SKIP
    """
    return _mesh_of(_binary_mask(mask, ct, label), ct)


def _mesh_of(m: np.ndarray, ct: CTVolume) -> Mesh:
    verts, faces = mask_surface(m)
    points = ct.index_to_physical(verts.astype(np.float64))
    # (z, y, x) -> (x, y, z) is a reflection; a direction with det < 0 is another one
    if np.linalg.det(ct.direction) > 0:
        faces = np.ascontiguousarray(faces[:, ::-1])
    return Mesh(points, faces)


def _mesh_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ValueError(f"cannot tell the mesh format of '{path}' from its suffix {path.suffix or '(none)'!r}; "
                         "use .stl (binary STL), .ply (binary PLY) or .obj (Wavefront OBJ)")
    return suffix


def _write_stl(mesh: Mesh, f, name: str):
    tri = np.dtype([("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    rec = np.zeros(len(mesh.faces), tri)
    rec["normal"] = mesh.face_normals()
    rec["v"] = mesh.vertices[mesh.faces]
    # a binary STL header must not start with "solid" (readers would take it for ASCII STL)
    header = f"ctsam3d_nb mesh {name}, LPS mm".encode("ascii", "replace")[:80].ljust(80, b" ")
    f.write(header)
    f.write(np.uint32(len(rec)).tobytes())
    f.write(rec.tobytes())


def _write_ply(mesh: Mesh, f, name: str, color):
    vtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    props = "property float x\nproperty float y\nproperty float z\n"
    if color is not None:
        vtype += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        props += "property uchar red\nproperty uchar green\nproperty uchar blue\n"
    verts = np.zeros(len(mesh.vertices), vtype)
    for i, axis in enumerate("xyz"):
        verts[axis] = mesh.vertices[:, i]
    if color is not None:
        for c, channel in zip(color, ("red", "green", "blue")):
            verts[channel] = c
    faces = np.zeros(len(mesh.faces), [("n", "u1"), ("v", "<i4", (3,))])
    faces["n"], faces["v"] = 3, mesh.faces
    safe = name.replace("\n", " ")
    f.write((f"ply\nformat binary_little_endian 1.0\ncomment ctsam3d_nb mesh {safe}, LPS millimetres\n"
             f"element vertex {len(verts)}\n{props}element face {len(faces)}\n"
             "property list uchar int vertex_indices\nend_header\n").encode("ascii", "replace"))
    f.write(verts.tobytes())
    f.write(faces.tobytes())


def _write_obj(mesh: Mesh, f, name: str):
    safe = "_".join(name.split()) or "mesh"
    f.write(f"# ctsam3d_nb mesh {name}, LPS millimetres\no {safe}\n".encode("ascii", "replace"))
    np.savetxt(f, mesh.vertices, fmt="v %.5f %.5f %.5f")
    np.savetxt(f, mesh.faces.astype(np.int64) + 1, fmt="f %d %d %d")  # OBJ counts from 1


def _checked_color(color):
    """``(r, g, b)`` 0..255 ints from 0..255 values, matplotlib's 0..1 floats, or a matplotlib colour name."""
    if color is None:
        return None
    if isinstance(color, str):
        from matplotlib.colors import to_rgb

        try:
            color = tuple(float(v) for v in to_rgb(color))
        except ValueError:
            raise ValueError(f"color {color!r} is not a matplotlib colour name ('red', 'tab:blue', '#ff8800'); "
                             "or pass (r, g, b) values 0..255") from None
    c = np.asarray(color)
    if c.shape != (3,) or c.dtype.kind not in "iuf" or np.any(c < 0) or np.any(c > 255):
        raise ValueError(f"color must be (r, g, b) with values 0..255 (or 0..1 floats, or a name), got {color!r}")
    if c.dtype.kind == "f" and np.all(c <= 1):  # matplotlib's convention: (1.0, 0.2, 0.2) is a light red
        c = c * 255
    return tuple(int(round(float(v))) for v in c)


def export_mesh(mask, ct: CTVolume, path, overwrite: bool = False, label: int | None = None,
                name: str | None = None, color=None) -> Path:
    """Write the surface of a mask as an STL, PLY or OBJ file in LPS millimetres, atomically.

    Args:
        mask: bool array ``(z, y, x)`` of ``ct.shape``, or an integer label map with ``label=``.
        ct: the CTVolume the mask belongs to (spacing, direction and origin place the vertices).
        path: output file; the suffix picks the format: ``.stl`` (binary), ``.ply`` (binary
            little-endian), ``.obj`` (text).
        overwrite: replace an existing file. Without it an existing file is never touched.
        label: the label id to export when ``mask`` is a label map with several ids.
        name: the object's name in the file's header / OBJ object line (default: the file stem).
        color: vertex colour, written to PLY only (STL and OBJ have none): ``(r, g, b)`` 0..255, floats
            0..1 as matplotlib takes them (all floats <= 1 are read so), or a matplotlib colour name.

    Returns:
        The resolved output path.

    Raises:
        ValueError: unknown suffix, empty mask, wrong shape, several labels without ``label=``,
            or the path is the CT's own file.
        FileExistsError: the file exists and ``overwrite`` is False.
        FileNotFoundError: the output folder does not exist.

    Example:
        >>> export_mesh(pred.mask, ct, "liver.stl")       # doctest: +SKIP
    """
    path = Path(path).expanduser()
    suffix = _mesh_suffix(path)
    rgb = _checked_color(color)
    m = _binary_mask(mask, ct, label)  # every input checked before anything is computed or written
    target = export_target(path, ct.source, overwrite)
    mesh = _mesh_of(m, ct)
    title = str(name) if name is not None else path.stem

    def write(tmp):
        with open(tmp, "wb") as f:
            if suffix == ".stl":
                _write_stl(mesh, f, title)
            elif suffix == ".ply":
                _write_ply(mesh, f, title, rgb)
            else:
                _write_obj(mesh, f, title)

    atomic_write(target, write, suffix=suffix)
    return target
