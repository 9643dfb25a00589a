"""Nothing lost, nothing silently wrong: faults during clicks, autosave, restore and replay.

The all-or-nothing rule: a public action that raises leaves the predictor exactly as before
(objects, masks, undo/redo history, session log); an autosave that fails only warns.
"""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctsam3d_nb import CTVolume
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.session import ReplayWarning
from region_model import RegionModel


def _ct(shift=0):
    hu = np.zeros((40, 36, 30), np.int16)
    hu[8:30, 6:28, 5:25] = 200
    hu[2:6, 2:6, 2:6] = 200
    hu += np.int16(shift)  # another scan of the same geometry
    return CTVolume.from_array(hu, spacing=(2.0, 1.5, 1.5))


class Flaky(RegionModel):
    """Decodes normally unless told to fail on the next decode."""

    def __init__(self):
        super().__init__()
        self.fail_next = False

    def decode(self, features, prompt):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("injected model failure")
        return super().decode(features, prompt)


def state(p: Predictor) -> str:
    """Everything a user could observe or undo, as one hash."""
    h = hashlib.sha1()
    h.update(json.dumps([p.current, [(o.name, o.label_id, o.clicks) for o in p.objects], p.session["events"],
                         len(p._undo), len(p._redo)], default=str).encode())
    for o in p.objects:
        for f, m in sorted(o.masks.levels.items()):
            for k in sorted(m.probs):
                h.update(repr((f, k)).encode() + m.probs[k].tobytes())
    for snap in p._undo + p._redo:
        h.update(json.dumps([snap[1], [(o.name, o.clicks, sorted(o.masks.probs)) for o in snap[0]]],
                            default=str).encode())
    return h.hexdigest()


OPS = st.lists(st.tuples(st.sampled_from(["click", "negative", "undo", "redo", "new", "reset"]),
                         st.sampled_from(["none", "model", "disk"]),
                         st.tuples(st.integers(0, 39), st.integers(0, 35), st.integers(0, 29))),
               min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, mode=st.sampled_from(["zoom", "grow"]))
def test_a_failing_model_call_leaves_everything_as_it_was(ops, mode, tmp_path_factory, monkeypatch):
    import ctsam3d_nb.session as session_module

    folder = tmp_path_factory.mktemp("auto")
    model = Flaky()
    pred = Predictor(model, mode=mode, growth_budget=2, autosave=folder).set_volume(_ct())
    real_write = session_module.atomic_write
    n_new = 0
    for op, fail, zyx in ops:
        model.fail_next = fail == "model" and op in ("click", "negative")
        disk_full = fail == "disk"

        def write(path, fn):
            if disk_full:
                raise OSError(28, "No space left on device (injected)")
            return real_write(path, fn)

        monkeypatch.setattr(session_module, "atomic_write", write)
        before = state(pred)
        saved = (folder / "ctsam3d_session.json").read_text() if (folder / "ctsam3d_session.json").exists() else None
        try:
            with warnings.catch_warnings(record=True) as caught:  # a failed autosave warns (once per predictor)
                warnings.simplefilter("always")
                if op in ("click", "negative"):
                    pred.click(zyx, positive=op == "click")
                elif op == "new":
                    n_new += 1
                    pred.new_object(f"thing {n_new}")
                else:
                    getattr(pred, op)()
            assert all("autosave" in str(w.message) for w in caught) and (disk_full or not caught)
        except RuntimeError as e:
            assert "injected" in str(e)
            assert state(pred) == before  # all or nothing
            now = (folder / "ctsam3d_session.json").read_text() if saved is not None else None
            assert now == saved  # the autosave still holds the last successful action
        else:
            if disk_full and state(pred) != before:  # the action happened although its autosave failed
                now = (folder / "ctsam3d_session.json").read_text() if saved is not None else None
                assert now == saved  # ... and the file was not damaged
        model.fail_next = False
    monkeypatch.setattr(session_module, "atomic_write", real_write)
    replayed = Predictor.replay(pred.session, _ct(), model=RegionModel())
    np.testing.assert_array_equal(replayed.label_map, pred.label_map)


@pytest.mark.filterwarnings("ignore:.*Hounsfield")  # a synthetic block CT without air
def test_replay_and_restore_take_the_ct_as_load_ct_reads_it(tmp_path):
    """A path or SimpleITK image is read with load_ct; a bare array (no voxel size) is refused by name."""
    import SimpleITK as sitk

    ct = _ct()
    pred = Predictor(RegionModel(), autosave=tmp_path / "auto").set_volume(ct)
    pred.click((18, 16, 14))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(ct.image, str(path))
    for given in (path, str(path), ct.image):
        np.testing.assert_array_equal(Predictor.replay(pred.session, given, model=RegionModel()).label_map,
                                      pred.label_map)
    np.testing.assert_array_equal(Predictor.restore(tmp_path / "auto", path, model=RegionModel()).label_map,
                                  pred.label_map)
    for call in (lambda: Predictor.replay(pred.session, ct.array, model=RegionModel()),
                 lambda: Predictor.restore(tmp_path / "auto", ct.array, model=RegionModel())):
        with pytest.raises(TypeError, match=r"bare numpy array.*load_ct\(array, spacing="):
            call()
    with pytest.raises(TypeError, match="replay/restore need the CT"):
        Predictor.replay(pred.session, 42, model=RegionModel())


