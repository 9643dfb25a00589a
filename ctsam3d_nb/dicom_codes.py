"""SNOMED CT property codes of ontology structures, for DICOM-SEG segment descriptions.

``property_codes(name)`` gives the (category, type, side) codes that ``save_dicom_seg``
(``ctsam3d_nb.dicom_seg``, which re-exports it) writes for a segment: the structure where
ctsam3d_nb knows it, otherwise a generic code of its group. pydicom is imported only when called.
"""
from __future__ import annotations

import re

from .anatomy import by_name

__all__ = ["property_codes"]


# ------------------------------------------------------------------ property codes
# SNOMED CT (scheme "SCT") codes as (value, meaning), spelled as in pydicom's code dictionary
# (pydicom.sr.codedict.codes.SCT) but written out here: keyword look-ups differ between pydicom
# versions (some are ambiguous in pydicom 2). Names are the ontology's (anatomy.py).
_SCT = {
    "AnatomicalStructure": ("91723000", "Anatomical Structure"), "Tissue": ("85756007", "Tissue"),
    "MorphologicallyAbnormalStructure": ("49755003", "Morphologically Abnormal Structure"),
    "Left": ("7771000", "Left"), "Right": ("24028007", "Right"),
    "Bone": ("272673000", "Bone"), "BloodVessel": ("59820001", "Blood Vessel"),
    "SkeletalMuscle": ("127954009", "Skeletal muscle"), "Vertebra": ("51282000", "Vertebra"),
}
_ANATOMY = "AnatomicalStructure"
# whole names whose code says the side already
_EXACT = {
    "heart_atrium_left": ("82471001", "Left atrium"), "heart_atrium_right": ("73829009", "Right atrium"),
    "heart_ventricle_left": ("87878005", "Left ventricle"), "heart_ventricle_right": ("53085002", "Right ventricle"),
    "lung_middle_lobe_right": ("72481006", "Middle lobe of right lung"),
}
# names without left/right (and a rib's number): the side becomes a modifier
_STEMS = {
    "spleen": ("78961009", "Spleen"), "kidney": ("64033007", "Kidney"), "gallbladder": ("28231008", "Gallbladder"),
    "liver": ("10200004", "Liver"), "stomach": ("69695003", "Stomach"), "pancreas": ("15776009", "Pancreas"),
    "adrenal_gland": ("23451007", "Adrenal gland"), "lung": ("39607008", "Lung"),
    "lung_upper_lobe": ("45653009", "Upper lobe of lung"), "lung_lower_lobe": ("90572001", "Lower lobe of lung"),
    "esophagus": ("32849002", "Esophagus"), "trachea": ("44567001", "Trachea"),
    "thyroid_gland": ("69748006", "Thyroid"), "small_bowel": ("30315005", "Small intestine"),
    "duodenum": ("38848004", "Duodenum"), "colon": ("71854001", "Colon"),
    "urinary_bladder": ("89837001", "Bladder"), "prostate": ("41216001", "Prostate"), "rectum": ("34402009", "Rectum"),
    "heart": ("80891009", "Heart"), "brain": ("12738006", "Brain"), "spinal_cord": ("2748008", "Spinal cord"),
    "face": ("89545001", "Face"), "body": ("38266002", "Entire body"), "body_trunc": ("22943007", "Trunk"),
    "body_extremities": ("66019005", "Extremity"),
    "aorta": ("15825003", "Aorta"), "pulmonary_artery": ("81040000", "Pulmonary artery"),
    "pulmonary_vein": ("122972007", "Pulmonary vein"), "brachiocephalic_trunk": ("12691009", "brachiocephalic trunk"),
    "subclavian_artery": ("36765005", "Subclavian artery"),
    "common_carotid_artery": ("32062004", "Common carotid artery"),
    "brachiocephalic_vein": ("8887007", "Brachiocephalic vein"),
    "superior_vena_cava": ("48345005", "Superior vena cava"),
    "inferior_vena_cava": ("64131007", "Inferior vena cava"), "iliac_artery": ("10293006", "Iliac artery"),
    "iliac_vena": ("244411005", "Iliac vein"),
    "sacrum": ("54735007", "Sacrum"), "humerus": ("85050009", "Humerus"), "scapula": ("79601000", "Scapula"),
    "clavicula": ("51299004", "Clavicle"), "femur": ("71341001", "Femur"), "femoral_head": ("2812003", "Femoral head"),
    "skull": ("89546000", "Skull"), "rib": ("113197003", "Rib"), "sternum": ("56873002", "Sternum"),
    "costal_cartilages": ("50016007", "Costal Cartilage"),
    "kidney_cyst": ("367643001", "Cyst"), "subcutaneous_fat": ("71966008", "Subcutaneous tissue"),
    "torso_fat": ("55603005", "Fat"), "skeletal_muscle": ("127954009", "Skeletal muscle"),
}
_STEM_CATEGORY = {"kidney_cyst": "MorphologicallyAbnormalStructure", "subcutaneous_fat": "Tissue",
                  "torso_fat": "Tissue", "skeletal_muscle": "Tissue"}
