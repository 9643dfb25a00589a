"""The bundled sample phantom: loaded from package data, shipped in the wheel, never overwritten."""
from __future__ import annotations

import fnmatch
import tomllib
import warnings

import numpy as np
import pytest

import ctsam3d_nb as cs
from ctsam3d_nb import save_mask
from conftest import REPO


def test_load_sample_from_package_data(tmp_path):
    s = cs.load_sample()
    ct, labels, names = s  # unpacks like a tuple
    assert s.ct is ct and ct.shape == (128, 160, 160) and labels.shape == ct.shape
    np.testing.assert_allclose(ct.spacing, (2.5, 2.0, 2.0))
    assert labels.dtype == np.uint8 and len(names) == 72 and names[5] == "liver" and names[1] == "spleen"
    assert set(np.unique(labels)) - {0} == set(names)
    liver_hu = np.median(ct.array[labels == 5])
    assert 20 < liver_hu < 200
    src = (REPO / "ctsam3d_nb" / "data" / "phantom_ct.nii.gz").resolve()
    assert ct.source == str(src)
    before = src.read_bytes()
    with pytest.raises(ValueError, match="input CT"):  # the package's copy is never overwritten
        save_mask(labels, like=ct, path=src, overwrite=True)
    assert src.read_bytes() == before
    labels[:] = 0  # each call gives the caller their own labels
    assert cs.load_sample().labels.any()


def test_package_data_ships_the_sample_and_py_typed():
    pd = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ctsam3d_nb"]
    pkg = REPO / "ctsam3d_nb"
    shipped = [p.relative_to(pkg).as_posix() for p in (pkg / "data").iterdir()] + ["py.typed"]
    for rel in shipped:
        assert (pkg / rel).is_file()
        assert any(fnmatch.fnmatch(rel, pat) for pat in pd), f"{rel} is not in the wheel's package-data"
    assert {"phantom_ct.nii.gz", "phantom_labels.nii.gz", "phantom_labels.json"} <= set(
        cs.sample.sample_paths()[k].name for k in ("ct", "labels", "names"))


def test_sample_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cs.load_sample()
