"""DICOM-SEG export (save_dicom_seg, highdicom) and the DICOM provenance kept on CTVolume.

The SEGs are read back with pydicom alone (frame by frame: which source SOP instance, which
segment, which pixels), independently of the writer, and compared voxel for voxel with the
label map that was written.
"""
from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO, synthetic_hu

from ctsam3d_nb import CTVolume, load_ct, load_labels, save_dicom_seg
from ctsam3d_nb.anatomy import STRUCTURES, by_name
from ctsam3d_nb.dicom_seg import DicomSegWarning, property_codes
from ctsam3d_nb.errors import CTLoadError

REAL_LABELS = REPO.parent / "shared" / "data" / "real_ct" / "example_seg_dicom.nii.gz"
_STRUCTURES = list(STRUCTURES.values()) if hasattr(STRUCTURES, "values") else list(STRUCTURES)


# ------------------------------------------------------------------ helpers
def _pydicom():
    return pytest.importorskip("pydicom")


def write_series(folder, hu, spacing_zyx=(2.0, 0.8, 0.7), origin=(-10.0, 20.0, 5.0), row=(1, 0, 0), col=(0, 1, 0),
                 reverse_names=True):
    """A CT series of ``hu`` (z, y, x) with pydicom: slice k at origin + k * spacing along row x col.

    File names run against the slice order when ``reverse_names`` (so name order is not z order).
    Returns the file paths in slice order."""
    pydicom = _pydicom()
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    row, col = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row, col)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    nz = hu.shape[0]
    paths = []
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.Manufacturer = "CT", "test"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Test", "P1", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = \
            "20240101", "120000", "1", "", ""
        ds.SeriesNumber, ds.InstanceNumber = 7, k + 1
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * spacing_zyx[0] * normal]
        ds.ImageOrientationPatient = [float(v) for v in (*row, *col)]
        ds.PixelSpacing = [spacing_zyx[1], spacing_zyx[2]]  # row spacing (y), column spacing (x)
        ds.SliceThickness = spacing_zyx[0]
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(hu[k], dtype="<i2").tobytes()
        name = f"img{(nz - 1 - k) if reverse_names else k:03d}.dcm"
        pydicom.dcmwrite(folder / name, ds, enforce_file_format=True)
        paths.append(folder / name)
    return paths


def read_seg(path, ct):
    """The SEG at ``path`` as a label map on ``ct``'s grid, rebuilt with pydicom only.

    Each frame is placed on the z slice whose source file has the frame's referenced SOP instance
    UID; its segment number is translated to a label id through the segment's label (an ontology
    name, or ``label_<id>``, or the ``names=`` given). Returns (labels, segment labels by number, dataset)."""
    pydicom = _pydicom()
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    seg_labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    sop_of_file = []
    for f in ct.dicom_files:
        src = pydicom.dcmread(f, stop_before_pixels=True)
        sop_of_file.append(str(src.SOPInstanceUID or src.file_meta.MediaStorageSOPInstanceUID))
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    out = np.zeros(ct.shape, np.int32)  # segment numbers
    shared = ds.SharedFunctionalGroupsSequence[0]
    for i, per_frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        def item(keyword):  # a functional group is per frame, or shared when all frames agree
            return (per_frame if keyword in per_frame else shared)[keyword][0]

        uid = str(item("DerivationImageSequence").SourceImageSequence[0].ReferencedSOPInstanceUID)
        number = int(item("SegmentIdentificationSequence").ReferencedSegmentNumber)
        k = sop_of_file.index(uid)
        src = pydicom.dcmread(ct.dicom_files[k], stop_before_pixels=True)
        pos = [float(v) for v in item("PlanePositionSequence").ImagePositionPatient]
        assert np.allclose(pos, [float(v) for v in src.ImagePositionPatient], atol=1e-3)  # the frame sits on its source
        on = frames[i] > 0
        assert not (out[k][on] > 0).any(), "segments of a label map cannot overlap"
        out[k][on] = number
    return out, seg_labels, ds


def as_ids(numbers, seg_labels, ids_by_label):
    lut = np.zeros(max(seg_labels) + 1, np.int64)
    for n, label in seg_labels.items():
        lut[n] = ids_by_label[label]
    return lut[numbers]


@pytest.fixture
def hd():
    return pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def real_dicom():
    from conftest import REAL_CT

    folder = REAL_CT / "dicom_series"
    if not (folder.is_dir() and (REAL_CT / "example_seg_dicom.nii.gz").is_file()):
        pytest.skip(f"real DICOM series not found at {folder}")
    ct = load_ct(folder)
    return ct, load_labels(REAL_LABELS, like=ct)


