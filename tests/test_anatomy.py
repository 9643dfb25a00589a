"""Tests for ctsam3d_nb.anatomy: ids, names, colours, dataset label conventions."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ctsam3d_nb import anatomy
from ctsam3d_nb.anatomy import (
    GROUPS,
    LABEL_CONVENTIONS,
    MAX_ID,
    STRUCTURES,
    TOTALSEG_FILE_NAMES,
    Structure,
    by_id,
    by_name,
    color_lut,
    convention_for,
    convert_labels,
    in_group,
    names,
    parts_of,
)

# Computed here rather than in a conftest: ../shared/data/real_ct seen from the repo root.
REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_ct"

# Ids other code stores in label maps: changing any of these breaks saved data.
PINNED_IDS = {
    "spleen": 1, "liver": 5, "pancreas": 7, "lung_upper_lobe_left": 10, "small_bowel": 18,
    "urinary_bladder": 21, "vertebrae_S1": 26, "vertebrae_C1": 50, "heart": 51, "aorta": 52,
    "inferior_vena_cava": 63, "portal_vein_and_splenic_vein": 64, "femur_left": 75, "skull": 91,
    "rib_left_1": 92, "rib_right_12": 115, "costal_cartilages": 117,
    "body": 118, "subcutaneous_fat": 119, "skeletal_muscle": 120, "torso_fat": 121,
    "lung_left": 122, "lung_right": 123, "adrenal_gland": 124, "rectum": 125,
    "prostate_or_uterus": 126, "femoral_head_left": 127, "femoral_head_right": 128,
    "heart_myocardium": 129, "heart_atrium_left": 130, "heart_ventricle_left": 131,
    "heart_atrium_right": 132, "heart_ventricle_right": 133, "pulmonary_artery": 134,
    "face": 135, "body_trunc": 136, "body_extremities": 137,
}

EXPECTED_COUNTS = {
    "totalsegmentator_v2": 117, "totalsegmentator_v1": 104,
    "flare22": 13, "btcv": 13, "amos22": 15, "word": 16,
}


# ---- ids and names ---------------------------------------------------------

def test_pinned_ids_are_stable():
    got = {n: by_name(n).id for n in PINNED_IDS}
    assert got == PINNED_IDS


def test_ids_contiguous_unique_and_ordered():
    ids = [s.id for s in STRUCTURES]
    assert ids == list(range(1, MAX_ID + 1))
    lowered = [s.name.lower() for s in STRUCTURES]
    assert len(set(lowered)) == len(lowered)
    assert names() == tuple(s.name for s in STRUCTURES)


@pytest.mark.realct
def test_ts_v2_ids_and_names_match_shared_json():
    path = REAL_CT / "totalsegmentator_v2_total_labels.json"
    if not path.exists():
        pytest.skip(f"{path} not found (shared real-CT data absent)")
    ref = {int(k): v for k, v in json.loads(path.read_text()).items()}
    assert sorted(ref) == list(range(1, 118))
    ours = {s.id: s.name for s in STRUCTURES if s.id <= anatomy.TS_V2_MAX_ID}
    assert ours == ref
    assert LABEL_CONVENTIONS["totalsegmentator_v2"] == ref


def test_extras_are_above_totalsegmentator_range():
    extras = [s for s in STRUCTURES if s.id > anatomy.TS_V2_MAX_ID]
    assert [s.id for s in extras] == list(range(118, MAX_ID + 1))
    assert {s.name for s in extras}.isdisjoint(LABEL_CONVENTIONS["totalsegmentator_v2"].values())


def test_by_id_and_by_name_agree_and_accept_numpy_ints():
    for s in STRUCTURES:
        assert by_id(s.id) is s
        assert by_name(s.name) is s
    assert by_id(np.int64(52)).name == "aorta"
    assert by_id(np.uint8(118)).name == "body"


@pytest.mark.parametrize("spelling, expected", [
    ("Liver", "liver"),
    ("LIVER", "liver"),
    ("  liver ", "liver"),
    ("lung upper lobe left", "lung_upper_lobe_left"),
    ("Vertebrae L1", "vertebrae_L1"),
    ("iliac-artery-left", "iliac_artery_left"),
    ("portal vein and splenic vein", "portal_vein_and_splenic_vein"),
])
def test_by_name_is_case_and_space_insensitive(spelling, expected):
    assert by_name(spelling).name == expected


def test_by_name_unknown_suggests_close_matches():
    with pytest.raises(KeyError) as err:
        by_name("livr")
    assert "'liver'" in str(err.value)
    with pytest.raises(KeyError) as err:
        by_name("kidney left side")
    assert "kidney_left" in str(err.value)
    with pytest.raises(KeyError, match="names()"):
        by_name("qqqqqqqq")
    with pytest.raises(TypeError, match="by_id"):
        by_name(5)


@pytest.mark.parametrize("bad", [0, -1, MAX_ID + 1, 5.0, "5", None])
def test_by_id_unknown_raises_keyerror(bad):
    with pytest.raises(KeyError, match="ontology ids are 1.."):
        by_id(bad)


# ---- groups, relations, structure validation -------------------------------

def test_every_structure_has_a_valid_group_and_groups_partition():
    assert all(s.group in GROUPS for s in STRUCTURES)
    assert sum(len(in_group(g)) for g in GROUPS) == len(STRUCTURES)
    assert by_name("liver").group == "organ"
    assert by_name("vertebrae_L3").group == "bone"
    assert by_name("inferior_vena_cava").group == "vessel"
    assert by_name("iliopsoas_left").group == "muscle"
    assert by_name("body").group == "other"
    with pytest.raises(ValueError, match="groups are"):
        in_group("organs")


def test_part_of_relations():
    assert [s.id for s in parts_of("lung_left")] == [10, 11]
    assert [s.id for s in parts_of("Lung Right")] == [12, 13, 14]
    assert {s.name for s in parts_of("adrenal_gland")} == {"adrenal_gland_left", "adrenal_gland_right"}
    assert by_name("femoral_head_left").part_of == "femur_left"
    assert len(parts_of("heart")) == 5
    assert parts_of("liver") == ()
    # every parent exists and the relation has no cycles
    for s in STRUCTURES:
        seen, cur = set(), s
        while cur.part_of is not None:
            assert cur.name not in seen, f"part_of cycle through {cur.name}"
            seen.add(cur.name)
            cur = by_name(cur.part_of)


def test_structure_validates_its_fields():
    with pytest.raises(ValueError, match="positive"):
        Structure(0, "x", "organ", (1, 2, 3))
    with pytest.raises(ValueError, match="group"):
        Structure(200, "x", "organs", (1, 2, 3))
    with pytest.raises(ValueError, match="color"):
        Structure(200, "x", "organ", (1, 2, 256))
    with pytest.raises(ValueError, match="color"):
        Structure(200, "x", "organ", (1, 2))
    with pytest.raises(ValueError, match="snake_case"):
        Structure(200, "Liver Left", "organ", (1, 2, 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_name("liver").id = 6


# ---- colours ----------------------------------------------------------------

def test_color_lut_shape_background_and_rows():
    lut = color_lut()
    assert lut.shape == (MAX_ID + 1, 3) and lut.dtype == np.uint8
    assert lut[0].tolist() == [0, 0, 0]
    for s in STRUCTURES:
        assert tuple(lut[s.id].tolist()) == s.color
        assert s.color != (0, 0, 0)
    lut[5] = 0  # a copy: the module's table is unaffected
    assert color_lut()[5].tolist() == list(by_name("liver").color)


def test_colors_are_distinct_within_groups_and_overall():
    for g in GROUPS:
        cols = [s.color for s in in_group(g)]
        assert len(set(cols)) == len(cols), f"duplicate colour in group {g}"
    cols = [s.color for s in STRUCTURES]
    assert len(set(cols)) == len(cols)


def test_colors_follow_the_palette_intent():
    liver = np.array(by_name("liver").color)
    assert liver[0] > liver[1] + 60 and liver[0] > liver[2] + 60  # brownish red
    for s in in_group("bone"):
        r, g, b = s.color
        if s.name != "costal_cartilages":  # cartilage is a pale blue-grey
            assert min(r, g) >= 180 and r >= b, f"{s.name} is not ivory"
    for name in ("aorta", "iliac_artery_left", "brachiocephalic_trunk"):
        r, g, b = by_name(name).color
        assert r > 2 * b, f"artery {name} should be red"
    for name in ("inferior_vena_cava", "superior_vena_cava", "iliac_vena_right"):
        r, g, b = by_name(name).color
        assert b > 2 * r, f"vein {name} should be blue"


def test_adjacent_vertebrae_are_visibly_different():
    levels = [s for s in STRUCTURES if s.name.startswith("vertebrae_")]
    for a, b in zip(levels, levels[1:]):
        assert np.abs(np.subtract(a.color, b.color)).sum() >= 30, (a.name, b.name)


# ---- label conventions -------------------------------------------------------

@pytest.mark.parametrize("conv_name, count", EXPECTED_COUNTS.items())
def test_convention_value_sets(conv_name, count):
    conv = convention_for(conv_name)
    assert conv.name == conv_name
    assert list(conv.labels) == list(range(1, count + 1))
    assert set(conv.source_names) == set(conv.labels)
    assert all(isinstance(v, str) and v for v in conv.source_names.values())
    assert LABEL_CONVENTIONS[conv_name] == dict(conv.labels)


def test_conventions_are_exactly_the_expected_ones():
    assert set(LABEL_CONVENTIONS) == set(EXPECTED_COUNTS)


@pytest.mark.parametrize("conv_name", EXPECTED_COUNTS)
def test_conventions_map_to_distinct_existing_structures(conv_name):
    targets = list(LABEL_CONVENTIONS[conv_name].values())
    for t in targets:
        assert by_name(t).name == t  # exact spelling, not just a fuzzy match
    assert len(set(targets)) == len(targets)  # so converted maps can be mapped back


@pytest.mark.parametrize("conv_name, value, ours, theirs", [
    ("amos22", 8, "aorta", "arota"),
    ("amos22", 9, "inferior_vena_cava", "postcava"),
    ("amos22", 14, "urinary_bladder", "bladder"),
    ("amos22", 15, "prostate_or_uterus", "prostate/uterus"),
    ("word", 3, "kidney_left", "left_kidney"),
    ("word", 11, "small_bowel", "intestine"),
    ("word", 12, "adrenal_gland", "adrenal"),
    ("word", 13, "rectum", "rectum"),
    ("word", 15, "femoral_head_left", "Head_of_femur_L"),
    ("word", 16, "femoral_head_right", "Head_of_femur_R"),
    ("flare22", 2, "kidney_right", None),
    ("flare22", 3, "spleen", None),
    ("flare22", 13, "kidney_left", None),
    ("btcv", 10, "portal_vein_and_splenic_vein", None),
    ("btcv", 12, "adrenal_gland_right", None),
    ("totalsegmentator_v1", 7, "aorta", "aorta"),
    ("totalsegmentator_v1", 18, "vertebrae_L5", None),
    ("totalsegmentator_v1", 41, "vertebrae_C1", None),
    ("totalsegmentator_v1", 44, "heart_myocardium", None),
    ("totalsegmentator_v1", 49, "pulmonary_artery", None),
    ("totalsegmentator_v1", 58, "rib_left_1", None),
    ("totalsegmentator_v1", 81, "rib_right_12", None),
    ("totalsegmentator_v1", 93, "face", None),
    ("totalsegmentator_v1", 104, "urinary_bladder", None),
])
def test_dataset_label_values(conv_name, value, ours, theirs):
    conv = convention_for(conv_name)
    assert conv.labels[value] == ours
    if theirs is not None:
        assert conv.source_names[value] == theirs
    assert conv.describe(value).endswith(f"{ours} (id {by_name(ours).id})")


def test_ts_v1_names_are_v2_names_or_extras():
    v2 = set(LABEL_CONVENTIONS["totalsegmentator_v2"].values())
    v1_only = {n for n in LABEL_CONVENTIONS["totalsegmentator_v1"].values() if n not in v2}
    assert v1_only == {"heart_myocardium", "heart_atrium_left", "heart_ventricle_left",
                       "heart_atrium_right", "heart_ventricle_right", "pulmonary_artery", "face"}
    assert all(by_name(n).id > anatomy.TS_V2_MAX_ID for n in v1_only)


@pytest.mark.parametrize("spelling, expected", [
    ("AMOS", "amos22"), ("amos-22", "amos22"), ("FLARE22", "flare22"), ("Synapse", "btcv"),
    ("TotalSegmentator", "totalsegmentator_v2"), ("TotalSegmentator v1", "totalsegmentator_v1"),
    ("ts_v1", "totalsegmentator_v1"), ("WORD", "word"),
])
def test_convention_for_aliases(spelling, expected):
    assert convention_for(spelling).name == expected
    assert convention_for(convention_for(spelling)) is convention_for(spelling)


def test_convention_for_unknown_lists_known():
    with pytest.raises(KeyError, match="word"):
        convention_for("kits19")


def test_totalseg_file_names():
    v2 = LABEL_CONVENTIONS["totalsegmentator_v2"].values()
    v1 = LABEL_CONVENTIONS["totalsegmentator_v1"].values()
    assert all(TOTALSEG_FILE_NAMES[n] == n for n in (*v2, *v1))
    for stem in ("body", "subcutaneous_fat", "torso_fat", "skeletal_muscle", "heart_atrium_left"):
        assert by_name(TOTALSEG_FILE_NAMES[stem]).name == stem
    assert "lung_vessels" not in TOTALSEG_FILE_NAMES
    assert all(by_name(v).name == v for v in TOTALSEG_FILE_NAMES.values())


# ---- convert_labels --------------------------------------------------------

@pytest.mark.parametrize("conv_name", EXPECTED_COUNTS)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64])
def test_convert_labels_round_trip(conv_name, dtype):
    conv = convention_for(conv_name)
    rng = np.random.default_rng(7)
    values = np.array([0, *conv.labels])
    src = rng.choice(values, size=(6, 7, 8)).astype(dtype)
    src_before = src.copy()
    out = convert_labels(src, conv_name)
    assert out.shape == src.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(src, src_before)  # input untouched
    # element-wise reference, independent of the lookup-table implementation
    ref = {0: 0, **{v: by_name(n).id for v, n in conv.labels.items()}}
    expected = np.vectorize(ref.__getitem__)(src)
    np.testing.assert_array_equal(out, expected)
    assert ((out == 0) == (src == 0)).all()
    # and back: conventions are injective, so the source map is recoverable
    inverse = np.zeros(MAX_ID + 1, dtype=np.int64)
    for v, n in conv.labels.items():
        inverse[by_name(n).id] = v
    np.testing.assert_array_equal(inverse[out], src)


def test_convert_labels_known_values():
    out = convert_labels(np.array([[0, 6], [8, 9]]), "amos22")
    assert out.tolist() == [[0, 5], [52, 63]]
    out = convert_labels(np.array([0, 11, 12, 13, 15, 16]), "word")
    assert out.tolist() == [0, 18, 124, 125, 127, 128]
    out = convert_labels(np.array([1, 2, 13]), "flare22")
    assert out.tolist() == [5, 2, 3]


def test_convert_labels_accepts_whole_floats_and_empty():
    out = convert_labels(np.array([0.0, 1.0, 13.0], dtype=np.float32), "btcv")
    assert out.tolist() == [0, 1, 9]
    assert convert_labels(np.zeros((0, 3), np.int16), "word").shape == (0, 3)


def test_convert_labels_unknown_values_listed():
    bad = np.array([[0, 3, 14], [99, 3, -1]], dtype=np.int32)
    with pytest.raises(ValueError) as err:
        convert_labels(bad, "btcv")
    msg = str(err.value)
    assert "-1, 14, 99" in msg and "'btcv'" in msg and "convention" in msg
    assert " 3," not in msg.split("defines")[0]  # the valid value 3 is not blamed
    with pytest.raises(ValueError, match="255"):
        convert_labels(np.array([0, 255], np.uint8), "flare22")
    with pytest.raises(ValueError, match="118"):  # TS v2 map holds only 1..117
        convert_labels(np.array([5, 118]), "totalsegmentator_v2")


def test_convert_labels_rejects_non_label_arrays():
    with pytest.raises(ValueError, match="whole numbers"):
        convert_labels(np.array([0.0, 1.5]), "btcv")
    with pytest.raises(ValueError, match="whole numbers"):
        convert_labels(np.array([0.0, np.nan]), "btcv")
    with pytest.raises(TypeError, match="boolean"):
        convert_labels(np.array([True, False]), "btcv")
    with pytest.raises(KeyError, match="unknown label convention"):
        convert_labels(np.array([1]), "nope")


@pytest.mark.realct
def test_convert_real_totalsegmentator_map():
    path = REAL_CT / "example_seg.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not found (shared real-CT data absent)")
    sitk = pytest.importorskip("SimpleITK")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    out = convert_labels(labels, "totalsegmentator_v2")
    np.testing.assert_array_equal(out, labels)  # TS v2 ids are ontology ids
    present = [by_id(i).name for i in np.unique(out) if i]
    assert "liver" in present and "aorta" in present
    rgb = color_lut()[out]
    assert rgb.shape == (*labels.shape, 3)
    assert (rgb[out == by_name("liver").id] == by_name("liver").color).all()
