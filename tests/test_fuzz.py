"""Property-based fuzzing: click coordinates, volume geometry, session logs."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctsam3d_nb import CTVolume, ModelGrid
from ctsam3d_nb.predictor import Predictor
from region_model import RegionModel

SHAPE = (30, 24, 20)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _ct():
    hu = np.zeros(SHAPE, np.int16)
    hu[8:20, 6:18, 5:15] = 200
    return CTVolume.from_array(hu, spacing=(2.0, 1.2, 1.7))


@pytest.fixture(scope="module")
def pred():
    return Predictor(RegionModel(), growth_budget=2).set_volume(_ct())


number = st.one_of(st.integers(-50, 80), st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.text(max_size=3), st.none())


@FUZZ
@given(coords=st.lists(number, min_size=0, max_size=5), positive=st.booleans())
def test_click_fuzz_valid_mask_or_clear_error(pred, coords, positive):
    n_clicks = sum(len(o.clicks) for o in pred.objects)
    events = len(pred.session["events"])
    try:
        mask = pred.click(coords, positive=positive)
    except (ValueError, TypeError) as e:
        assert "click" in str(e) or "coordinate" in str(e)
        assert sum(len(o.clicks) for o in pred.objects) == n_clicks  # nothing recorded
        assert len(pred.session["events"]) == events
        return
    assert mask.shape == SHAPE and mask.dtype == bool
    assert all(-0.5 <= float(c) <= s - 0.5 for c, s in zip(coords, SHAPE))


@FUZZ
@given(shape=st.tuples(*[st.integers(2, 12)] * 3),
       spacing=st.tuples(*[st.floats(0.3, 5.0)] * 3),
       dtype=st.sampled_from([np.int16, np.float32, np.uint8, np.int32]),
       perm=st.permutations([0, 1, 2]), signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3))
def test_volume_geometry_fuzz(shape, spacing, dtype, perm, signs):
    direction = np.zeros((3, 3))
    for col, (row, s) in enumerate(zip(perm, signs)):
        direction[row, col] = s
    arr = np.random.default_rng(0).integers(0, 200, size=shape).astype(dtype)
    ct = CTVolume.from_array(arr, spacing=spacing, origin=(1.0, -2.0, 3.0), direction=direction)
    assert ct.shape == shape and np.allclose(ct.spacing, spacing)
    idx = np.argwhere(np.ones(shape, bool))[:: max(1, int(np.prod(shape)) // 50)].astype(float)
    np.testing.assert_allclose(ct.physical_to_index(ct.index_to_physical(idx)), idx, atol=1e-8)
    grid = ModelGrid.covering(ct)
    g = grid.from_ct_index(ct, idx)
    assert g.min() > -1e-6 and np.all(g.max(0) < np.asarray(grid.shape) + 1e-6)
    img = grid.resample_ct(ct)
    assert img.shape == grid.shape and np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1
    m = grid.mask_to_ct(grid.labels_to_grid(arr > 100, ct), ct)
    assert m.shape == shape and m.dtype == bool


def _base_session():
    p = Predictor(RegionModel(), growth_budget=2).set_volume(_ct())
    p.new_object("liver")
    p.click((14, 12, 10))
    p.click((9, 7, 6), positive=False)
    p.undo()
    return json.loads(json.dumps(p.session))


BASE = _base_session()
junk = st.one_of(st.none(), st.integers(-5, 99), st.text(max_size=4), st.lists(st.integers(-5, 40), max_size=4),
                 st.floats(allow_nan=True))


@FUZZ
@given(path=st.sampled_from(["version", "format", "events", "settings", "ct", "event.op", "event.zyx",
                             "event.positive", "event.name", "event.index", "event.label_id"]),
       value=junk, which=st.integers(0, 10))
def test_session_log_fuzz_replays_or_fails_clearly(path, value, which):
    s = copy.deepcopy(BASE)
    if path.startswith("event."):
        ev = s["events"][which % len(s["events"])]
        ev[path.split(".")[1]] = value
    else:
        s[path] = value
    try:
        pred = Predictor.replay(s, _ct(), model=RegionModel())
    except ValueError as e:
        assert "session" in str(e)  # names what is wrong with the log
        return
    assert pred.label_map.shape == SHAPE
