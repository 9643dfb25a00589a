"""Dataset adapters on tiny on-disk fixtures in each dataset's exact layout and label values."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ctsam3d_nb import anatomy
from ctsam3d_nb.datasets import (AMOS22, DATASETS, FLARE22, WORD, DatasetLayoutError,
                                            ImageLabelFolder, TotalSegmentator, detect_totalseg_version,
                                            open_dataset)

SHAPE = (24, 32, 32)
SPACING_XYZ = (1.2, 1.2, 2.5)
ORIGIN = (-20.0, 10.0, 35.0)


def ct_array(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.full(SHAPE, -1000, np.int16)
    a[2:-2, 3:-3, 3:-3] = 40
    return a + rng.integers(-10, 10, SHAPE, dtype=np.int16)


def blob_labels(values) -> np.ndarray:
    """One cube per value, side by side along x (uint8, (z, y, x))."""
    lab = np.zeros(SHAPE, np.uint8)
    for i, v in enumerate(values):
        lab[6:14, 8:16, 2 + 6 * i: 6 + 6 * i] = v
    return lab


def write(array, path: Path, flip_y=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(np.ascontiguousarray(array[:, ::-1] if flip_y else array))
    img.SetSpacing(SPACING_XYZ)
    if flip_y:  # same physical grid, y axis stored the other way round (as NIfTI writers do)
        img.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
        img.SetOrigin((ORIGIN[0], ORIGIN[1] + (SHAPE[1] - 1) * SPACING_XYZ[1], ORIGIN[2]))
    else:
        img.SetOrigin(ORIGIN)
    sitk.WriteImage(img, str(path))


def ids(labels) -> set[int]:
    return {int(v) for v in np.unique(labels) if v}


def id_of(name) -> int:
    return anatomy.by_name(name).id


# ---------------------------------------------------------------- adapters


def test_flare22(tmp_path):
    for i, case in enumerate(["FLARE22_Tr_0001", "FLARE22_Tr_0002"]):
        write(ct_array(i), tmp_path / "imagesTr" / f"{case}_0000.nii.gz")
        write(blob_labels([1, 13, 5]), tmp_path / "labelsTr" / f"{case}.nii.gz", flip_y=(i == 1))
    ds = open_dataset("flare22", tmp_path)
    assert isinstance(ds, FLARE22) and ds.cases() == ["FLARE22_Tr_0001", "FLARE22_Tr_0002"]
    assert "liver" in ds.structures and "kidney_left" in ds.structures
    for case in ds.cases():
        ct, lab = ds.load(case)
        assert lab.shape == ct.shape == SHAPE
        assert lab[10, 10, 4] == id_of("liver") == 5  # FLARE 1 -> liver 5
        assert lab[10, 10, 10] == id_of("kidney_left") and lab[10, 10, 16] == id_of("aorta")
        assert ids(lab) == {5, id_of("kidney_left"), id_of("aorta")}  # the flipped label map is aligned


def test_amos22_dataset_json_keeps_ct_only(tmp_path):
    entries = []
    for case, values in [("amos_0001", [9, 6]), ("amos_0005", [15]), ("amos_0540", [1])]:
        write(ct_array(), tmp_path / "imagesTr" / f"{case}.nii.gz")
        write(blob_labels(values), tmp_path / "labelsTr" / f"{case}.nii.gz")
        entries.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "AMOS", "training": entries, "validation": []}))
    ds = AMOS22(tmp_path)
    assert ds.cases() == ["amos_0001", "amos_0005"]  # 540 is an MRI
    _, lab = ds.load("amos_0001")
    assert lab[10, 10, 4] == 63 == id_of("inferior_vena_cava") and lab[10, 10, 10] == id_of("liver")
    assert ids(ds.load("amos_0005")[1]) == {id_of("prostate_or_uterus")}
    assert "amos_0540" in AMOS22(tmp_path, include_mri=True).cases()
    (tmp_path / "dataset.json").unlink()  # the plain imagesTr/labelsTr layout works too
    assert AMOS22(tmp_path).cases() == ["amos_0001", "amos_0005"]


def test_btcv_under_rawdata_training(tmp_path):
    base = tmp_path / "RawData" / "Training"
    write(ct_array(), base / "img" / "img0001.nii.gz")
    write(blob_labels([10, 1]), base / "label" / "label0001.nii.gz")
    ds = open_dataset("btcv", tmp_path)
    assert ds.cases() == ["0001"]
    _, lab = ds.load("0001")
    assert lab[10, 10, 4] == 64 == id_of("portal_vein_and_splenic_vein") and lab[10, 10, 10] == id_of("spleen")


def test_word_splits(tmp_path):
    write(ct_array(), tmp_path / "imagesTr" / "word_0001.nii.gz")
    write(blob_labels([3, 12]), tmp_path / "labelsTr" / "word_0001.nii.gz")
    write(ct_array(1), tmp_path / "imagesVal" / "word_0101.nii.gz")
    write(blob_labels([16]), tmp_path / "labelsVal" / "word_0101.nii.gz")
    ds = WORD(tmp_path)
    assert ds.cases() == ["word_0001", "word_0101"]
    _, lab = ds.load("word_0001")
    assert lab[10, 10, 4] == 3 == id_of("kidney_left") and lab[10, 10, 10] == id_of("adrenal_gland")
    assert ids(ds.load("word_0101")[1]) == {id_of("femoral_head_right")}
    assert WORD(tmp_path, split="val").cases() == ["word_0101"]


def totalseg_case(folder: Path, files: dict[str, tuple[int, int]]):
    """A case folder with ct.nii.gz and one binary file per structure (a cube at x-range [a, b))."""
    write(ct_array(), folder / "ct.nii.gz")
    for name, (a, b) in files.items():
        m = np.zeros(SHAPE, np.uint8)
        m[4:12, 8:20, a:b] = 1
        write(m, folder / "segmentations" / f"{name}.nii.gz")


def test_totalsegmentator_v2_merges_files(tmp_path):
    totalseg_case(tmp_path / "s0001", {"liver": (2, 8), "heart": (8, 12), "spleen": (12, 16),
                                       "lung_vessels": (16, 20)})  # not a structure of `total`: ignored
    totalseg_case(tmp_path / "s0002", {"liver": (2, 8), "sternum": (20, 24)})
    (tmp_path / "meta.csv").write_text("image_id;age;split\ns0001;60;train\ns0002;70;test\n")
    ds = open_dataset("totalsegmentator", tmp_path)
    assert ds.version == "v2" and ds.cases() == ["s0001", "s0002"] and len(ds.structures) == 117
    ct, lab = ds.load("s0001")
    assert lab.shape == ct.shape
    assert lab[6, 10, 4] == id_of("liver") and lab[6, 10, 9] == id_of("heart") and lab[6, 10, 13] == id_of("spleen")
    assert ids(lab) == {id_of("liver"), id_of("heart"), id_of("spleen")}
    assert TotalSegmentator(tmp_path, split="test").cases() == ["s0002"]
    single = TotalSegmentator(tmp_path / "s0002")  # one case folder works too
    assert single.cases() == ["s0002"]


def test_totalsegmentator_v1_is_detected(tmp_path):
    totalseg_case(tmp_path / "s0001", {"liver": (2, 8), "heart_atrium_left": (8, 12), "face": (12, 16)})
    ds = TotalSegmentator(tmp_path)
    assert ds.version == "v1" and len(ds.structures) == 104
    _, lab = ds.load("s0001")
    assert ids(lab) == {id_of("liver"), id_of("heart_atrium_left"), id_of("face")}
    assert detect_totalseg_version(["liver", "spleen"]) == "v2"
    with pytest.raises(ValueError, match="mix"):
        detect_totalseg_version(["heart", "heart_atrium_left"])


def test_image_label_folder(tmp_path):
    write(ct_array(), tmp_path / "images" / "a.nii.gz")
    write(blob_labels([5, 52]), tmp_path / "labels" / "a.nii.gz")  # ontology ids
    ds = ImageLabelFolder(tmp_path)
    assert ds.cases() == ["a"] and ids(ds.load("a")[1]) == {5, 52}
    btcv = open_dataset("folder", tmp_path, convention="btcv")
    with pytest.raises(ValueError, match="52"):  # BTCV has no label 52
        btcv.load("a")
    write(blob_labels([5, 8]), tmp_path / "labels" / "a.nii.gz")  # BTCV 5 esophagus, 8 aorta
    assert ids(btcv.load("a")[1]) == {id_of("esophagus"), id_of("aorta")}


# ---------------------------------------------------------------- errors


def test_wrong_root_names_path_and_layout(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetLayoutError, match="does not exist") as e:
        FLARE22(missing)
    assert str(missing) in str(e.value) and "imagesTr/<case>_0000.nii.gz" in str(e.value)
    (tmp_path / "something_else").mkdir()
    for name in DATASETS:
        if name == "phantom":
            continue
        with pytest.raises(DatasetLayoutError, match="Expected") as e:
            open_dataset(name, tmp_path)
        assert str(tmp_path) in str(e.value) and "something_else" in str(e.value)
    assert issubclass(DatasetLayoutError, FileNotFoundError)
    with pytest.raises(KeyError, match="known"):
        open_dataset("lits", tmp_path)


def test_missing_label_file_is_reported_on_load(tmp_path):
    write(ct_array(), tmp_path / "imagesTr" / "FLARE22_Tr_0003_0000.nii.gz")
    ds = FLARE22(tmp_path)
    with pytest.raises(DatasetLayoutError, match="label file") as e:
        ds.load("FLARE22_Tr_0003")
    assert "labelsTr" in str(e.value) and "FLARE22_Tr_0003.nii.gz" in str(e.value)
    with pytest.raises(KeyError, match="FLARE22_Tr_0003"):
        ds.load("FLARE22_Tr_003")
    ts = tmp_path / "ts"
    write(ct_array(), ts / "s0001" / "ct.nii.gz")
    with pytest.raises(DatasetLayoutError, match="no structure files"):
        TotalSegmentator(ts, version="v2").load("s0001")
    write(ct_array(), tmp_path / "f" / "images" / "a.nii.gz")
    with pytest.raises(DatasetLayoutError, match="labels"):
        ImageLabelFolder(tmp_path / "f")


def test_values_outside_the_convention_name_the_file(tmp_path):
    write(ct_array(), tmp_path / "imagesTr" / "FLARE22_Tr_0001_0000.nii.gz")
    write(blob_labels([1, 14]), tmp_path / "labelsTr" / "FLARE22_Tr_0001.nii.gz")  # FLARE has 1..13
    with pytest.raises(ValueError, match="14") as e:
        FLARE22(tmp_path).load("FLARE22_Tr_0001")
    assert "FLARE22_Tr_0001.nii.gz" in str(e.value)


def test_phantom_dataset():
    pytest.importorskip("ctsam3d_nb.phantom.build")
    ds = open_dataset("phantom", seeds=[900000], shape=(24, 32, 32), spacing=(8.0, 8.0, 8.0))
    ct, lab = ds.load("900000")
    assert ct.shape == lab.shape == (24, 32, 32) and id_of("liver") in ids(lab)
    assert "liver" in ds.structures


def test_adapters_declare_their_splits():
    from ctsam3d_nb.datasets import AMOS22, BTCV, FLARE22, WORD, TotalSegmentator

    assert WORD.splits == TotalSegmentator.splits == ("train", "val", "test")
    assert AMOS22.splits == ("training", "validation") and FLARE22.splits == BTCV.splits == ()
    import ctsam3d_nb.evaluation.datasets as old  # the old import path still works

    assert old.open_dataset is open_dataset


def test_an_option_the_adapter_does_not_take_is_named_with_the_ones_it_does():
    """open_dataset passed options on blindly: a raw TypeError from the adapter's __init__ (session 30 review)."""
    with pytest.raises(ValueError, match="'phantom' takes no option 'version'; its options: seeds, shape, spacing"):
        open_dataset("phantom", version="v2")
    with pytest.raises(ValueError, match="'flare22' takes no option 'convention'; its options: images, labels"):
        open_dataset("flare22", "/nowhere", convention="btcv")
