"""Label ids of the phantom: TotalSegmentator v2 ``total`` ids plus the project's extras.

The same ids as `ctsam3d_nb.anatomy` (ids 1..117 are TotalSegmentator v2 verbatim;
118..123 are the body-composition and whole-lung extras), written out here so
the phantom has no import-time dependency on the ontology module.
"""
from __future__ import annotations

__all__ = ["PHANTOM_LABELS"]

_VERTEBRAE = ["S1", "L5", "L4", "L3", "L2", "L1"] + [f"T{i}" for i in range(12, 0, -1)] + [
    f"C{i}" for i in range(7, 0, -1)
]

#: name -> label id of every structure the phantom can paint.
PHANTOM_LABELS: dict[str, int] = {
    "spleen": 1,
    "kidney_right": 2,
    "kidney_left": 3,
    "gallbladder": 4,
    "liver": 5,
    "stomach": 6,
    "pancreas": 7,
    "esophagus": 15,
    "trachea": 16,
    "small_bowel": 18,
    "duodenum": 19,
    "colon": 20,
    "urinary_bladder": 21,
    "sacrum": 25,
    **{f"vertebrae_{v}": 26 + i for i, v in enumerate(_VERTEBRAE)},  # S1 26 ... C1 50
    "heart": 51,
    "aorta": 52,
    "brachiocephalic_trunk": 54,
    "subclavian_artery_right": 55,
    "subclavian_artery_left": 56,
    "common_carotid_artery_right": 57,
    "common_carotid_artery_left": 58,
    "superior_vena_cava": 62,
    "inferior_vena_cava": 63,
    "portal_vein_and_splenic_vein": 64,
    "iliac_artery_left": 65,
    "iliac_artery_right": 66,
    "iliac_vena_left": 67,
    "iliac_vena_right": 68,
    "humerus_left": 69,
    "humerus_right": 70,
    "scapula_left": 71,
    "scapula_right": 72,
    "clavicula_left": 73,
    "clavicula_right": 74,
    "femur_left": 75,
    "femur_right": 76,
    "hip_left": 77,
    "hip_right": 78,
    "spinal_cord": 79,
    "autochthon_left": 86,
    "autochthon_right": 87,
    "iliopsoas_left": 88,
    "iliopsoas_right": 89,
    **{f"rib_left_{i}": 91 + i for i in range(1, 13)},  # 92..103
    **{f"rib_right_{i}": 103 + i for i in range(1, 13)},  # 104..115
    "sternum": 116,
    "costal_cartilages": 117,
    "body": 118,
    "subcutaneous_fat": 119,
    "skeletal_muscle": 120,
    "torso_fat": 121,
    "lung_left": 122,
    "lung_right": 123,
}
