"""Meshes: marching cubes in LPS mm, watertight and outward; STL/PLY/OBJ read back; nothing overwritten."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from scipy import ndimage

from ctsam3d_nb import CTVolume
from ctsam3d_nb.meshes import MESH_SUFFIXES, export_mesh, mask_mesh, mask_surface

LAI = np.diag([1.0, -1.0, -1.0])
# index axis i -> -S, j -> A (= -P), k -> L: a permuted, flipped file order (det +1)
PERMUTED = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])
MIRRORED = np.diag([1.0, 1.0, -1.0])  # det -1: the index frame is left-handed in LPS
SPACING = (3.0, 1.5, 0.7)  # (z, y, x), anisotropic
ORIGIN = (-120.0, 35.5, 802.25)


def ct_with(direction, shape=(14, 16, 18), spacing=SPACING):
    return CTVolume.from_array(np.zeros(shape, np.int16), spacing=spacing, origin=ORIGIN, direction=direction)


def liver_like_blob(shape=(40, 48, 56), seed=3):
    """A lobed, non-convex smooth blob with a notch (the kind of shape the surface nets broke on)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    c = np.asarray(shape, np.float32) / 2
    r = np.sqrt(((zz - c[0]) / 0.6) ** 2 + (yy - c[1]) ** 2 + ((xx - c[2]) / 1.4) ** 2)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 3) * 40
    blob = r + noise < 17
    blob[:, int(c[1]) - 2:int(c[1]) + 2, : int(c[2])] = False  # a notch: two lobes meeting
    lab, n = ndimage.label(blob)
    return lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1 if n else blob


