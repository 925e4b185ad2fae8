"""Callbacks see every epoch of every run, can stop a fit, and TensorBoard gets the logs."""

import numpy as np
import pytest

import bayespal
from bayespal.datasets import synthetic
from bayespal.inference import EpochInfo, TensorBoard

FAST = dict(k=2, pref_dim=4, epochs=25, seed=0, progress=False)


class Recorder:
    def __init__(self, stop_at=None):
        self.epochs, self.ends, self.stop_at = [], [], stop_at

    def on_epoch_end(self, info: EpochInfo):
        self.epochs.append(info)
        return self.stop_at is not None and info.epoch >= self.stop_at

    def on_fit_end(self, info: EpochInfo):
        self.ends.append(info)


@pytest.fixture(scope="module")
def data():
    return synthetic(n_users=150, k=2, n_train=20, n_test=0, n_items=200, seed=1).data


def test_every_epoch_of_every_candidate_is_reported(data):
    rec, calls = Recorder(), []
    fit = bayespal.fit(data, callbacks=[rec, calls.append], **FAST)  # hidden chosen: 2 runs
    runs = list(dict.fromkeys(i.run for i in rec.epochs))
    assert runs == ["hidden=(16,)", "hidden=(64,)"] and len(rec.ends) == 2
    assert [i.run for i in calls] == [i.run for i in rec.epochs]  # a plain function works too
    chosen = f"hidden={fit.model_config.hidden}"
    mine = [i for i in rec.epochs if i.run == chosen]
    assert [i.epoch for i in mine] == list(range(1, len(mine) + 1))
    np.testing.assert_allclose([i.loss for i in mine], fit.loss_history)
    np.testing.assert_allclose([i.validation_loss for i in mine], fit.validation_history)
    assert all(i.stopped is None for i in mine[:-1])
    end = next(e for e in rec.ends if e.run == chosen)
    assert end.stopped == mine[-1].stopped == fit.selection.chosen["stopped"]
    assert end.best_epoch == fit.selection.chosen["best_epoch"]
    assert all(0 < i.lr <= 0.01 + 1e-12 and i.seconds > 0 for i in rec.epochs)


def test_a_callback_can_stop_the_fit(data, capsys):
    rec = Recorder(stop_at=3)
    fit = bayespal.fit(data, hidden=(16,), callbacks=[rec], **{**FAST, "progress": True})
    assert len(fit.loss_history) == 3 and rec.ends[0].stopped == "callback"
    assert fit.selection.chosen["stopped"] == "callback"
    out = capsys.readouterr()
    assert "stopped by a callback at epoch 3; kept epoch" in out.out + out.err


def test_tensorboard_logs_each_epoch(data, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    tb = TensorBoard(tmp_path / "tb")
    fit = bayespal.fit(data, hidden=(16,), validation_fraction=0, callbacks=[tb], **FAST)
    tb.close()
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"hidden=(16,)/loss/train", "hidden=(16,)/lr", "hidden=(16,)/seconds"} <= set(tags)
    assert "hidden=(16,)/loss/validation" not in tags  # no validation split here
    logged = [e.value for e in acc.Scalars("hidden=(16,)/loss/train")]
    np.testing.assert_allclose(logged, fit.loss_history, rtol=1e-6)


def test_bad_callbacks_are_refused(data):
    with pytest.raises(ValueError, match="callbacks: got Recorder; expected a list"):
        bayespal.fit(data, callbacks=Recorder(), **FAST)
    with pytest.raises(ValueError, match=r"callbacks\[1\]: got int; expected an object"):
        bayespal.fit(data, callbacks=[Recorder(), 3], **FAST)
