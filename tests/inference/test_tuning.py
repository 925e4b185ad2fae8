"""The self-tuning fit: the validation split, the plateau schedule, the choice of the
mapping's size, the refit, and what the fit says it chose."""

import math

import numpy as np
import pytest

import bayespal
from bayespal.datasets import synthetic
from bayespal.inference import train, tuning
from bayespal.inference.trainer import PLATEAU_DECAY


def test_the_validation_split_keeps_every_user_and_holds_out_the_fraction():
    syn = synthetic(n_users=1000, k=2, n_train=7, n_test=0, seed=0)
    data = syn.data
    train, val = tuning.validation_split(data, 0.1, seed=3)
    assert train.n_users == data.n_users  # nobody loses all their comparisons
    assert list(train.user_ids) == list(data.user_ids)
    assert train.n_comparisons + val.n_comparisons == data.n_comparisons
    # floor(7 * 0.1 + u) has mean exactly 0.7: 700 of 7000 expected, sd about 14
    assert abs(val.n_comparisons - 700) < 4 * math.sqrt(1000 * 0.7 * 0.3)
    pairs = lambda d: set(zip(d.user_ids[d.user], d.item_a, d.item_b, strict=True))  # noqa: E731
    assert not pairs(train) & pairs(val)
    again = tuning.validation_split(data, 0.1, seed=3)[1]
    np.testing.assert_array_equal(again.item_a, val.item_a)
    small = synthetic(n_users=20, k=2, n_train=10, n_test=0, seed=0).data
    assert tuning.validation_split(small, 0.1, seed=0)[1] is None  # 20 < MIN_VALIDATION
    assert tuning.validation_split(data, 0.0, seed=0)[1] is None


def test_validation_fraction_is_checked():
    with pytest.raises(ValueError, match="validation_fraction"):
        bayespal.TrainConfig(validation_fraction=0.7)
    with pytest.raises(ValueError, match="refit"):
        bayespal.TrainConfig(refit="yes")


def _quick(**kw):
    return {**dict(k=2, pref_dim=4, epochs=40, batch_size=256, progress=False, seed=0), **kw}


@pytest.mark.slow
def test_the_plateau_schedule_lowers_the_rate_then_stops_and_a_replay_retraces_it():
    syn = synthetic(n_users=100, k=2, n_train=30, n_test=0, seed=1)
    model_config = bayespal.ModelConfig(k=2, pref_dim=4, hidden=(16,))
    train_config = bayespal.TrainConfig(lr_schedule="plateau", patience=2, tol=10.0,
                                        lr_final_factor=0.05, epochs=40, batch_size=256,
                                        validation_fraction=0)
    first = train(syn.data, model_config, train_config, progress=False)
    # tol=10 nats: after the first epoch no epoch counts as an improvement, so every
    # `patience` epochs the rate falls by PLATEAU_DECAY while it stays >= 0.05, then the
    # fit stops
    decays = int(math.floor(math.log(0.05) / math.log(PLATEAU_DECAY)))  # 0.3, 0.09 -> 2
    rates = [1, 1, 1, 0.3, 0.3, 0.09, 0.09]
    assert len(first.loss_history) == 1 + 2 * (decays + 1) == len(rates)
    assert first.stopped == "plateau"
    np.testing.assert_allclose(first.lr_history, rates, rtol=1e-6)
    # a replay of those rates (what refit=True runs) retraces the fit exactly
    again = train(syn.data, model_config, train_config, progress=False,
                  replay=first.lr_history.tolist())
    np.testing.assert_allclose(again.lr_history, rates, rtol=1e-6)
    np.testing.assert_array_equal(again.loss_history, first.loss_history)
    assert again.stopped == "epochs"


@pytest.mark.slow
def test_the_fit_chooses_the_mapping_that_validates_best_and_refits_on_everything(monkeypatch):
    # a 1-unit mapping cannot carry a 4-d preference space: the choice must avoid it
    monkeypatch.setattr(tuning, "AUTO_HIDDEN", ((1,), (32,)))
    syn = synthetic(n_users=150, k=2, n_train=40, n_test=0, seed=2)
    fit = bayespal.fit(syn.data, lr_schedule="plateau", refit=True, **_quick())
    table = fit.selection.candidates
    assert list(table["hidden"]) == [(1,), (32,)]
    assert table["validation_log_loss"][0] > table["validation_log_loss"][1] + 0.02
    assert fit.model_config.hidden == (32,)
    assert fit.selection.chosen["hidden"] == (32,)
    # the refit ran on all comparisons, for the chosen candidate's best epoch count
    assert fit.selection.n_train == syn.data.n_comparisons
    assert fit.model.n_comparisons == syn.data.n_comparisons
    assert len(fit.loss_history) == table["best_epoch"][1]
    text = fit.summary()
    assert "hidden=(32,): the lowest validation log-loss of 2 candidates" in text
    assert "refitted on all 6000 comparisons" in text


@pytest.mark.slow
def test_the_selection_survives_save_and_load(tmp_path):
    syn = synthetic(n_users=60, k=2, n_train=40, n_test=0, seed=4)
    fit = bayespal.fit(syn.data, **_quick(epochs=5))
    # the default keeps the best validated epoch: trained on 90% of the comparisons
    assert fit.selection.n_train < syn.data.n_comparisons
    # ... and only the kept candidate's users were refined afterwards
    assert fit.selection.reason.count("refined alone") == 1
    assert "best epoch kept; then each user's weights refined alone for 50 epochs" in (
        fit.selection.reason)
    fit.save(tmp_path / "m.bayespal")
    back = bayespal.load(tmp_path / "m.bayespal")
    assert back.selection.reason == fit.selection.reason
    assert back.selection.candidates.equals(fit.selection.candidates)
    assert back.summary().splitlines()[1:4] == fit.summary().splitlines()[1:4]


def test_too_little_data_to_validate_warns_and_takes_the_smallest_mapping():
    syn = synthetic(n_users=10, k=2, n_train=10, n_test=0, seed=0)
    with pytest.warns(UserWarning, match="not validated"):
        fit = bayespal.fit(syn.data, **_quick(epochs=2))
    assert fit.model_config.hidden == tuning.AUTO_HIDDEN[0]
    assert "no validation split" in fit.selection.reason


def test_distributed_fit_outside_torchrun_is_refused_by_name(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    syn = synthetic(n_users=10, k=2, n_train=10, n_test=0, seed=0)
    with pytest.raises(ValueError, match="expected a launch by torchrun"):
        bayespal.fit(syn.data, distributed=True, **_quick(epochs=1))