# ------------------------------------------------------------------ CTVolume provenance
@pytest.mark.realct
def test_load_ct_keeps_the_dicom_files_in_z_order(real_dicom):
    pydicom = _pydicom()
    ct, _ = real_dicom
    assert ct.dicom_files is not None and len(ct.dicom_files) == ct.shape[0] == 20
    assert ct.series_uid is None  # this anonymised series has a blank SeriesInstanceUID
    for k, f in enumerate(ct.dicom_files):
        ds = pydicom.dcmread(f)
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], ct.index_to_physical((k, 0, 0)), atol=1e-3)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(ct.array[k], hu)  # array[k] is the image of dicom_files[k], pixel for pixel


def test_synthetic_series_in_reverse_name_order_coronal(tmp_path):
    hu = synthetic_hu((6, 9, 11))
    paths = write_series(tmp_path / "cor", hu, row=(1, 0, 0), col=(0, 0, -1))  # coronal slices, stacked along +y
    ct = load_ct(tmp_path / "cor")
    assert ct.dicom_files == tuple(str(p.resolve()) for p in paths)  # z order, not name order
    assert ct.series_uid is not None and len(ct.series_uid) > 10
    assert np.array_equal(ct.array, hu)


def test_ctvolume_provenance_defaults_pickles_and_checks():
    ct = CTVolume.from_array(synthetic_hu((4, 5, 6)), spacing=(2, 1, 1))
    assert ct.dicom_files is None and ct.series_uid is None
    img = sitk.GetImageFromArray(synthetic_hu((3, 4, 5)))
    v = CTVolume(img, "/x", dicom_files=["/x/a", "/x/b", "/x/c"], series_uid=" 1.2.3 ")
    assert v.dicom_files == ("/x/a", "/x/b", "/x/c") and v.series_uid == "1.2.3"
    back = pickle.loads(pickle.dumps(v))
    assert back.dicom_files == v.dicom_files and back.series_uid == "1.2.3" and back.same_geometry(v)
    with pytest.raises(ValueError, match="3 z slices"):
        CTVolume(img, dicom_files=["/x/a"])
    with pytest.raises(TypeError, match="sequence of file paths"):
        CTVolume(img, dicom_files="/x/a")


