"""Answers on an ordered scale (ties, graded strength): the likelihood, the data, known-truth
recovery, calibration of P(tie), new users against NUTS, files and diagnostics."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import bayespal
from bayespal.data import DataError, PreferenceData
from bayespal.datasets import synthetic
from bayespal.metrics import accuracy, expected_calibration_error, log_loss, tie_calibration
from bayespal.model.likelihood import (
    cutpoints,
    expected_score,
    outcome_bounds,
    outcome_log_prob,
    outcome_probs,
    outcome_slopes,
)
from bayespal.model.pal import OrderedOutcome
from bayespal.users.newuser import NewUser


@pytest.mark.parametrize("levels", [2, 3, 4, 5])
def test_likelihood_is_the_ordered_logistic(levels):
    """log P(level) equals Pyro's OrderedLogistic where that is accurate, stays finite where
    it is not, sums to one over levels, and its slopes are autograd's."""
    gen = torch.Generator().manual_seed(levels)
    h = (levels - 1) // 2
    gaps = None if levels == 2 else torch.rand(h, generator=gen, dtype=torch.float64) + 0.2
    cuts = cutpoints(gaps, levels).double()
    assert cuts.shape == (levels - 1,) and torch.all(cuts.diff() > 0)
    torch.testing.assert_close(cuts, -cuts.flip(0))  # symmetric: swapping a and b mirrors
    logits = torch.randn(200, generator=gen, dtype=torch.float64) * 4
    level = torch.randint(levels, (200,), generator=gen)
    ours = OrderedOutcome(logits, cuts).log_prob(level.double())
    ref = dist.OrderedLogistic(logits, cuts).log_prob(level)
    torch.testing.assert_close(ours, ref)
    probs = outcome_probs(logits, cuts)
    torch.testing.assert_close(probs.sum(-1), torch.ones(200, dtype=torch.float64))
    torch.testing.assert_close(probs.gather(-1, level[:, None])[:, 0].log(), ref)
    grid = torch.linspace(0, 1, levels, dtype=torch.float64)
    torch.testing.assert_close(expected_score(logits, cuts), probs @ grid)
    if levels == 2:
        torch.testing.assert_close(expected_score(logits, cuts), torch.sigmoid(logits))
        torch.testing.assert_close(ours, torch.nn.functional.logsigmoid((2 * level - 1) * logits))
    # far out, the difference of probabilities underflows; the log-density does not
    far = torch.tensor([-60.0, 60.0], dtype=torch.float64)
    lo, hi = outcome_bounds(torch.tensor([levels - 1, levels - 1]), cuts)
    far_ll = outcome_log_prob(far, lo, hi)
    assert torch.isfinite(far_ll).all() and far_ll[0] < -50 and far_ll[1] > -1e-20
    # slopes = autograd's, and padding (-1) is probability one with zero slope
    lo, hi = outcome_bounds(torch.cat([level, torch.tensor([-1])]), cuts)
    x = torch.cat([logits, torch.tensor([1.5], dtype=torch.float64)]).requires_grad_(True)
    ll = outcome_log_prob(x, lo, hi)
    (g,) = torch.autograd.grad(ll.sum(), x, create_graph=True)
    (h2,) = torch.autograd.grad(g.sum(), x)
    g1, h1 = outcome_slopes(x.detach(), lo, hi)
    torch.testing.assert_close(g1, g.detach())
    torch.testing.assert_close(h1, -h2)
    assert ll[-1] == 0 and g1[-1] == 0 and h1[-1] == 0
    assert torch.all(h1 >= 0)  # log-concave in the logit


def _items(n=4):
    return np.eye(n, dtype=np.float32)


