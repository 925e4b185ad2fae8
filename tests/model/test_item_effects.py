"""Item effects (``ModelConfig.item_effects``): a residual reward per training item, shared by
every prototype, with a learned prior scale; other items draw theirs from the prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bayespal
from bayespal.data import EmbeddingTable
from bayespal.datasets import synthetic
from bayespal.metrics import accuracy, expected_calibration_error, log_loss
from bayespal.users import NewUser


@pytest.fixture(scope="module")
def effect_data():
    """Known truth whose items carry a residual reward their embeddings do not explain."""
    return synthetic(n_users=150, k=2, n_train=30, n_test=20, n_items=150, embed_dim=8,
                     item_effect_scale=1.0, seed=3)


@pytest.fixture(scope="module")
def fits(effect_data):
    train = effect_data.train
    opts = dict(k=2, pref_dim=4, hidden=(16,), seed=0, progress=False)
    return {flag: bayespal.fit(train, item_effects=flag, **opts) for flag in (False, True)}


def test_item_effects_are_recovered_and_predict_better(effect_data, fits):
    test = effect_data.test
    truth = effect_data.true_prob[effect_data.is_test]
    scores = {}
    for flag, fit in fits.items():
        p = fit.predict_proba(test)
        scores[flag] = log_loss(p, test.label), expected_calibration_error(p, test.label)
    floor = log_loss(truth, test.label)
    # measured (seed 3): log-loss 0.227 without effects, 0.173 with, truth 0.107; accuracy
    # 0.901 and 0.927 (Bayes 0.956); ECE 0.015 and 0.021 on 3000 comparisons
    assert scores[True][0] < scores[False][0] - 0.03
    assert scores[True][0] - floor < 0.75 * (scores[False][0] - floor)
    assert accuracy(p_with := fits[True].predict_proba(test), test.label) > \
        accuracy(fits[False].predict_proba(test), test.label) + 0.01
    assert expected_calibration_error(p_with, test.label) < 0.04
    # the effects' posterior means follow the true effects (up to a constant)
    fit = fits[True]
    est = fit.guide.item_effects_loc.detach().numpy()
    true = effect_data.true_item_effects
    assert np.corrcoef(est, true)[0, 1] > 0.5  # measured 0.66 (the map absorbs a part)
    # the learned prior scale in logit units, against the truth's 1.0 x sharpness 3:
    # measured 1.64 (the same part absorbed; mean-field VI shrinks it too)
    tau = float(fit.model.item_effect_scale.detach()) * fit.sharpness()[0]
    assert 0.3 < tau / (1.0 * effect_data.true_sharpness) < 2


def test_other_items_integrate_the_prior(fits, effect_data):
    """Items not in the training table (the same embeddings under new ids) are predicted with
    their effects integrated over the prior: equal to Gauss-Hermite quadrature over the
    effect difference ``Normal(0, 2 tau^2)`` of each posterior draw."""
    fit = fits[True]
    train = effect_data.train
    table = fit.items
    other = EmbeddingTable(table.ids + 10_000, table.embeddings)
    user = train.user_ids[train.user[:40]]
    a, b = train.item_ids[train.item_a[:40]], train.item_ids[train.item_b[:40]]
    p_other = fit.predict_proba(user=user, item_a=a + 10_000, item_b=b + 10_000, items=other,
                                num_samples=4000)
    # the same seed gives the same population and weight draws as predict_proba's
    draws, w = fit.posterior_draws(4000, users=user)
    fa = draws.features(table.embeddings[table.rows(a)])
    fb = draws.features(table.embeddings[table.rows(b)])
    zeros = torch.zeros(draws.size, len(a))
    logit = draws.logits(w, fa, fb, offset=zeros)  # (P, n) without the effects
    nodes, gw = np.polynomial.hermite_e.hermegauss(40)
    scale = (draws.sharpness * draws.item_effect_scale * np.sqrt(2)).numpy()[:, None, None]
    quad = (gw / gw.sum() / (1 + np.exp(-(logit.numpy()[..., None] + scale * nodes)))).sum(-1)
    # the draws' only difference is Monte Carlo (one prior draw of the effects per posterior
    # draw) against quadrature: SE about 0.003
    assert np.abs(p_other - quad.mean(0)).max() < 0.015
    assert np.abs(p_other - quad.mean(0)).mean() < 0.005
    # and the same comparisons of the training items carry their learned effects instead
    p_known = fit.predict_proba(user=user, item_a=a, item_b=b, num_samples=400)
    assert np.abs(p_known - p_other).max() > 0.1
    assert np.abs(p_other - 0.5).mean() < np.abs(p_known - 0.5).mean()


def test_new_users_and_the_fast_path_use_the_effects(fits, effect_data):
    fit = fits[True]
    bound = fit.population_draws(8).bind(fit.items.embeddings,
                                         rows=np.arange(len(fit.items)))
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(len(fit.items), (3, 5), generator=gen)
    b = torch.randint(len(fit.items), (3, 5), generator=gen)
    w = torch.distributions.Dirichlet(torch.ones(2)).sample((3, 6))
    pop = torch.randint(8, (3, 6), generator=gen)
    fast = bound.logits(w, pop, a, b)  # the ideal-point path
    diff, _ = bound.terms(a, b)  # (P, 3, 5, K): the general path
    slow = (w.unsqueeze(-2) * diff[pop, torch.arange(3)[:, None]]).sum(-1)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)
    effects = bound.item_offsets
    assert effects is not None and torch.equal(effects, fit.population_draws(8).item_effects)
    # a new user's posterior and predictions use the training items' effects; the same
    # answers on the same embeddings under new ids (other items, whose effects are drawn
    # from the prior and updated by the answers) give other predictions
    train = effect_data.train
    other = EmbeddingTable(fit.items.ids + 10_000, fit.items.embeddings)
    a, b = train.item_ids[train.item_a[:30]], train.item_ids[train.item_b[:30]]
    known, unknown = NewUser(fit), NewUser(fit, items=other)
    known.observe(a[:10], b[:10], train.label[:10])
    unknown.observe(a[:10] + 10_000, b[:10] + 10_000, train.label[:10])
    p_known = known.predict_proba(a[10:], b[10:])
    p_unknown = unknown.predict_proba(a[10:] + 10_000, b[10:] + 10_000)
    assert np.abs(p_known - p_unknown).max() > 0.1


def test_item_effects_round_trip_and_refusals(fits, tmp_path, effect_data):
    fit = fits[True]
    path = tmp_path / "effects.bayespal"
    fit.save(path)
    again = bayespal.load(path)
    test = effect_data.test
    np.testing.assert_array_equal(again.predict_proba(test), fit.predict_proba(test))
    assert again.model_config.item_effects
    with pytest.raises(ValueError, match="item_effects: got True with inference='map'"):
        bayespal.fit(effect_data.train, k=2, item_effects=True, inference="map",
                     hidden=(4,), epochs=1, progress=False)
    with pytest.raises(ValueError, match="item_effects"):
        bayespal.ModelConfig(k=2, prompt_dim=4, metric="cosine", item_effects=True)


def test_match_names_the_same_items():
    table = EmbeddingTable(np.array([5, 6, 7]),
                           np.array([[1, 2], [3, 4], [1, 2]], dtype=np.float32))
    query = np.array([[1, 2], [3, 5], [3, 4]], dtype=np.float32)
    # same id and embedding; a reused id with another embedding is another item
    np.testing.assert_array_equal(table.match([7, 6, 8], query), [2, -1, -1])
    # by embedding alone: the first row holding it
    np.testing.assert_array_equal(table.match(None, query), [0, -1, 1])
    np.testing.assert_array_equal(table.match(["a"], query[:1]), [-1])
    assert table.match([], np.zeros((0, 2))).shape == (0,)