def edge_uses(faces):
    """How many triangles use each undirected edge, and whether every directed edge occurs once."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    _, counts = np.unique(np.sort(directed, 1), axis=0, return_counts=True)
    _, dcounts = np.unique(directed, axis=0, return_counts=True)
    return counts, bool(np.all(dcounts == 1))


# ---------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("direction", [np.eye(3), LAI, PERMUTED, MIRRORED], ids=["LPS", "LAI", "permuted", "mirrored"])
def test_vertices_land_on_the_physical_faces_of_the_voxels(direction):
    ct = ct_with(direction)
    mask = np.zeros(ct.shape, bool)
    lo, hi = np.array([3, 4, 5]), np.array([9, 12, 11])  # voxels lo..hi-1 (z, y, x)
    mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    mesh = mask_mesh(mask, ct)
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.uint32
    # back to index units through the CT's own geometry: on the box half a voxel outside the voxels
    idx = ct.physical_to_index(mesh.vertices)
    assert np.allclose(idx.min(0), lo - 0.5, atol=1e-4) and np.allclose(idx.max(0), hi - 0.5, atol=1e-4)
    on_face = np.isclose(idx, lo - 0.5, atol=1e-4) | np.isclose(idx, hi - 0.5, atol=1e-4)
    assert np.all(on_face.any(1))  # every vertex of a box surface lies on one of its six faces
    # by hand, without the CT's helpers: p = origin + D @ (index_xyz * spacing_xyz); D's column 0 is index axis x
    rel = (mesh.vertices - np.asarray(ORIGIN)) @ direction  # = index_xyz * spacing_xyz
    sp_xyz = np.array(SPACING[::-1])
    face = np.isclose(rel[:, 0], (lo[2] - 0.5) * sp_xyz[0], atol=1e-6)  # the face x = lo_x - 0.5
    assert face.sum() >= 4
    centre_xyz = np.array([lo[2] - 0.5, (lo[1] + hi[1] - 1) / 2, (lo[0] + hi[0] - 1) / 2]) * sp_xyz
    assert np.allclose(rel[face].mean(0), centre_xyz, atol=1e-6)
    assert np.allclose(np.asarray(ORIGIN) + direction @ centre_xyz, mesh.vertices[face].mean(0), atol=1e-6)
    # outward whatever the handedness of the file's index frame: positive volume, close to the voxels'
    voxels_ml = mask.sum() * ct.voxel_volume_ml
    assert 0.85 * voxels_ml < mesh.volume_ml <= voxels_ml + 1e-9
    normals = mesh.face_normals()
    centroid = mesh.vertices.mean(0)
    tri_centres = mesh.vertices[mesh.faces].mean(1)
    assert np.mean(np.einsum("ij,ij->i", normals, tri_centres - centroid) > 0) > 0.99


def test_liver_like_blob_is_watertight_and_outward():
    blob = liver_like_blob()
    assert blob.sum() > 5000
    ct = ct_with(LAI, shape=blob.shape, spacing=(2.5, 0.8, 0.8))
    mesh = mask_mesh(blob, ct)
    counts, consistent = edge_uses(mesh.faces)
    assert np.all(counts == 2), f"edges used by {sorted(set(counts.tolist()))} triangles"
    assert consistent  # every edge is walked once in each direction: one orientation throughout
    assert 0.9 * blob.sum() * ct.voxel_volume_ml < mesh.volume_ml < 1.001 * blob.sum() * ct.voxel_volume_ml
    assert len(np.unique(mesh.faces)) == len(mesh.vertices)  # no stray vertices


def test_touching_voxels_do_not_make_four_triangle_edges():
    """Diagonal neighbours (an edge or a corner in common) are the cases that broke the surface nets."""
    m = np.zeros((6, 6, 6), bool)
    m[1, 1, 1] = m[2, 2, 1] = m[3, 3, 3] = m[2, 2, 2] = True
    rng = np.random.default_rng(0)
    noise = np.pad(rng.random((12, 12, 12)) > 0.55, 1)
    for mask in (m, noise):
        verts, tris = mask_surface(mask)
        counts, consistent = edge_uses(tris)
        assert np.all(counts == 2) and consistent


def test_mask_surface_crops_to_the_object_and_keeps_index_units():
    m = np.zeros((50, 60, 70), bool)
    m[40:43, 5:9, 60:66] = True
    verts, tris = mask_surface(m)
    assert np.allclose(verts.min(0), [39.5, 4.5, 59.5]) and np.allclose(verts.max(0), [42.5, 8.5, 65.5])


def test_bad_input_names_the_problem(tmp_path):
    ct = ct_with(np.eye(3))
    with pytest.raises(ValueError, match="empty"):
        mask_mesh(np.zeros(ct.shape, bool), ct)
    with pytest.raises(ValueError, match="differs from the CT"):
        mask_mesh(np.ones((2, 2, 2), bool), ct)
    with pytest.raises(TypeError, match="CTVolume"):
        mask_mesh(np.ones(ct.shape, bool), np.zeros(ct.shape))
    with pytest.raises(TypeError, match="threshold"):
        mask_mesh(np.ones(ct.shape, np.float32), ct)
    labels = np.zeros(ct.shape, np.uint8)
    labels[2:5, 2:5, 2:5], labels[8:11, 8:11, 8:11] = 5, 7
    with pytest.raises(ValueError, match="several labels.*label=5"):
        mask_mesh(labels, ct)
    with pytest.raises(ValueError, match="does not occur"):
        mask_mesh(labels, ct, label=9)
    assert mask_mesh(labels, ct, label=7).volume_ml > 0
    mask = labels > 0
    with pytest.raises(ValueError, match=r"\.stl.*\.ply.*\.obj"):
        export_mesh(mask, ct, tmp_path / "liver.stp")
    with pytest.raises(ValueError, match="suffix"):
        export_mesh(mask, ct, tmp_path / "liver")
    with pytest.raises(FileNotFoundError, match="create it first"):
        export_mesh(mask, ct, tmp_path / "nowhere" / "liver.stl")
    with pytest.raises(ValueError, match="color"):
        export_mesh(mask, ct, tmp_path / "liver.ply", color=(300, 0, 0))
    with pytest.raises(ValueError, match="not a matplotlib colour name"):
        export_mesh(mask, ct, tmp_path / "liver.ply", color="liverish")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- files
def read_stl(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<I", data[80:84])
    rec = np.frombuffer(data[84:], np.dtype([("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")]))
    assert len(rec) == n and len(data) == 84 + 50 * n and not data.startswith(b"solid")
    return rec["v"].astype(np.float64), rec["normal"].astype(np.float64)


def read_ply(path):
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode().splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    has_colour = "property uchar red" in header
    vtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("r", "u1"), ("g", "u1"), ("b", "u1")] if has_colour else [])
    verts = np.frombuffer(data, vtype, nv, end)
    faces = np.frombuffer(data, [("n", "u1"), ("v", "<i4", (3,))], nf, end + verts.nbytes)
    assert np.all(faces["n"] == 3) and end + verts.nbytes + faces.nbytes == len(data)
    xyz = np.stack([verts["x"], verts["y"], verts["z"]], 1).astype(np.float64)
    rgb = np.stack([verts["r"], verts["g"], verts["b"]], 1) if has_colour else None
    return xyz, faces["v"].astype(np.int64), rgb


def read_obj(path):
    v, f = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            v.append([float(t) for t in line.split()[1:]])
        elif line.startswith("f "):
            f.append([int(t) - 1 for t in line.split()[1:]])
    return np.array(v), np.array(f)


def test_stl_ply_obj_read_back_to_the_same_mesh(tmp_path):
    blob = liver_like_blob(shape=(20, 24, 28), seed=1)
    ct = ct_with(PERMUTED, shape=blob.shape)
    mesh = mask_mesh(blob, ct)
    tris = mesh.vertices[mesh.faces]

    stl = export_mesh(blob, ct, tmp_path / "liver.STL", name="liver")  # the suffix is case-insensitive
    v, normals = read_stl(stl)
    assert np.allclose(v, tris, atol=1e-3)  # float32 in the file
    assert np.allclose(normals, mesh.face_normals(), atol=1e-5)
    assert b"liver" in stl.read_bytes()[:80]

    ply = export_mesh(blob, ct, tmp_path / "liver.ply", color=(221, 130, 101))
    xyz, faces, rgb = read_ply(ply)
    assert np.allclose(xyz, mesh.vertices, atol=1e-3) and np.array_equal(faces, mesh.faces)
    assert np.all(rgb == (221, 130, 101))
    assert read_ply(export_mesh(blob, ct, tmp_path / "plain.ply"))[2] is None
    # matplotlib's colours: 0..1 floats were written as (1, 0, 0), a near-black mesh (session 30 review)
    for color, want in (((1.0, 0.2, 0.2), (255, 51, 51)), ("tab:blue", (31, 119, 180)), ((1, 0, 0), (1, 0, 0))):
        assert np.all(read_ply(export_mesh(blob, ct, tmp_path / "c.ply", color=color, overwrite=True))[2] == want)
    (tmp_path / "c.ply").unlink()

    obj = export_mesh(blob, ct, tmp_path / "liver.obj")
    xyz, faces = read_obj(obj)
    assert np.allclose(xyz, mesh.vertices, atol=1e-4) and np.array_equal(faces, mesh.faces)
    counts, consistent = edge_uses(faces)
    assert np.all(counts == 2) and consistent  # still watertight after the round trip
    assert set(MESH_SUFFIXES) == {".stl", ".ply", ".obj"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liver.STL", "liver.obj", "liver.ply", "plain.ply"]


def test_existing_files_are_never_overwritten_unless_asked(tmp_path):
    ct = ct_with(np.eye(3))
    mask = np.zeros(ct.shape, bool)
    mask[4:8, 4:8, 4:8] = True
    target = tmp_path / "organ.stl"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_mesh(mask, ct, target)
    assert target.read_bytes() == b"precious"
    export_mesh(mask, ct, target, overwrite=True)
    assert read_stl(target)[0].shape[1:] == (3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["organ.stl"]  # no temporary file left


@pytest.mark.realct
def test_refuses_to_write_into_the_input_dicom_folder(real_ct_dir):
    from ctsam3d_nb import load_ct

    ct = load_ct(real_ct_dir / "dicom_series")
    mask = np.zeros(ct.shape, bool)
    mask[5:10, 200:260, 200:260] = True
    with pytest.raises(ValueError, match="input CT"):
        export_mesh(mask, ct, real_ct_dir / "dicom_series" / "liver.stl")


@pytest.mark.realct
def test_real_liver_mesh_is_watertight(real_ct_dir):
    from ctsam3d_nb import load_ct, load_labels
    from ctsam3d_nb.anatomy import by_name

    ct = load_ct(real_ct_dir / "example_ct_sm.nii.gz")
    labels = load_labels(real_ct_dir / "example_seg.nii.gz", ct)
    liver = labels == by_name("liver").id
    mesh = mask_mesh(liver, ct)
    counts, consistent = edge_uses(mesh.faces)
    assert np.all(counts == 2) and consistent
    assert 0.9 < mesh.volume_ml / (liver.sum() * ct.voxel_volume_ml) <= 1.0
    # the mesh lies where the CT says the liver is (RAS file: a flip of x and y)
    idx = ct.physical_to_index(mesh.vertices)
    vox = np.argwhere(liver)
    assert np.allclose(idx.min(0), vox.min(0) - 0.5, atol=1e-4) and np.allclose(idx.max(0), vox.max(0) + 0.5, atol=1e-4)