def test_labels_must_lie_on_the_scale():
    """A tie on a binary scale, an off-grid grade, or a bad number of levels is refused
    with the field, the value and what was expected; labels round-trip through frames and
    subsets keep the scale."""
    with pytest.raises(DataError, match=r"label\[1\]: got 0.5; expected 0 or 1 .*levels=3"):
        PreferenceData.from_arrays([0, 0], [0, 1], [1, 2], [1, 0.5], _items())
    with pytest.raises(DataError, match=r"label\[0\]: got 0.3; expected one of 0, 0.5, 1"):
        PreferenceData.from_arrays([0], [0], [1], [0.3], _items(), levels=3)
    with pytest.raises(DataError, match=r"levels: got 1; expected an integer >= 2"):
        PreferenceData.from_arrays([0], [0], [1], [1], _items(), levels=1)
    with pytest.raises(DataError, match=r"label\[0\]: got 1.25; expected one of 0, 0.25"):
        PreferenceData.from_arrays([0], [0], [1], [1.25], _items(), levels=5)
    data = PreferenceData.from_arrays([0, 0, 1, 1], [0, 1, 2, 3], [1, 2, 3, 0],
                                      [0, 0.25, 0.75, 1], _items(), levels=5)
    assert data.levels == 5 and "5 levels" in repr(data)
    again = PreferenceData.from_frame(data.to_frame(), _items(), levels=5)
    np.testing.assert_array_equal(again.label, data.label)
    assert data.subset(np.array([0, 2])).levels == 5
    # the fit takes the scale from the data; another explicit scale is refused
    syn = synthetic(n_users=20, n_train=10, n_test=0, n_items=50, seed=0)
    with pytest.raises(ValueError, match=r"levels: got 3; expected the data's 2"):
        bayespal.fit(syn.data, 2, levels=3, epochs=1, progress=False)


TRUE_CUTS = (-0.8, 0.8)


@pytest.fixture(scope="module")
def tie_truth():
    """Users who answer with ties (Rao-Kupper, 13% ties), fitted by default on the truth's
    own features (so the model family holds the truth exactly)."""
    syn = synthetic(n_users=300, k=2, n_train=80, n_test=20, n_items=1000, sharpness=2.0,
                    cutpoints=TRUE_CUTS, seed=3)
    d = syn.data
    data = PreferenceData.from_arrays(d.user, d.item_a, d.item_b, d.label,
                                      syn.true_features.astype(np.float32),
                                      user_ids=np.arange(d.n_users), levels=3)
    fit = bayespal.fit(data.subset(~syn.is_test), 2, hidden=(), progress=False)
    return syn, data, fit


@pytest.mark.slow
def test_ties_are_recovered_and_calibrated(tie_truth, weight_recovery):
    """Known truth: the held-out log-loss of the three outcomes within 0.02 of the truth's,
    accuracy on the decided pairs within 2 points of Bayes-optimal, P(tie) calibrated (ECE
    <= 0.03), the tie cutpoint within its 90% interval widened by 0.05, and users' 90%
    weight intervals covering 85-95% of the true weights."""
    syn, data, fit = tie_truth
    assert fit.levels == 3
    test = data.subset(syn.is_test)
    q = fit.predict_outcomes(test, seed=0)
    truth = syn.true_outcome_probs[syn.is_test]
    print(f"share of ties {np.mean(test.label == 0.5):.3f}; log-loss {log_loss(q, test.label):.4f}"
          f" (truth {log_loss(truth, test.label):.4f}); accuracy {accuracy(q, test.label):.4f} "
          f"(Bayes {syn.bayes_accuracy(syn.is_test):.4f}); tie ECE "
          f"{tie_calibration(q, test.label):.4f}; ECE {expected_calibration_error(q, test.label):.4f}")
    assert 0.08 < np.mean(test.label == 0.5) < 0.2
    assert log_loss(q, test.label) < log_loss(truth, test.label) + 0.02
    assert accuracy(q, test.label) > syn.bayes_accuracy(syn.is_test) - 0.02
    assert tie_calibration(q, test.label) <= 0.03
    np.testing.assert_allclose(fit.predict_proba(test, seed=0), q @ [0, 0.5, 1], atol=1e-6)
    cut = fit.cutpoints(ci=0.9)
    print(cut["mean"].values, cut["lower"].values, cut["upper"].values)
    assert cut["lower"].values[1] - 0.05 <= TRUE_CUTS[1] <= cut["upper"].values[1] + 0.05
    inside, _ = weight_recovery(fit, syn)  # the truth's prototypes in the fit's order
    mixed = syn.group < 0
    print(f"coverage: single-type {inside[~mixed].mean():.3f}, mixed {inside[mixed].mean():.3f}")
    assert 0.85 <= inside[mixed].mean() <= 0.95  # measured 0.880 (0.953 without refinement)


