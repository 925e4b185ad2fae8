"""PAL-A fits recover known truth on synthetic data (issue 2's acceptance numbers)."""

import itertools

import numpy as np
import pyro
import pytest
import torch

import bayespal
from bayespal.analysis.baselines import BradleyTerry
from bayespal.datasets import synthetic
from bayespal.inference.elbo import site_elbo_loss
from bayespal.inference.trainer import DeviceData
from bayespal.metrics import accuracy, log_loss

pytestmark = pytest.mark.slow  # every test here fits a model


def best_permutation(est: np.ndarray, truth: np.ndarray) -> list[int]:
    k = truth.shape[1]
    return list(min(itertools.permutations(range(k)),
                    key=lambda p: ((est[:, list(p)] - truth) ** 2).sum()))


def test_heldout_accuracy_near_bayes_optimal(syn3, fit3):
    test = syn3.test
    acc = accuracy(fit3.predict_proba(test), test.label)
    bayes = accuracy(syn3.true_prob[syn3.is_test], test.label)
    print(f"held-out accuracy {acc:.4f}, Bayes-optimal {bayes:.4f}")
    # measured (seeds 0-5): 0.9061-0.9079 against 0.9245
    assert acc >= bayes - 0.02


def test_partition_users_recovered_and_intervals_calibrated(syn3, fit3):
    w = fit3.user_weights(ci=0.9)
    assert w["mean"].dims == ("user", "prototype")
    perm = best_permutation(w["mean"].values, syn3.true_weights)
    mean = w["mean"].values[:, perm]
    part = syn3.group >= 0
    assigned = (mean[part].argmax(1) == syn3.group[part]).mean()
    mix = ~part  # interior truth: equal-tailed intervals cannot cover a vertex exactly
    lo, hi = w["lower"].values[:, perm], w["upper"].values[:, perm]
    cover = ((syn3.true_weights >= lo) & (syn3.true_weights <= hi))[mix].mean()
    print(f"partition users assigned {assigned:.3f}; 90% interval coverage {cover:.3f}")
    assert assigned >= 0.95
    assert 0.80 <= cover <= 0.97  # measured 0.958 (0.963 before the local refinement)


def test_exact_conditional_weights_of_seen_users_are_calibrated(syn3, fit3):
    """Each seen user's posterior given the fitted population, by importance sampling
    (``place_users`` on the training data): the exact counterpart of the mean-field q."""
    from bayespal.users.newuser import place_users

    w = place_users(fit3, syn3.train).weights(ci=0.9)
    perm = best_permutation(w["mean"].values, syn3.true_weights)
    mix = syn3.group < 0
    lo, hi = w["lower"].values[:, perm], w["upper"].values[:, perm]
    cover = ((syn3.true_weights >= lo) & (syn3.true_weights <= hi))[mix].mean()
    print(f"exact conditional 90% interval coverage {cover:.3f}")
    assert 0.80 <= cover <= 0.97  # measured 0.880


def test_posterior_predictive_averages_draws(syn3, fit3):
    test = syn3.test.subset(np.arange(200))
    draws = fit3.predict_proba(test, return_draws=True, seed=1)
    assert draws.shape == (200, 200)
    np.testing.assert_allclose(fit3.predict_proba(test, seed=1), draws.mean(0), rtol=1e-5)
    assert draws.std(0).mean() > 0.005  # real posterior spread, not a plug-in


def test_same_seed_same_result():
    syn = synthetic(n_users=30, n_train=10, n_test=0, seed=2)
    f1 = bayespal.fit(syn.data, k=2, epochs=5, seed=7, progress=False)
    f2 = bayespal.fit(syn.data, k=2, epochs=5, seed=7, progress=False)
    np.testing.assert_array_equal(f1.loss_history, f2.loss_history)
    np.testing.assert_array_equal(f1.user_weights()["mean"], f2.user_weights()["mean"])


def test_unknown_user_gets_population_average(syn3, fit3):
    items = syn3.data.items
    p = fit3.predict_proba(user=["nobody", "nobody"], item_a=[0, 1], item_b=[1, 0], items=items)
    assert np.isfinite(p).all()
    # The population average is the mean over users drawn from the fitted population.
    users = np.arange(400)
    p_users = fit3.predict_proba(user=users, item_a=np.zeros(400, int),
                                 item_b=np.ones(400, int), items=items)
    assert abs(p[0] - p_users.mean()) < 0.1


