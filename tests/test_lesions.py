"""Synthetic lesions (phantom/lesions.py): inside their host, visible, irregular, connected, seeded."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctsam3d_nb.anatomy import MAX_ID
from ctsam3d_nb.grid import normalize_hu
from ctsam3d_nb.phantom import make_phantom
from ctsam3d_nb.phantom.lesions import LESION_HOSTS, LESION_KINDS, insert_lesions, lesion_name

SPACING = 2.5  # a small phantom (112³ at 2.5 mm) still holds liver, kidneys, lungs and vertebrae


@pytest.fixture(scope="module")
def phantom():
    ct, labels, _ = make_phantom(11, shape=(112, 112, 112), spacing=(SPACING,) * 3)
    return normalize_hu(ct.array), labels


@pytest.fixture(scope="module")
def inserted(phantom):
    image, labels = phantom
    return [insert_lesions(image, labels, np.random.default_rng(s), n=4, spacing_mm=SPACING) for s in range(6)]


def test_lesion_ids_lie_outside_the_ontology():
    assert min(LESION_KINDS.values()) > MAX_ID and max(LESION_KINDS.values()) <= 255
    assert lesion_name(201) == "liver_hypodense"
    with pytest.raises(KeyError, match="not a lesion id"):
        lesion_name(5)


def test_lesions_lie_inside_their_host_and_do_not_overlap(phantom, inserted):
    image, labels = phantom
    hosts = set()
    for out, lesion_map, found in inserted:
        assert out.shape == image.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        assert len(found) >= 2
        painted = np.zeros(labels.shape, int)
        for les in found:
            m = les.full_mask(labels.shape)
            assert (labels[m] == les.host).all()  # clipped by the host mask
            assert les.host in next(ids for h, ids in LESION_HOSTS.items() if les.name.startswith(h))
            assert (lesion_map[m] == les.id).all()
            assert m.sum() >= 30 and 4 <= les.diameter_mm <= 45
            painted += m
            hosts.add(les.name.split("_")[0])
        assert painted.max() == 1 and ((painted > 0) == (lesion_map > 0)).all()
        # the image changes only in and right around the lesions (partial-volume edge)
        near = ndimage.binary_dilation(lesion_map > 0, iterations=3)
        np.testing.assert_array_equal(out[~near], image[~near])
    assert hosts == {"liver", "kidney", "lung", "bone"}


def test_lesions_have_their_intended_contrast(phantom, inserted):
    image, labels = phantom
    darker = ("liver_hypodense", "liver_cyst", "kidney_cyst", "kidney_solid", "bone_lytic")
    for out, _, found in inserted:
        for les in found:
            m = les.full_mask(labels.shape)
            ring = ndimage.binary_dilation(m, iterations=4) & ~ndimage.binary_dilation(m, iterations=2)
            ring &= labels == les.host
            if ring.sum() < 20:
                continue
            # HU in the model window, against the median of the host around it (as insert_lesions measures it:
            # the shell of a lesion near the organ's edge holds partial-volume fat that drags a mean down)
            diff = (out[m].mean() - np.median(image[ring])) * 350
            assert abs(les.contrast_hu) >= 20, les
            if les.name in darker:
                assert diff < -5, (les.name, diff)
            elif les.name != "kidney_solid":
                assert diff > 5, (les.name, diff)


def test_lesions_are_irregular_but_connected(inserted):
    fits = []
    for _, _, found in inserted:
        for les in found:
            _, n = ndimage.label(les.mask, np.ones((3, 3, 3)))
            assert n == 1  # one piece
            if les.mask.sum() < 150:
                continue
            # Dice with the sphere of the same volume at the same centroid: < 1 for a lobulated blob
            c = np.argwhere(les.mask).mean(0)
            r = (3 * les.mask.sum() / (4 * np.pi)) ** (1 / 3)
            sphere = ((np.indices(les.mask.shape) - c[:, None, None, None]) ** 2).sum(0) <= r ** 2
            fits.append(2 * (sphere & les.mask).sum() / (sphere.sum() + les.mask.sum()))
    assert len(fits) >= 5 and max(fits) < 0.97 and np.mean(fits) < 0.92, fits


def test_lesions_are_deterministic_per_rng(phantom):
    image, labels = phantom
    a = insert_lesions(image, labels, np.random.default_rng(3), n=3, spacing_mm=SPACING)
    b = insert_lesions(image, labels, np.random.default_rng(3), n=3, spacing_mm=SPACING)
    c = insert_lesions(image, labels, np.random.default_rng(4), n=3, spacing_mm=SPACING)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert [x.center for x in a[2]] == [x.center for x in b[2]]
    assert not np.array_equal(a[1], c[1])


def test_hu_input_and_host_choice(phantom):
    image, labels = phantom
    hu = image * 350 - 125
    out, lesion_map, found = insert_lesions(hu, labels, np.random.default_rng(0), n=2, hosts=("liver",),
                                            hu=True, spacing_mm=SPACING)
    assert found and all(les.host == 5 and les.name.startswith("liver") for les in found)
    assert out.max() > 1.5  # returned in HU
    assert np.isin(np.unique(lesion_map), [0, 201, 202, 203]).all()
    with pytest.raises(ValueError, match="unknown lesion hosts"):
        insert_lesions(image, labels, np.random.default_rng(0), hosts=("brain",))
    with pytest.raises(ValueError, match="same 3D"):
        insert_lesions(image[:-1], labels, np.random.default_rng(0))
    none = insert_lesions(image, np.zeros_like(labels), np.random.default_rng(0), n=2)
    assert none[2] == [] and not none[1].any()