def _tied_new_user(fit, n: int, p_tie: float, seed: int):
    """A new user (the population at its posterior mean) after ``n`` random answers, a
    share ``p_tie`` of them ties: the user, their weights' summary, the answers' per-prototype
    logit terms ``(n, K)``, the cutpoints, the population prior of the weights and the
    levels."""
    nu = NewUser(fit, population="mean", num_samples=16384, seed=1)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1000, n)
    b = (a + rng.integers(1, 1000, n)) % 1000
    label = rng.choice([0.0, 0.5, 1.0], size=n, p=[(1 - p_tie) / 2, p_tie, (1 - p_tie) / 2])
    nu.observe(a, b, label, rows=True)
    dr = nu.pop.terms(torch.as_tensor(a), torch.as_tensor(b))[0][0].double()  # (n, K)
    return (nu, nu.weights(ci=0.9), dr, nu.pop.draws.cuts()[0].double(),
            nu.pop.draws.weights_prior(0, torch.float64), torch.as_tensor(np.rint(label * 2),
                                                              dtype=torch.long))


@pytest.mark.slow
def test_new_user_with_ties_matches_nuts(tie_truth, matches_nuts):
    """A new user's posterior after 30 answers, a fifth of them ties, equals NUTS on the
    same logits with Pyro's OrderedLogistic (an independent likelihood): mean and 90%
    interval within 0.02."""
    _, _, fit = tie_truth
    nu, ours, dr, cuts, prior, level = _tied_new_user(fit, 30, 0.2, 0)

    def model():
        w = pyro.sample("w", prior)
        with pyro.plate("n", len(level)):
            pyro.sample("y", dist.OrderedLogistic(dr @ w, cuts), obs=level)

    matches_nuts(ours, model)
    with pytest.raises(ValueError, match=r"label\[0\]: got 0.25; expected one of 0, 0.5, 1"):
        nu.observe([0], [1], [0.25], rows=True)


@pytest.mark.slow
def test_files_and_diagnostics_keep_the_scale(tie_truth, tmp_path):
    """Saved and loaded, a fit of tied answers predicts the same levels; its DataTree holds
    the three-level log-likelihood (equal to log predict_outcomes per draw on average) and
    the cutpoints, and LOO runs on it."""
    from bayespal.analysis.diagnostics import loo, to_datatree

    syn, data, fit = tie_truth
    test = data.subset(syn.is_test)
    path = tmp_path / "ties.bayespal"
    fit.save(path)
    back = bayespal.load(path)
    assert back.levels == 3
    np.testing.assert_allclose(back.predict_outcomes(test, seed=0),
                               fit.predict_outcomes(test, seed=0), atol=1e-6)
    train = data.subset(~syn.is_test).subset(np.arange(2000))
    tree = to_datatree(fit, train, num_samples=200, seed=0)
    assert tree["posterior"]["cutpoints"].shape[-1] == 2
    assert set(np.unique(tree["observed_data"]["label"].values)) <= {0, 1, 2}
    ll = tree["log_likelihood"]["label"].values.reshape(-1, 2000)
    q = fit.predict_outcomes(train, num_samples=200, seed=0)
    level = np.rint(train.label * 2).astype(int)
    # the mean over draws of the likelihood is the posterior predictive (two independent sets
    # of 200 draws: a probability whose draws spread by 0.3 differs by ~0.03 per comparison,
    # by ~0.1 at the worst of 2000; a wrong level or scale would differ by far more)
    gap = np.abs(np.exp(ll).mean(0) - q[np.arange(2000), level])
    assert gap.mean() < 0.005 and gap.max() < 0.15
    assert np.isfinite(float(loo(tree)["elpd"]))


def test_user_cutpoints_need_a_graded_scale_and_svi():
    """Users' own cutpoints are refused, by name, for binary answers and for MAP."""
    syn = synthetic(n_users=20, k=2, n_train=10, n_test=0, n_items=50, seed=0)
    with pytest.raises(ValueError, match=r"user_cutpoints: got True with levels=2; expected "
                                         r"answers on more than two levels"):
        bayespal.fit(syn.data, 2, hidden=(), user_cutpoints=True, epochs=1, progress=False)
    graded = synthetic(n_users=20, k=2, n_train=10, n_test=0, n_items=50,
                       cutpoints=TRUE_CUTS, seed=0)
    with pytest.raises(ValueError, match=r"inference: got 'map' with user_cutpoints=True"):
        bayespal.fit(graded.data, 2, hidden=(), user_cutpoints=True, inference="map",
                     epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"cutpoint_spread: got 0.5 with cutpoints=None"):
        synthetic(n_users=20, n_items=50, cutpoint_spread=0.5)