def test_bradley_terry_special_case_k1():
    syn = synthetic(n_users=200, k=1, n_train=40, n_test=20, seed=4)
    train, test = syn.train, syn.test
    fit = bayespal.fit(train, k=1, pref_dim=4, seed=0, progress=False)
    acc = accuracy(fit.predict_proba(test), test.label)
    lin = accuracy(BradleyTerry(epochs=60).fit(train).predict_proba(test), test.label)
    mlp = accuracy(BradleyTerry(hidden=(64,), epochs=60).fit(train).predict_proba(test),
                   test.label)
    print(f"K=1 PAL {acc:.4f}, linear BT {lin:.4f}, MLP BT {mlp:.4f}")
    assert acc >= max(lin, mlp) - 0.01
    w = fit.sample_posterior(2)["weights"]  # one prototype: every weight is 1
    assert w.shape == (2, train.n_users, 1) and (w == 1).all()


def test_map_mode_fits_point_estimates(syn3):
    small = syn3.train.subset(syn3.train.user < 100)
    fit = bayespal.fit(small, k=3, pref_dim=4, inference="map", epochs=30, progress=False)
    w = fit.user_weights()
    assert float(w["sd"].max()) == 0.0
    np.testing.assert_allclose(w["mean"].sum("prototype"), 1.0, atol=1e-5)
    assert log_loss(fit.predict_proba(small), small.label) < 0.6


@pytest.mark.parametrize(
    "kw, pattern",
    [
        (dict(k=0), "k: got 0"),
        (dict(batch_size=0), "batch_size: got 0"),
        (dict(device="tpu"), "device: got 'tpu'"),
        (dict(inference="nuts"), "inference: got 'nuts'"),
        (dict(lr_schedule="step"), "lr_schedule: got 'step'"),
    ],
)
def test_fit_argument_errors(kw, pattern):
    syn = synthetic(n_users=5, n_train=4, n_test=0, seed=0)
    with pytest.raises(ValueError, match=pattern):
        bayespal.fit(syn.data, **{"progress": False, **kw})


def test_validation_early_stopping_keeps_the_best_epoch():
    from bayespal.metrics import log_loss

    syn = synthetic(n_users=60, n_train=20, n_test=0, seed=3)
    train, val = syn.data.split_comparisons(test_per_user=4, seed=0)
    fit = bayespal.fit(train, k=3, pref_dim=4, epochs=40, patience=3, validation=val, seed=0,
                       progress=False, local_epochs=0)
    hist = fit.validation_history
    assert len(hist) == len(fit.loss_history) and np.isfinite(hist).all()
    p = fit.predict_proba(val, num_samples=32, seed=0)
    # the state kept is the last epoch that lowered the best validation loss by tol (1e-3);
    # an epoch a little lower still (by less than tol) does not replace it: measured, keeping
    # the lowest instead left a default fit over-confident (calibration slope 0.70, not 0.84)
    best, kept = np.inf, -1
    for epoch, value in enumerate(hist):
        if value < best - 1e-3:
            best, kept = value, epoch
    assert log_loss(p, val.label) == pytest.approx(hist[kept], abs=1e-6)
    assert hist[kept] <= hist.min() + 1e-3
    # the local refinement (the default) starts from that state and changes only the users'
    # own parameters: every shared one is the same, and the ELBO of the data is higher
    refined = bayespal.fit(train, k=3, pref_dim=4, epochs=40, patience=3, validation=val,
                           seed=0, progress=False)
    local = {"weights_raw_concentration"}
    for name, value in fit.guide.state_dict().items():
        same = torch.equal(value, refined.guide.state_dict()[name])
        assert same != (name in local), name
    for name, value in fit.model.state_dict().items():
        assert torch.equal(value, refined.model.state_dict()[name]), name
    batch = DeviceData.from_data(train, torch.device("cpu")).batch(minibatch=False)
    loss = {}
    for label, f in (("main run", fit), ("refined", refined)):
        pyro.set_rng_seed(0)
        with torch.no_grad():
            loss[label] = float(site_elbo_loss(f.model, f.guide, batch, 200))
    print(f"-ELBO of the training data: {loss}")
    # measured 610.7 -> 607.2 nats; the 200-draw estimate's sd over seeds is 0.1-0.2
    assert loss["refined"] < loss["main run"] - 1.5
    with pytest.raises(ValueError, match="validation: got list"):
        bayespal.fit(train, validation=[1], progress=False)