# ------------------------------------------------------------------ the real series
@pytest.mark.realct
def test_real_series_seg_reads_back_voxel_exact(real_dicom, hd, tmp_path):
    ct, labels = real_dicom
    out = tmp_path / "seg.dcm"
    with pytest.warns(DicomSegWarning, match="StudyInstanceUID, SeriesInstanceUID"):
        assert save_dicom_seg(labels, ct, out) == out.resolve()
    numbers, seg_labels, ds = read_seg(out, ct)
    ids = [int(v) for v in np.unique(labels) if v]
    assert len(seg_labels) == len(ids) == 31
    assert sorted(by_name(n).id for n in seg_labels.values()) == ids  # one segment per id, named after it
    assert np.array_equal(as_ids(numbers, seg_labels, {n: by_name(n).id for n in seg_labels.values()}), labels)
    # identification and codes
    liver = next(s for s in ds.SegmentSequence if s.SegmentLabel == "liver")
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert liver.SegmentAlgorithmType == "SEMIAUTOMATIC"
    algo = liver.SegmentationAlgorithmIdentificationSequence[0]
    import ctsam3d_nb

    assert (algo.AlgorithmName, algo.AlgorithmVersion) == ("ctsam3d_nb", ctsam3d_nb.__version__)
    humerus = next(s for s in ds.SegmentSequence if s.SegmentLabel == "humerus_left")
    t = humerus.SegmentedPropertyTypeCodeSequence[0]
    assert t.CodeMeaning == "Humerus" and t.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Left"
    src = _pydicom().dcmread(ct.dicom_files[0], stop_before_pixels=True)
    assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID  # kept where the source has one
    # highdicom's own reader agrees, per source instance
    sops = [str(_pydicom().dcmread(f, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID)
            for f in ct.dicom_files]
    seg = hd.seg.segread(out)
    back = seg.get_pixels_by_source_instance(sops, combine_segments=True, relabel=False)
    assert np.array_equal(back, numbers)


@pytest.mark.realct
def test_refusals_on_the_real_series(real_dicom, hd, tmp_path, real_ct_dir):
    ct, labels = real_dicom
    before = sorted(p.name for p in (real_ct_dir / "dicom_series").iterdir())
    with pytest.raises(ValueError, match="source DICOM folder"):
        save_dicom_seg(labels, ct, real_ct_dir / "dicom_series" / "seg.dcm")
    with pytest.raises(ValueError, match="source DICOM folder"):  # even when asked to overwrite a source file
        save_dicom_seg(labels, ct, ct.dicom_files[3], overwrite=True)
    assert sorted(p.name for p in (real_ct_dir / "dicom_series").iterdir()) == before
    with pytest.raises(ValueError, match=r"shape \(20, 256, 512\).*load_labels\(path, like=ct\)"):
        save_dicom_seg(labels[:, ::2], ct, tmp_path / "a.dcm")
    nifti = load_ct(real_ct_dir / "example_ct_sm.nii.gz")
    with pytest.raises(ValueError, match="not loaded from a DICOM series.*load_ct\\(folder\\).*save_mask"):
        save_dicom_seg(load_labels(real_ct_dir / "example_seg.nii.gz", like=nifti), nifti, tmp_path / "b.dcm")
    assert not list(tmp_path.iterdir())


@pytest.mark.realct
def test_a_folder_of_one_multi_frame_ct_loads_as_its_series(real_dicom, hd, tmp_path):
    """An enhanced (multi-frame) CT is one file holding every slice: its folder was refused as 'a single slice,
    a 2D image'. Made here from the real series with highdicom; every slice must land where the series has it."""
    pydicom = _pydicom()
    ref, labels = real_dicom
    src = [pydicom.dcmread(f) for f in ref.dicom_files]
    for ds in src:  # the anonymised series has blank UIDs, which an enhanced CT may not
        for kw in ("SOPInstanceUID", "SOPClassUID"):
            if not str(getattr(ds, kw, "")).strip():
                setattr(ds, kw, getattr(ds.file_meta, "MediaStorage" + kw))
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
            if not str(getattr(ds, kw, "")).strip():
                setattr(ds, kw, {"StudyInstanceUID": "1.2.3.4", "SeriesInstanceUID": "1.2.3.5",
                                 "FrameOfReferenceUID": "1.2.3.6"}[kw])
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(src, series_instance_uid=hd.UID(), series_number=99,
                                                        sop_instance_uid=hd.UID(), instance_number=1)
    (tmp_path / "mf").mkdir()
    enhanced.save_as(tmp_path / "mf" / "enhanced.dcm")
    (tmp_path / "bare").mkdir()  # DICOM files often have no suffix at all
    enhanced.save_as(tmp_path / "bare" / "IM0001")
    for source in (tmp_path / "mf", tmp_path / "mf" / "enhanced.dcm", tmp_path / "bare"):
        ct = load_ct(source)
        assert ct.shape == ref.shape and np.allclose(ct.spacing, ref.spacing) and ct.dicom_files is None
        ref_z = [ref.index_to_physical((j, 0, 0)) for j in range(ref.shape[0])]
        for k in range(ct.shape[0]):
            j = [n for n, q in enumerate(ref_z) if np.allclose(q, ct.index_to_physical((k, 0, 0)), atol=1e-3)]
            assert len(j) == 1 and np.array_equal(ct.array[k], ref.array[j[0]])
        with pytest.raises(ValueError, match="one multi-frame .* save_mask"):
            save_dicom_seg(load_labels(REAL_LABELS, like=ct), ct, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


# ------------------------------------------------------------------ a synthetic series
@pytest.fixture
def coronal(tmp_path):
    hu = synthetic_hu((5, 12, 10), seed=3)
    write_series(tmp_path / "series", hu, row=(0, 1, 0), col=(0, 0, -1))  # sagittal slices, stacked along -x
    return load_ct(tmp_path / "series")


def test_a_series_with_orientation_written_to_three_decimals_exports(hd, tmp_path):
    """Direction cosines written to 3 decimals are off unit length by ~1e-4 and the stack drifts from them by
    ~0.02 mm: load_ct accepts that (0.1 % of the stack), so save_dicom_seg must find every slice on the CT's
    grid too (it refused the files as 'changed since the CT was loaded', which reloading cannot mend)."""
    pydicom = _pydicom()
    a = np.radians(1.0)
    hu = synthetic_hu((20, 12, 10), seed=5)
    paths = write_series(tmp_path / "oblique", hu, row=(1, 0, 0), col=(0, np.cos(a), np.sin(a)))
    for f in paths:
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [f"{float(v):.3f}" for v in ds.ImageOrientationPatient]
        ds.save_as(f)
    ct = load_ct(tmp_path / "oblique")
    labels = np.zeros(ct.shape, np.uint16)
    labels[2:18, 3:9, 2:8] = by_name("liver").id
    out = save_dicom_seg(labels, ct, tmp_path / "seg.dcm")
    numbers, seg_labels, _ = read_seg(out, ct)
    assert np.array_equal(as_ids(numbers, seg_labels, {"liver": by_name("liver").id}), labels)


def test_a_seg_given_as_labels_or_ct_is_named_and_its_recipe_reads_it_back(coronal, hd, tmp_path):
    """load_labels on a SEG read its frames as slices and blamed the grid, advising a resample that gives
    garbage; the error now names a DICOM-SEG and gives a highdicom recipe, followed here to the letter."""
    pydicom = _pydicom()
    ct = coronal
    labels = np.zeros(ct.shape, np.uint16)
    labels[1:4, 2:6, 3:7] = by_name("liver").id
    labels[0, 8:11, 1:3] = by_name("kidney_right").id
    path = save_dicom_seg(labels, ct, tmp_path / "seg.dcm")
    with pytest.raises(CTLoadError, match="is a DICOM-SEG: .* highdicom") as err:
        load_labels(path, like=ct)
    with pytest.raises(CTLoadError, match="is a DICOM-SEG \\(a segmentation\\), not a CT"):
        load_ct(path)
    assert "get_pixels_by_source_instance(uids, combine_segments=True)" in str(err.value)
    seg = hd.seg.segread(path)
    uids = [pydicom.dcmread(f).SOPInstanceUID for f in ct.dicom_files]
    numbers = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    names = {n: seg.get_segment_description(n).segment_label for n in seg.segment_numbers}
    back = np.zeros(ct.shape, np.uint16)
    for n, name in names.items():
        back[numbers == n] = by_name(name).id
    assert np.array_equal(back, labels)


def test_synthetic_seg_keeps_uids_names_and_custom_ids(coronal, hd, tmp_path):
    ct = coronal
    labels = np.zeros(ct.shape, np.uint16)
    labels[1:4, 2:6, 3:7] = by_name("liver").id
    labels[0, 8:11, 1:3] = by_name("kidney_right").id
    labels[4, 0:3, 0:10] = 300  # a custom id (not an ontology structure)
    labels[2, 9, 9] = 7  # pancreas, renamed below
    out = tmp_path / "out" / "s.dcm"
    out.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DicomSegWarning)  # complete UIDs: no warning
        save_dicom_seg(labels, ct, out, names={7: "my_pancreas", 300: "lesion A"}, algorithm_type="manual")
    numbers, seg_labels, ds = read_seg(out, ct)
    assert sorted(seg_labels.values()) == ["kidney_right", "lesion A", "liver", "my_pancreas"]
    ids = {"liver": 5, "kidney_right": 2, "lesion A": 300, "my_pancreas": 7}
    assert np.array_equal(as_ids(numbers, seg_labels, ids), labels)
    src = _pydicom().dcmread(ct.dicom_files[0], stop_before_pixels=True)
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.series_uid == src.SeriesInstanceUID
    assert ds.SeriesInstanceUID != ct.series_uid and ds.SeriesNumber == 1007
    for s in ds.SegmentSequence:
        assert s.SegmentAlgorithmType == "MANUAL" and "SegmentationAlgorithmIdentificationSequence" not in s
        if s.SegmentLabel in ("lesion A", "my_pancreas"):  # not ontology names: generic codes
            assert s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Anatomical Structure"
    # overwrite only when asked; the old file is untouched otherwise
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_dicom_seg(labels, ct, out)
    assert out.read_bytes() == before
    save_dicom_seg(labels == 5, ct, out, names="liver", overwrite=True)
    numbers, seg_labels, _ = read_seg(out, ct)
    assert seg_labels == {1: "liver"} and np.array_equal(numbers == 1, labels == 5)
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.dcm"]  # no temporary file left behind


def test_bad_input_names_the_problem_and_the_fix(coronal, hd, tmp_path):
    ct = coronal
    labels = np.zeros(ct.shape, np.uint8)
    labels[1, 1, 1] = 5
    target = tmp_path / "x.dcm"
    with pytest.raises(ValueError, match="empty.*nothing to export"):
        save_dicom_seg(np.zeros(ct.shape, np.uint8), ct, target)
    with pytest.raises(ValueError, match="boolean mask.*names='liver'"):
        save_dicom_seg(labels > 0, ct, target)
    with pytest.raises(ValueError, match="non-integer"):
        save_dicom_seg(labels * 0.5, ct, target)
    with pytest.raises(ValueError, match="negative"):
        save_dicom_seg(labels.astype(np.int16) - 1, ct, target)
    two = labels.copy()
    two[2, 2, 2] = 6
    with pytest.raises(ValueError, match="one name but the label map holds 2"):
        save_dicom_seg(two, ct, target, names="liver")
    with pytest.raises(ValueError, match="1..64 characters"):
        save_dicom_seg(labels, ct, target, names={5: "x" * 65})
    with pytest.raises(ValueError, match="algorithm_type"):
        save_dicom_seg(labels, ct, target, algorithm_type="guess")
    with pytest.raises(TypeError, match="not a path.*load_labels"):
        save_dicom_seg("labels.nii.gz", ct, target)
    with pytest.raises(TypeError, match="CTVolume"):
        save_dicom_seg(labels, None, target)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_dicom_seg(labels, ct, tmp_path)
    with pytest.raises(FileNotFoundError, match="create it first"):
        save_dicom_seg(labels, ct, tmp_path / "missing" / "x.dcm")
    in_memory = CTVolume.from_array(ct.array, spacing=ct.spacing)
    with pytest.raises(ValueError, match="not loaded from a DICOM series.*in memory"):
        save_dicom_seg(labels, in_memory, target)
    # the source files changed since loading
    moved = tmp_path / "moved.dcm"
    (tmp_path / "series" / "img002.dcm").rename(moved)
    with pytest.raises(FileNotFoundError, match="img002.dcm' no longer exists.*load_ct"):
        save_dicom_seg(labels, ct, target)
    assert not target.exists()


def test_missing_highdicom_says_how_to_install(coronal, tmp_path, monkeypatch):
    labels = np.zeros(coronal.shape, np.uint8)
    labels[0, 0, 0] = 1
    monkeypatch.setitem(sys.modules, "highdicom", None)  # import highdicom -> ImportError
    with pytest.raises(ImportError, match=r'pip install "ctsam3d_nb\[dicom\]"'):
        save_dicom_seg(labels, coronal, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_predictor_objects_become_named_segments(coronal, hd, tmp_path):
    torch = pytest.importorskip("torch")  # noqa: F841
    from region_model import RegionModel

    from ctsam3d_nb import Predictor

    pred = Predictor(RegionModel(), device="cpu").set_volume(coronal)
    pred.new_object("liver")
    pred.click((2, 6, 5))
    pred.new_object("tumour")  # a custom name: a free custom id, generic codes
    pred.click((2, 2, 2))
    lm = pred.label_map
    present = {o.name: o.label_id for o in pred.objects if (lm == o.label_id).any()}
    assert present, "the stand-in model segmented nothing"
    out = save_dicom_seg(pred, None, tmp_path / "pred.dcm")
    numbers, seg_labels, _ = read_seg(out, coronal)
    assert sorted(seg_labels.values()) == sorted(present)
    assert np.array_equal(as_ids(numbers, seg_labels, present), lm)


# ------------------------------------------------------------------ codes and packaging
def test_every_structure_gets_codes_from_snomed(hd):
    from pydicom.sr._concepts_dict import concepts

    known = {(value, meaning) for entries in concepts["SCT"].values() for value, (meaning, _) in entries.items()}
    for s in _STRUCTURES:
        category, prop, side = property_codes(s.name)
        for code in (category, prop) + ((side,) if side else ()):
            assert code.scheme_designator == "SCT" and (code.value, code.meaning) in known, (s.name, code)
    meanings = lambda n: [c.meaning if c else None for c in property_codes(n)]  # noqa: E731
    assert meanings("kidney_left") == ["Anatomical Structure", "Kidney", "Left"]
    assert meanings("rib_right_3") == ["Anatomical Structure", "Rib", "Right"]
    assert meanings("vertebrae_L1") == ["Anatomical Structure", "L1 vertebra", None]
    assert meanings("heart_atrium_left") == ["Anatomical Structure", "Left atrium", None]
    assert meanings("gluteus_maximus_left") == ["Anatomical Structure", "Skeletal muscle", "Left"]
    assert meanings("subcutaneous_fat") == ["Tissue", "Subcutaneous tissue", None]
    assert meanings("my tumour") == ["Anatomical Structure", "Anatomical Structure", None]


def test_package_import_does_not_import_highdicom():
    code = "import sys, ctsam3d_nb; print(hasattr(ctsam3d_nb, 'save_dicom_seg'), 'highdicom' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["True", "False"]
