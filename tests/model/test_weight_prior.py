"""The weights' population prior: the learned mixture of Dirichlets (the default) and one
learned Dirichlet (``ModelConfig.weight_prior``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import bayespal
from bayespal.data import PreferenceData
from bayespal.datasets import synthetic
from bayespal.model import ModelConfig
from bayespal.model.pal import MIXTURE_SCALES, DirichletMixture, SafeDirichlet


def test_config_resolves_and_refuses():
    assert ModelConfig().weight_prior == "dirichlet"
    assert ModelConfig(weight_prior="mixture", k=1).k == 1  # K = 1: nothing to mix
    with pytest.raises(ValueError, match=r"weight_prior: got 'mixture'.*fixed concentration"):
        ModelConfig(weight_prior="mixture", concentration=1.0)
    with pytest.raises(ValueError, match=r"weight_prior: got 'beta'; expected one of"):
        ModelConfig(weight_prior="beta")
    old = ModelConfig(weight_prior="mixture").to_dict()
    old.pop("weight_prior")  # a file from before the mixture: it was fitted with one Dirichlet
    assert ModelConfig.from_dict(old).weight_prior == "dirichlet"


def test_mixture_density_and_draws():
    log_prop = torch.tensor([0.2, 0.8]).log()
    conc = torch.tensor([[0.1, 0.3], [4.0, 2.0]])
    prior = DirichletMixture(log_prop, conc)
    w = torch.tensor([[0.3, 0.7], [1e-30, 1.0]])
    by_hand = torch.logsumexp(torch.stack(
        [log_prop[c] + SafeDirichlet(conc[c]).log_prob(w) for c in range(2)]), 0)
    torch.testing.assert_close(prior.log_prob(w), by_hand)
    torch.manual_seed(0)
    draws = prior.sample((200_000,))
    # P(w_0 < 0.05) is the components' Beta CDFs mixed: exact
    exact = 0.2 * stats.beta.cdf(0.05, 0.1, 0.3) + 0.8 * stats.beta.cdf(0.05, 4.0, 2.0)
    assert abs(float((draws[:, 0] < 0.05).float().mean()) - exact) < 0.005
    torch.testing.assert_close(draws.mean(0), prior.mean, atol=0.005, rtol=0)
    assert prior.expand([3]).sample((2,)).shape == (2, 3, 2)


@pytest.fixture(scope="module")
def half():
    """300 users x 40 pairs, K = 2, half single-type and half Dirichlet(1) mixtures, fitted
    on the truth's features with the defaults but the mixture prior."""
    syn = synthetic(n_users=300, k=2, n_test=10, n_items=1000, sharpness=2.0, seed=0,
                    n_train=40)
    d = syn.data
    data = PreferenceData.from_arrays(d.user, d.item_a, d.item_b, d.label,
                                      syn.true_features.astype(np.float32),
                                      user_ids=np.arange(d.n_users))
    train, test = data.subset(~syn.is_test), data.subset(syn.is_test)
    return syn, test, bayespal.fit(train, 2, hidden=(), seed=0, progress=False,
                                   weight_prior="mixture")


@pytest.mark.slow
def test_mixed_and_single_users_at_once(half, weight_recovery):
    """On the truth where one learned Dirichlet settled on alpha ~ 0.13 and the mixed users'
    90% intervals covered 0.693 (benchmarks/recovery.py's pairs, seed 0), the mixture covers
    85-95% of them (measured 0.860), and predicts within 2 points of the Bayes-optimal
    accuracy (0.8860, Bayes 0.8978)."""
    from bayespal.metrics import accuracy

    syn, test, fit = half
    prior = fit.population_prior()
    assert prior.sizes["component"] == len(MIXTURE_SCALES)
    with pytest.raises(ValueError, match=r"concentration: got a fit with weight_prior="
                                         r"'mixture'.*population_prior"):
        _ = fit.concentration
    assert prior["proportion"].sum() == pytest.approx(1, abs=1e-5)
    inside, _ = weight_recovery(fit, syn)
    cover = inside[syn.group < 0].mean()
    acc = accuracy(fit.predict_proba(test), test.label)
    bayes = syn.bayes_accuracy(syn.is_test)
    print(f"mixed users' coverage {cover:.3f}; accuracy {acc:.4f} (Bayes {bayes:.4f}); "
          f"proportions {np.round(prior['proportion'].values, 3)}")
    assert 0.85 <= cover <= 0.95
    assert acc >= bayes - 0.02


@pytest.mark.slow
def test_prior_draws_follow_the_mixture(half):
    """Every sampler of the prior (new users unknown to the fit, simulated people, the
    heterogeneity check's replicated users) draws the fitted mixture: its share of weights
    near a corner against the components' Beta CDFs."""
    _, _, fit = half
    prior = fit.population_prior()
    prop = prior["proportion"].values.astype(np.float64)
    conc = prior["concentration"].values.astype(np.float64)
    exact = float(sum(p * stats.beta.cdf(0.02, a, b) for p, (a, b) in zip(prop, conc,
                                                                             strict=True)))
    w_np = fit.sample_prior_weights(200_000, np.random.default_rng(0))
    torch.manual_seed(0)
    w_torch = fit.population_draws(4, seed=0).sample_weights((50_000,)).reshape(-1, 2)
    for w in (w_np, w_torch.numpy()):
        assert abs(float((w[:, 0] < 0.02).mean()) - exact) < 0.005, (exact,)
        np.testing.assert_allclose(w.mean(0), prior["mean"].values, atol=0.005)


@pytest.mark.slow
@pytest.mark.parametrize("n", [5, 40])
def test_new_user_under_the_mixture_matches_nuts(half, matches_nuts, n):
    """A new user's posterior under the fitted mixture prior (the population at its mean)
    equals NUTS on the same target, w ~ the mixture, y ~ Bernoulli(sigmoid(w . d)): mean
    and 90% interval within 0.02, after few answers (the prior's shape matters most) and
    after more."""
    import pyro
    import pyro.distributions as dist

    from bayespal.users.newuser import NewUser

    _, _, fit = half
    nu = NewUser(fit, population="mean", num_samples=16384, seed=1)
    rng = np.random.default_rng(n)
    a = rng.integers(0, 1000, n)
    b = (a + rng.integers(1, 1000, n)) % 1000
    dr = nu.pop.terms(torch.as_tensor(a), torch.as_tensor(b))[0][0]  # (n, K)
    y = (rng.random(n) < torch.sigmoid(dr @ torch.tensor([0.3, 0.7])).numpy()).astype(int)
    ours = nu.observe(a, b, y, rows=True).weights(ci=0.9)
    prior = nu.pop.draws.weights_prior(0)
    obs = torch.as_tensor(y, dtype=torch.float32)

    def model():
        w = pyro.sample("w", prior)
        with pyro.plate("n", n):
            pyro.sample("y", dist.Bernoulli(logits=dr @ w), obs=obs)

    print(f"n={n}: ours {ours['mean'].values[0]}, ESS {ours['ess'].values[0]:.0f}")
    matches_nuts(ours, model)
