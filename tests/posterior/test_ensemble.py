"""Deep ensembles: members aligned, predictions and weights averaged, diagnostics per chain."""

import numpy as np
import pytest

import bayespal
from bayespal.analysis.diagnostics import heterogeneity_check, loo, to_datatree
from bayespal.analysis.reward import RewardModel
from bayespal.datasets import synthetic
from bayespal.metrics import accuracy, log_loss
from bayespal.posterior.ensemble import EnsemblePAL
from bayespal.users.active import suggest
from bayespal.users.newuser import NewUser, PointPlacement, place_users

pytestmark = pytest.mark.slow  # every test here fits a model

FIT = dict(k=3, pref_dim=4, hidden=(16,), concentration=1.0, lr=0.03, epochs=200, patience=10**6,
           lr_schedule="cosine", lr_final_factor=0.05, validation_fraction=0, progress=False)


@pytest.fixture(scope="module")
def syn():
    return synthetic(n_users=150, k=3, n_train=30, n_test=10, seed=1)


@pytest.fixture(scope="module")
def ens(syn):
    return bayespal.fit(syn.train, ensemble=3, seed=0, **FIT)


def test_members_are_aligned_to_the_first(ens):
    ref = ens.members[0].user_weights()["mean"].values
    for member in ens.members[1:]:
        w = member.user_weights()["mean"].values
        corr = [np.corrcoef(ref[:, j], w[:, j])[0, 1] for j in range(3)]
        assert min(corr) > 0.8, corr
    # seeds may land in the same order by chance: scramble a member and it must come back
    import copy

    scrambled = copy.deepcopy(ens.members[1])
    scrambled.permute_prototypes([1, 2, 0])
    EnsemblePAL.from_members([ens.members[0], scrambled])
    np.testing.assert_allclose(scrambled.user_weights()["mean"].values,
                               ens.members[1].user_weights()["mean"].values, rtol=1e-6)