def test_a_failed_new_object_keeps_the_history():
    pred = Predictor(RegionModel()).set_volume(_ct())
    pred.new_object("liver")
    pred.click((18, 16, 14))
    pred.undo()
    before = state(pred)
    with pytest.raises(ValueError, match="already used by object 'liver'"):
        pred.new_object("my liver", label_id=5)
    with pytest.raises(ValueError, match="1..65535"):
        pred.new_object("big", label_id=70000)
    with pytest.raises(TypeError, match="whole number"):
        pred.new_object("half", label_id=2.5)
    with pytest.raises(TypeError, match="non-empty string"):
        pred.new_object(None)
    assert state(pred) == before and pred.redo()  # the redo of the click survived


@pytest.mark.parametrize("positive", ["no", 0, 1, None, "False"])
def test_positive_must_be_a_boolean(positive):
    pred = Predictor(RegionModel()).set_volume(_ct())
    with pytest.raises(TypeError, match="True or False"):
        pred.click((18, 16, 14), positive=positive)
    assert not pred.objects or not pred.object.clicks
    assert pred.click((18, 16, 14), positive=np.bool_(True)).any()  # numpy booleans are fine
    log = pred.session
    log["events"][-1]["positive"] = "no"  # a hand-edited log
    with pytest.raises(ValueError, match="cannot be replayed.*True or False"):
        Predictor.replay(log, _ct(), model=RegionModel())


def test_restore_writes_nothing_until_the_replay_has_finished(tmp_path):
    pred = Predictor(RegionModel(), autosave=tmp_path).set_volume(_ct())
    for zyx in [(18, 16, 14), (20, 10, 10), (25, 20, 20)]:
        pred.click(zyx)
    saved = (tmp_path / "ctsam3d_session.json").read_text()
    model = Flaky()
    calls = {"n": 0}
    original = model.decode

    def interrupted(features, prompt):  # the user interrupts the kernel during the replay's 2nd click
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(features, prompt)

    model.decode = interrupted
    with pytest.raises(KeyboardInterrupt):
        Predictor.restore(tmp_path, _ct(), model=model)
    assert (tmp_path / "ctsam3d_session.json").read_text() == saved  # all 3 clicks still there
    back = Predictor.restore(tmp_path, _ct(), model=RegionModel())
    assert len(back.object.clicks) == 3
    back.click((30, 20, 20), positive=False)  # continues the same file, no backup of itself
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctsam3d_session.json"]
    assert len(json.loads((tmp_path / "ctsam3d_session.json").read_text())["events"]) == 4


def test_a_new_session_keeps_the_earlier_one_in_the_autosave_folder(tmp_path):
    first = Predictor(RegionModel(), autosave=tmp_path).set_volume(_ct())
    first.click((18, 16, 14))
    earlier = (tmp_path / "ctsam3d_session.json").read_text()
    for n in range(7):
        second = Predictor(RegionModel(), autosave=tmp_path).set_volume(_ct())
        with pytest.warns(UserWarning, match="kept as 'ctsam3d_session.1.json'"):
            second.click((20, 10, 10))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # only the session's first write moves a file
            second.click((25, 20, 20))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ctsam3d_session.1.json", "ctsam3d_session.2.json", "ctsam3d_session.3.json",
                     "ctsam3d_session.4.json", "ctsam3d_session.5.json", "ctsam3d_session.json"]
    assert (tmp_path / "ctsam3d_session.5.json").read_text() != earlier  # the 5 latest are kept
    back = Predictor.restore(tmp_path / "ctsam3d_session.1.json", _ct(), model=RegionModel())
    assert len(back.object.clicks) == 2


def test_replay_warns_when_the_weights_differ_from_the_log(tmp_path):
    pred = Predictor(RegionModel()).set_volume(_ct())
    pred.click((18, 16, 14))
    log = pred.session
    log["model"]["checkpoint"] = {"sha256": "ab" * 32, "path": "nano.pt"}
    with pytest.warns(ReplayWarning, match="recorded with the weights sha256 abababababab"):
        Predictor.replay(log, _ct(), model=RegionModel())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Predictor.replay(pred.session, _ct(), model=RegionModel())  # no checkpoint recorded: nothing to compare


def test_the_viewer_refuses_a_predictor_on_another_scan_of_the_same_geometry():
    from ctsam3d_nb.viewer import SliceViewer

    pred = Predictor(RegionModel()).set_volume(_ct())
    with pytest.raises(ValueError, match="voxels differ"):
        SliceViewer(_ct(shift=50), pred, interactive=False)
    SliceViewer(_ct(), pred, interactive=False).close()  # the same scan loaded again is fine