def test_simulated_people_draw_their_own_cutpoints():
    """The report's simulated new people (``simulate_new_users``) of a fit with users' own
    cutpoints draw each person's factor from the fitted prior: who ties more often differs
    between people, as in the data the fit describes."""
    from bayespal.analysis.report import simulate_new_users

    syn = synthetic(n_users=40, k=2, n_train=20, n_test=0, n_items=100, sharpness=2.0,
                    cutpoints=TRUE_CUTS, cutpoint_spread=0.6, seed=0)
    fit = bayespal.fit(syn.data, 2, hidden=(), user_cutpoints=True, epochs=5,
                       validation_fraction=0, local_epochs=0, progress=False)
    with torch.no_grad():  # a wide spread, so the people's factors differ clearly
        fit.model.log_cutpoint_spread.fill_(np.log(1.5))
    sim, _ = simulate_new_users(fit, n_users=200, n_answers=30, seed=0)
    factors = sim.meta["true_cutpoint_log_scale"]
    assert factors.shape == (200,) and 1.2 < factors.std() < 1.8
    person = np.array([int(name.split()[1]) for name in sim.user_ids])[sim.user]
    ties = np.bincount(person, weights=sim.label == 0.5, minlength=200) / 30
    assert np.corrcoef(factors, ties)[0, 1] > 0.3  # wider cutpoints, more ties


@pytest.fixture(scope="module")
def user_tie_truth():
    """Users who differ in how readily they say "equal": user i's cutpoints are the
    population's times ``exp(s_i)``, ``s_i ~ Normal(0, 0.6^2)``; fitted by default on the
    truth's features with each user's own factor, and with one cutpoint for everyone."""
    syn = synthetic(n_users=300, k=2, n_train=80, n_test=20, n_items=1000, sharpness=2.0,
                    cutpoints=TRUE_CUTS, cutpoint_spread=0.6, seed=5)
    d = syn.data
    data = PreferenceData.from_arrays(d.user, d.item_a, d.item_b, d.label,
                                      syn.true_features.astype(np.float32),
                                      user_ids=np.arange(d.n_users), levels=3)
    train = data.subset(~syn.is_test)
    own = bayespal.fit(train, 2, hidden=(), user_cutpoints=True, progress=False)
    shared = bayespal.fit(train, 2, hidden=(), progress=False)
    return syn, data, own, shared