_VERTEBRAE = {
    "C1": ("14806007", "C1 vertebra"), "C2": ("39976000", "C2 vertebra"), "C3": ("113205007", "C3 vertebra"),
    "C4": ("5329002", "C4 vertebra"), "C5": ("36978003", "C5 vertebra"), "C6": ("36054005", "C6 vertebra"),
    "C7": ("87391001", "C7 vertebra"), "T1": ("64864005", "T1 vertebra"), "T2": ("53733008", "T2 vertebra"),
    "T3": ("1626008", "T3 vertebra"), "T4": ("73071006", "T4 vertebra"), "T5": ("56401006", "T5 vertebra"),
    "T6": ("45296009", "T6 vertebra"), "T7": ("62487009", "T7 vertebra"), "T8": ("11068009", "T8 vertebra"),
    "T9": ("82687006", "T9 vertebra"), "T10": ("7610001", "T10 vertebra"), "T11": ("12989004", "T11 vertebra"),
    "T12": ("23215003", "T12 vertebra"), "L1": ("66794005", "L1 vertebra"), "L2": ("14293000", "L2 vertebra"),
    "L3": ("36470004", "L3 vertebra"), "L4": ("11994002", "L4 vertebra"), "L5": ("49668003", "L5 vertebra"),
}
_GROUP_TYPE = {"bone": "Bone", "vessel": "BloodVessel", "muscle": "SkeletalMuscle"}
_VERTEBRA = re.compile(r"^vertebrae_([CTLS]\d{1,2})$")


def _split_side(name: str) -> tuple[str, str | None]:
    """``"rib_left_3"`` -> ``("rib", "Left")``; ``"liver"`` -> ``("liver", None)``."""
    parts = name.split("_")
    sides = [p for p in parts if p in ("left", "right")]
    if len(sides) != 1:
        return name, None
    stem = "_".join(p for p in parts if p not in ("left", "right") and not p.isdigit())
    return stem, sides[0].capitalize()


def property_codes(name: str):
    """SNOMED CT codes ``(category, type, side)`` (pydicom ``Code``s) of a structure name.

    ``side`` is the Left/Right code for a paired structure whose type code does not say it
    (written as the type's modifier), else None. Structures without a specific code here get
    their group's code (Bone, Blood Vessel, Skeletal muscle, else Anatomical Structure); names
    that are not ontology structures get Anatomical Structure for both.

    Example:
        >>> [c.meaning for c in property_codes("kidney_left")]
        ['Anatomical Structure', 'Kidney', 'Left']
        >>> property_codes("liver")[1].value
        '10200004'
    """
    from pydicom.sr.coding import Code

    def sct(value_meaning):
        return Code(value_meaning[0], "SCT", value_meaning[1])

    category, side = _SCT[_ANATOMY], None
    if name in _EXACT:
        prop = _EXACT[name]
    else:
        stem, side = _split_side(name)
        m = _VERTEBRA.match(stem)
        if m:
            prop = _VERTEBRAE.get(m.group(1), _SCT["Vertebra"])
        elif stem in _STEMS:
            prop = _STEMS[stem]
            category = _SCT[_STEM_CATEGORY.get(stem, _ANATOMY)]
        else:
            try:
                group = by_name(name).group
            except KeyError:
                group, side = None, None
            prop = _SCT[_GROUP_TYPE.get(group, _ANATOMY)]
    return sct(category), sct(prop), (sct(_SCT[side]) if side else None)
