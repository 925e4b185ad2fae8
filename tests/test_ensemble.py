"""Deep ensembles: members aligned, predictions and weights averaged, diagnostics per chain."""

import numpy as np
import pytest

import bayespal
from bayespal.datasets import synthetic
from bayespal.diagnostics import heterogeneity_check, loo, to_datatree
from bayespal.ensemble import EnsemblePAL, permute_prototypes
from bayespal.metrics import accuracy, log_loss
from bayespal.newuser import NewUser

FIT = dict(k=3, pref_dim=4, hidden=(16,), concentration=1.0, lr=0.03, epochs=200, patience=10**6,
           progress=False)


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


def test_permute_prototypes_reorders_everything_consistently(syn):
    fit = bayespal.fit(syn.train, seed=3, **{**FIT, "epochs": 5})
    before = fit.predict_proba(syn.test, seed=1)
    w_before = fit.user_weights()["mean"].values
    permute_prototypes(fit, [2, 0, 1])
    np.testing.assert_allclose(fit.predict_proba(syn.test, seed=1), before, atol=0.02)
    np.testing.assert_allclose(fit.user_weights()["mean"].values, w_before[:, [2, 0, 1]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="perm"):
        permute_prototypes(fit, [0, 0, 1])


def test_ensemble_averages_the_members(syn, ens):
    test = syn.test
    p = ens.predict_proba(test, seed=2)
    members = [m.predict_proba(test, seed=2) for m in ens.members]
    np.testing.assert_allclose(p, np.mean(members, 0), rtol=1e-6)
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


def test_single_population_tools_refuse_an_ensemble(syn, ens, tmp_path):
    with pytest.raises(ValueError, match="fit: got EnsemblePAL"):
        NewUser(ens)
    with pytest.raises(ValueError, match="fit: got EnsemblePAL"):
        bayespal.io.save(ens, tmp_path / "e.bayespal")
    with pytest.raises(ValueError, match="fit: got an EnsemblePAL"):
        heterogeneity_check(ens)
    with pytest.raises(ValueError, match="ensemble"):
        bayespal.fit(syn.train, ensemble=2, checkpoint=tmp_path / "c.ckpt", **FIT)
    with pytest.raises(ValueError, match="ensemble"):
        bayespal.fit(syn.train, ensemble=0, **FIT)
    with pytest.raises(ValueError, match="members"):
        EnsemblePAL.from_members([])