@pytest.mark.slow
def test_per_user_ties_are_recovered(user_tie_truth, weight_recovery, tmp_path):
    """Known truth with users' own tie propensities: held-out answers are predicted better
    than with one shared cutpoint (measured log-loss 0.3378 vs 0.3625, truth 0.3250) and
    P(tie) is calibrated; the population cutpoint lies in its 90% interval (one shared
    cutpoint is pulled off it, measured 0.890) and the spread is recovered (0.587 for 0.6);
    users' factors follow the truth (correlation of log factors 0.879) and their 90%
    intervals cover 85-95% (0.873), as do the mixed users' weights; the DataTree scores
    each answer with its user's cutpoints and files keep them."""
    from bayespal.analysis.diagnostics import heterogeneity_check, loo, to_datatree

    syn, data, own, shared = user_tie_truth
    test = data.subset(syn.is_test)
    q_own, q_shared = own.predict_outcomes(test, seed=0), shared.predict_outcomes(test, seed=0)
    truth = syn.true_outcome_probs[syn.is_test]
    ll_own, ll_shared = log_loss(q_own, test.label), log_loss(q_shared, test.label)
    print(f"log-loss own {ll_own:.4f}, shared {ll_shared:.4f}, truth "
          f"{log_loss(truth, test.label):.4f}; tie ECE {tie_calibration(q_own, test.label):.4f}")
    assert ll_own < ll_shared - 0.01
    assert ll_own < log_loss(truth, test.label) + 0.02
    assert tie_calibration(q_own, test.label) <= 0.03
    cut = own.cutpoints(ci=0.9)
    print(cut["mean"].values, cut["lower"].values, cut["upper"].values)
    assert cut["lower"].values[1] <= TRUE_CUTS[1] <= cut["upper"].values[1]
    assert not (shared.cutpoints(ci=0.9)["lower"].values[1] <= TRUE_CUTS[1]
                <= shared.cutpoints(ci=0.9)["upper"].values[1])
    factor = own.user_cutpoint_scales(ci=0.9)
    true_factor = np.exp(syn.true_cutpoint_log_scale)
    inside = (factor["lower"].values <= true_factor) & (true_factor <= factor["upper"].values)
    corr = np.corrcoef(np.log(factor["mean"].values), syn.true_cutpoint_log_scale)[0, 1]
    print(f"spread {factor.attrs['spread']:.3f}; correlation {corr:.3f}; coverage "
          f"{inside.mean():.3f}")
    assert abs(factor.attrs["spread"] - 0.6) < 0.1
    assert corr > 0.8 and 0.85 <= inside.mean() <= 0.95
    w_inside, _ = weight_recovery(own, syn)
    assert 0.85 <= w_inside[syn.group < 0].mean() <= 0.95
    with pytest.raises(ValueError, match="user_cutpoints: got a fit without them"):
        shared.user_cutpoint_scales()
    # the DataTree's per-answer likelihood averages to the posterior predictive, per user
    train = data.subset(~syn.is_test).subset(np.arange(2000))
    tree = to_datatree(own, train, num_samples=200, seed=0)
    ll = tree["log_likelihood"]["label"].values.reshape(-1, 2000)
    q = own.predict_outcomes(train, num_samples=200, seed=0)
    gap = np.abs(np.exp(ll).mean(0) - q[np.arange(2000), np.rint(train.label * 2).astype(int)])
    assert gap.mean() < 0.005 and gap.max() < 0.15
    assert np.isfinite(float(loo(tree)["elpd"]))
    assert 0.05 < float(heterogeneity_check(own, data.subset(~syn.is_test),
                                            num_samples=100, seed=0)["p_value"]) < 0.95
    own.save(tmp_path / "own.bayespal")
    back = bayespal.load(tmp_path / "own.bayespal")
    np.testing.assert_allclose(back.predict_outcomes(test, seed=0), q_own, atol=1e-6)


@pytest.mark.slow
def test_new_user_with_own_ties_matches_nuts(user_tie_truth, matches_nuts):
    """A new user's posterior under users' own cutpoints, after 40 answers with many ties,
    equals NUTS on the joint model of their weights and cutpoint factor (the factor
    integrated out by the importance draws): mean and 90% interval within 0.02; and the
    user's cutpoint factor exp(s) within 5% (measured: mean 2.394 vs NUTS 2.381, 90%
    interval [1.616, 3.276] vs [1.572, 3.295])."""
    _, _, own, _ = user_tie_truth
    nu, ours, dr, cuts, prior, level = _tied_new_user(own, 40, 0.4, 2)
    sigma = float(nu.pop.draws.cutpoint_spread[0])

    def model():
        w = pyro.sample("w", prior)
        s = pyro.sample("s", dist.Normal(torch.tensor(0.0, dtype=torch.float64), sigma))
        with pyro.plate("n", len(level)):
            pyro.sample("y", dist.OrderedLogistic(dr @ w, cuts * s.exp()), obs=level)

    ref = np.exp(matches_nuts(ours, model)["s"])
    factor = nu.cutpoint_scales(ci=0.9)
    print(factor["mean"].values, ref.mean(), factor["lower"].values, np.quantile(ref, 0.05),
          factor["upper"].values, np.quantile(ref, 0.95))
    np.testing.assert_allclose(factor["mean"].values[0], ref.mean(), rtol=0.05)
    np.testing.assert_allclose(factor["lower"].values[0], np.quantile(ref, 0.05), rtol=0.05)
    np.testing.assert_allclose(factor["upper"].values[0], np.quantile(ref, 0.95), rtol=0.05)
    with pytest.raises(ValueError, match="user_cutpoints: got a fit without them"):
        NewUser(user_tie_truth[3]).cutpoint_scales()
