"""Active query selection: BALD equals the expected entropy reduction, known answers
score ~0, batches avoid duplicates."""

import numpy as np
import pytest
import torch

import bayespal
from bayespal.datasets import synthetic
from bayespal.users.active import acquisition, suggest
from bayespal.users.newuser import NewUser

pytestmark = pytest.mark.slow  # every test here fits a model


@pytest.fixture(scope="module")
def fit2():
    syn = synthetic(n_users=80, k=2, n_train=20, n_test=0, n_items=200, seed=1)
    return bayespal.fit(syn.data, k=2, pref_dim=4, epochs=60, seed=0, progress=False)


def grid_expected_entropy_reduction(nu: NewUser, a: int, b: int, answers) -> float:
    """EIG = H[w] - E_y H[w | y] on a fine grid of w_1 (K = 2), exact up to the grid."""
    grid = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)
    w = torch.stack([grid, 1 - grid], -1)
    logp = nu.pop.draws.weights_prior(0, torch.float64).log_prob(w)
    for (ia, ib, y) in answers:
        dr = nu.pop.terms(torch.tensor([ia]), torch.tensor([ib]))[0][0, 0].double()
        logp = logp + torch.nn.functional.logsigmoid((2 * y - 1) * (w @ dr))
    post = torch.softmax(logp, 0)
    dr = nu.pop.terms(torch.tensor([a]), torch.tensor([b]))[0][0, 0].double()
    p1 = torch.sigmoid(w @ dr)

    def h(q):
        q = q[q > 0]
        return float(-(q * q.log()).sum())

    eig = h(post)
    for lik in (p1, 1 - p1):
        py = float((post * lik).sum())
        eig -= py * h(post * lik / py)
    return eig


def test_information_gain_is_the_expected_entropy_reduction(fit2):
    rng = np.random.default_rng(0)
    nu = NewUser(fit2, population="mean", num_samples=32768, seed=0)
    answers = [(int(a), int((a + 5) % 200), int(y)) for a, y in
               zip(rng.integers(0, 200, 3), rng.integers(0, 2, 3), strict=True)]
    for ia, ib, y in answers:
        nu.observe(ia, ib, y)
    ca = rng.integers(0, 200, 3000)
    cb = (ca + rng.integers(1, 200, 3000)) % 200
    top = np.argsort(-acquisition(nu, ca, cb))[[0, 1, 50, 1000]]  # informative to barely so
    pairs = [(int(ca[i]), int(cb[i])) for i in top]
    ours = acquisition(nu, [p[0] for p in pairs], [p[1] for p in pairs], num_draws=20000)
    ref = np.array([grid_expected_entropy_reduction(nu, a, b, answers) for a, b in pairs])
    assert ref.max() > 0.01  # informative candidates exist
    np.testing.assert_allclose(ours, ref, rtol=0.1, atol=2e-3)


def test_known_answers_score_near_zero(fit2):
    nu = NewUser(fit2, population="mean", seed=0)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 200, 300)
    b = (a + rng.integers(1, 200, 300)) % 200
    cand_a, cand_b = rng.integers(0, 200, 2000), None
    cand_b = (cand_a + rng.integers(1, 200, 2000)) % 200
    before = acquisition(nu, cand_a, cand_b)
    p = nu.predict_proba(a, b)
    nu.observe(a, b, (p > 0.5).astype(int))  # 300 answers
    after = acquisition(nu, cand_a, cand_b)
    pred = nu.predict_proba(cand_a, cand_b)
    certain = np.abs(pred - 0.5) > 0.49
    assert certain.any()
    assert after[certain].max() < 2e-3  # the posterior already knows these answers
    assert after.mean() < 0.25 * before.mean()


def test_batch_suggestions_skip_duplicates(fit2):
    nu = NewUser(fit2, seed=0)
    best = suggest(nu, np.array([[i, (i + 9) % 200] for i in range(200)]), n=1)
    a, b = int(best.item_a[0]), int(best.item_b[0])
    cands = np.array([[a, b]] * 4 + [[b, a]] * 2 + [[i, (i + 9) % 200] for i in range(200)])
    picked = suggest(nu, cands, n=5)
    assert len(picked) == 5
    keys = {frozenset(p) for p in zip(picked.item_a, picked.item_b, strict=True)}
    assert len(keys) == 5  # the best pair once, never again (nor its mirror)
    assert (np.diff(picked.acquisition.values) <= 1e-9).all()
    uncert = suggest(nu, cands, n=3, strategy="uncertainty")
    assert len(uncert) == 3


def test_strategies_and_errors(fit2):
    nu = NewUser(fit2, seed=0)
    cands = np.array([[0, 1], [2, 3], [4, 5]])
    assert len(suggest(nu, cands, n=2, strategy="random")) == 2
    with pytest.raises(ValueError, match="strategy: got 'bald'"):
        suggest(nu, cands, strategy="bald")
    with pytest.raises(ValueError, match=r"candidates: got shape \(3,\)"):
        suggest(nu, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="n: got 0"):
        suggest(nu, cands, n=0)
