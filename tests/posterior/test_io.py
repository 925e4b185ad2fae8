"""Save and load: exact round trip; truncated, tampered, foreign and mismatched files refused."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import bayespal
from bayespal import files as checkpoint
from bayespal.datasets import synthetic
from bayespal.files import FileFormatError
from bayespal.users.newuser import NewUser

pytestmark = pytest.mark.slow  # every test here fits a model


@pytest.fixture(scope="module")
def fitted():
    syn = synthetic(n_users=40, n_train=15, n_test=5, n_items=100, seed=0)
    data = syn.data
    ids = np.array([f"user-{i}" for i in range(data.n_users)], dtype=object)
    data = bayespal.PreferenceData(data.user, data.item_a, data.item_b, data.label, data.items,
                                   ids, data.item_ids)
    train, test = data.subset(~syn.is_test), data.subset(syn.is_test)
    return bayespal.fit(train, k=3, pref_dim=4, epochs=20, seed=0, progress=False), test


def test_round_trip_predicts_exactly_the_same(fitted, tmp_path):
    fit, test = fitted
    path = tmp_path / "model.bayespal"
    fit.save(path)
    back = bayespal.load(path)
    np.testing.assert_array_equal(back.predict_proba(test, seed=3), fit.predict_proba(test, seed=3))
    np.testing.assert_array_equal(back.user_ids, fit.user_ids)
    xw, yw = back.user_weights(), fit.user_weights()
    np.testing.assert_array_equal(xw["mean"].values, yw["mean"].values)
    assert back.model_config == fit.model_config and back.train_config == fit.train_config
    np.testing.assert_array_equal(back.loss_history, fit.loss_history)
    # the stored item table is enough to place a new user
    a = NewUser(back, seed=0).observe(0, 1, 1).weights()["mean"].values
    b = NewUser(fit, seed=0).observe(0, 1, 1).weights()["mean"].values
    np.testing.assert_allclose(a, b)


def test_bad_files_are_refused_and_nothing_is_half_written(fitted, tmp_path):
    fit, _ = fitted
    path = tmp_path / "model.bayespal"
    fit.save(path)
    blob = bytearray(path.read_bytes())
    (tmp_path / "t.bayespal").write_bytes(bytes(blob[:-100]))
    with pytest.raises(FileFormatError, match="truncated"):
        bayespal.load(tmp_path / "t.bayespal")
    tampered = bytearray(blob)
    tampered[-10] ^= 0x01
    (tmp_path / "x.bayespal").write_bytes(bytes(tampered))
    with pytest.raises(FileFormatError, match="checksum"):
        bayespal.load(tmp_path / "x.bayespal")
    checkpoint.write_atomic(tmp_path / "c.ckpt", {"a": torch.zeros(2)}, {}, kind="checkpoint")
    with pytest.raises(FileFormatError, match="expected a bayespal model file"):
        bayespal.load(tmp_path / "c.ckpt")
    # a well-formed file from an incompatible format version
    tensors, meta = checkpoint.read(path, "model")
    meta["format_version"] = 99
    checkpoint.write_atomic(tmp_path / "v.bayespal", tensors, meta, kind="model")
    with pytest.raises(FileFormatError, match="format_version 99"):
        bayespal.load(tmp_path / "v.bayespal")
    # a configuration that does not match the tensors
    meta["format_version"] = 2
    meta["model_config"]["pref_dim"] = 7
    meta["model_config_hash"] = bayespal.ModelConfig.from_dict(meta["model_config"]).hash()
    checkpoint.write_atomic(tmp_path / "m.bayespal", tensors, meta, kind="model")
    with pytest.raises(FileFormatError, match="do not fit the stored configuration"):
        bayespal.load(tmp_path / "m.bayespal")
    assert not list(tmp_path.glob(".*.tmp"))


def test_unsaveable_ids_are_refused_before_writing(fitted, tmp_path):
    fit, _ = fitted
    odd = dataclasses.replace(fit, user_ids=np.array([1.5] * len(fit.user_ids), dtype=object))
    with pytest.raises(ValueError, match="user_ids: got ids of mixed or unsupported types .e.g. float 1.5"):
        odd.save(tmp_path / "odd.bayespal")
    assert not (tmp_path / "odd.bayespal").exists()


def test_a_loaded_fit_works_without_its_training_comparisons(fitted, tmp_path):
    """A loaded fit holds its item table, not its comparisons: everything that needs only
    the population and the items works on it (and agrees with the original fit), what
    needs the comparisons says so."""
    from bayespal.analysis.diagnostics import heterogeneity_check, to_datatree
    from bayespal.analysis.reward import RewardModel
    from bayespal.users import suggest

    fit, test = fitted
    fit.save(tmp_path / "m.bayespal")
    back = bayespal.load(tmp_path / "m.bayespal")
    assert back.training_data is None and back.items is not None
    np.testing.assert_array_equal(back.items.ids, fit.items.ids)
    np.testing.assert_array_equal(back.items.embeddings, fit.items.embeddings)
    users = test.user_ids[test.user]
    np.testing.assert_array_equal(
        back.predict_proba(user=users, item_a=test.item_a, item_b=test.item_b, seed=4),
        fit.predict_proba(user=users, item_a=test.item_a, item_b=test.item_b, seed=4))
    user = NewUser(back, seed=0).observe([0, 2], [1, 3], [1, 0])
    assert len(suggest(user, np.array([[4, 5], [6, 7], [8, 9]]), n=2)) == 2
    np.testing.assert_allclose(RewardModel(back, weights=[1, 0, 0]).reward(test.items[:5])[0],
                               RewardModel(fit, weights=[1, 0, 0]).reward(test.items[:5])[0],
                               rtol=1e-5, atol=1e-6)
    tree = to_datatree(back, test, num_samples=20)
    assert tree["log_likelihood"]["label"].shape == (1, 20, len(test))
    for needs_comparisons in (to_datatree, heterogeneity_check):
        with pytest.raises(ValueError, match="this fit holds none: it was loaded from a file"):
            needs_comparisons(back)


DATA = Path(__file__).resolve().parent / "data"


def test_a_format_1_file_from_bayespal_0_1_still_loads(tmp_path):
    """``data/format1.bayespal`` was written by bayespal 0.1 (commit 7035989) with its
    predictions and weights beside it: 0.2 reads it, splits its configuration, and predicts
    the same (the user weights exactly, the predictions within Monte Carlo error)."""
    expected = json.loads((DATA / "format1_expected.json").read_text())
    fit = bayespal.load(DATA / "format1.bayespal")
    assert (fit.model_config.k, fit.model_config.pref_dim, fit.model_config.hidden) == (2, 3, (8,))
    assert fit.train_config.inference == "svi" and fit.train_config.seed == 2
    assert fit.model_config.weight_prior == "dirichlet"  # the prior it was fitted with
    np.testing.assert_allclose(fit.population_prior()["concentration"].values[0],
                               expected["concentration"], rtol=1e-6)
    np.testing.assert_allclose(fit.concentration, expected["concentration"], rtol=1e-6)
    np.testing.assert_allclose(fit.user_weights()["mean"].values, expected["weights"], rtol=1e-5)
    p = fit.predict_proba(user=expected["user"], item_a=expected["item_a"],
                          item_b=expected["item_b"], num_samples=2000, seed=1)
    assert np.abs(p - np.asarray(expected["p"])).max() < 0.05  # 100 draws in the old run
    tensors, meta = checkpoint.read(DATA / "format1.bayespal", "model")
    meta["format_version"] = 3  # a future format: refused, naming the versions it reads
    checkpoint.write_atomic(tmp_path / "future.bayespal", tensors, meta, kind="model")
    with pytest.raises(FileFormatError, match=r"format_version 3; expected one of \(1, 2\)"):
        bayespal.load(tmp_path / "future.bayespal")