def test_permute_prototypes_reorders_everything_consistently(syn):
    fit = bayespal.fit(syn.train, seed=3, **{**FIT, "epochs": 5})
    before = fit.predict_proba(syn.test, seed=1)
    w_before = fit.user_weights()["mean"].values
    fit.permute_prototypes([2, 0, 1])
    np.testing.assert_allclose(fit.predict_proba(syn.test, seed=1), before, atol=0.02)
    np.testing.assert_allclose(fit.user_weights()["mean"].values, w_before[:, [2, 0, 1]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="perm"):
        fit.permute_prototypes([0, 0, 1])


def test_ensemble_averages_the_members(syn, ens):
    test = syn.test
    p = ens.predict_proba(test, num_samples=3000, seed=2)  # 1,000 pooled draws per member
    members = [m.predict_proba(test, num_samples=1000, seed=2 + i)
               for i, m in enumerate(ens.members)]
    # the pooled predictive is the members' average, up to Monte Carlo error
    gap = np.abs(p - np.mean(members, 0))
    assert gap.mean() < 0.004 and gap.max() < 0.04, (gap.mean(), gap.max())
    accs = [accuracy(q, test.label) for q in members]
    print(f"members {np.round(accs, 4)}, ensemble {accuracy(p, test.label):.4f}")
    assert log_loss(p, test.label) <= np.mean([log_loss(q, test.label) for q in members])
    assert accuracy(p, test.label) >= np.mean(accs) - 0.005
    w = ens.user_weights(ci=0.9, num_samples=2000)
    means = np.mean([m.user_weights()["mean"].values for m in ens.members], 0)
    np.testing.assert_allclose(w["mean"].values, means, atol=0.02)
    assert (w["lower"] <= w["mean"]).all() and (w["mean"] <= w["upper"]).all()
    assert w.attrs["members"] == 3


def test_diagnostics_get_one_chain_per_member(syn, ens):
    tree = to_datatree(ens, syn.test, num_samples=50)
    assert tree["posterior"].sizes["chain"] == 3
    assert tree["log_likelihood"]["label"].shape == (3, 50, len(syn.test))
    assert np.isfinite(loo(tree).elpd)


def test_new_users_in_an_ensemble_pool_the_members_populations(syn, ens):
    """Two copies of one fit are that fit: the pooled new-user posterior must agree with
    the single fit's (up to Monte Carlo error). A real ensemble places users from its
    members' pooled draws, each with its own mapping and alpha, and suggests queries."""
    import copy

    fit = ens.members[0]
    twin = EnsemblePAL([fit, copy.deepcopy(fit)])
    a, b = syn.test.item_a[:12], syn.test.item_b[:12]
    y = syn.test.label[:12].astype(int)
    single = NewUser(fit, num_samples=8192).observe(a, b, y)
    pooled = NewUser(twin, num_samples=8192).observe(a, b, y)
    np.testing.assert_allclose(pooled.weights()["mean"].values, single.weights()["mean"].values,
                               atol=0.03)
    np.testing.assert_allclose(pooled.predict_proba(a, b), single.predict_proba(a, b), atol=0.03)
    user = NewUser(ens).observe(a, b, y)
    assert user.pop.draws.n_members == 3 and user.pop.size == 63  # 64 draws split over 3 members
    assert user.ess[0] > 100
    assert len(suggest(user, np.stack([a, b], 1), n=2)) == 2
    placed = place_users(ens, syn.test)
    p = placed.predict_proba(syn.test.user_ids[syn.test.user], syn.test.item_a,
                             syn.test.item_b)
    assert accuracy(p, syn.test.label) > 0.75  # in-sample placement: a sanity check


def test_ensemble_tools_and_refusals(syn, ens, tmp_path):
    """Everything that works from population draws works for an ensemble (its pooled
    draws); the reference's point placement needs one population and says so."""
    with pytest.raises(ValueError, match="an ensemble"):
        PointPlacement(ens)
    check = heterogeneity_check(ens, syn.test, num_samples=60)
    assert check["replicated"].shape == (60,) and 0 <= float(check["p_value"]) <= 1
    items = syn.data.items[:50]
    pooled_sd = RewardModel(ens, weights=[1, 0, 0]).reward(items)[1].mean()
    member_sd = np.mean([RewardModel(m, weights=[1, 0, 0]).reward(items)[1].mean()
                         for m in ens.members])
    assert pooled_sd > member_sd  # the members' mappings disagree: more uncertainty
    with pytest.raises(ValueError, match="ensemble"):
        bayespal.fit(syn.train, ensemble=2, checkpoint=tmp_path / "c.ckpt", **FIT)
    with pytest.raises(ValueError, match="ensemble"):
        bayespal.fit(syn.train, ensemble=0, **FIT)
    with pytest.raises(ValueError, match="members"):
        EnsemblePAL.from_members([])


def test_pooled_new_user_posterior_is_the_evidence_weighted_mixture(syn, ens):
    """Brute force: with members that differ, the pooled posterior predictive must be the
    members' own posterior predictives weighted by each member's evidence p(answers | m)
    (prior sampling, 4,000 draws per population draw)."""
    import torch

    a, b = syn.test.item_a[:8], syn.test.item_b[:8]
    y = syn.test.label[:8].astype(int)
    qa, qb = syn.test.item_a[20:30], syn.test.item_b[20:30]
    sign = torch.as_tensor(2.0 * y - 1)
    num, den = 0.0, 0.0
    torch.manual_seed(0)
    for member in ens.members:
        pop = member.population_draws(21, seed=0).bind(member.items.embeddings)
        diff, _ = pop.terms(torch.as_tensor(a), torch.as_tensor(b))  # (P, n, K)
        qdiff, _ = pop.terms(torch.as_tensor(qa), torch.as_tensor(qb))  # (P, c, K)
        w = pop.draws.sample_weights((4000,))  # (P, 4000, K) from each draw's prior
        lik = torch.nn.functional.logsigmoid(
            sign * torch.einsum("pnk,pik->pni", w, diff)).sum(-1).exp()  # (P, N)
        pred = torch.sigmoid(torch.einsum("pnk,pck->pnc", w, qdiff))
        num = num + (lik[..., None] * pred).sum((0, 1))
        den = den + lik.sum()
    brute = (num / den).numpy()
    pooled = NewUser(ens, num_samples=8192).observe(a, b, y).predict_proba(qa, qb)
    np.testing.assert_allclose(pooled, brute, atol=0.02)


def test_pooled_population_prior(ens):
    """The ensemble's prior is its members' pooled (the prior of a user drawn from the pooled
    population draws): each member's components at 1/M of their proportion."""
    prior = ens.population_prior()
    m = len(ens.members)
    assert prior.sizes["component"] == m
    np.testing.assert_allclose(prior["proportion"].values, np.full(m, 1 / m), rtol=1e-6)
    np.testing.assert_allclose(ens.concentration, np.mean([f.concentration for f in ens.members],
                                                         axis=0), rtol=1e-6)
    np.testing.assert_allclose(prior["mean"].values,
                               np.mean([f.population_prior()["mean"].values
                                        for f in ens.members], axis=0), rtol=1e-5)
