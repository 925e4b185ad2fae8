"""select_k / fit(k="auto"): the number of prototypes chosen from held-out evidence."""

import numpy as np
import pytest

import bayespal
from bayespal.analysis import plots
from bayespal.datasets import synthetic

# fixed sizes keep these fits quick; select_k itself is what is tested
QUICK = dict(pref_dim=4, hidden=(16,), batch_size=512, progress=False, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("k_true", [1, 2])
def test_select_k_finds_the_number_of_kinds_of_people(k_true):
    syn = synthetic(n_users=250, k=k_true, n_train=40, n_test=0, partition_fraction=0.8,
                    seed=k_true)
    result = bayespal.select_k(syn.data, ks=(1, 2, 3), **QUICK)
    table = result.table
    print(table.drop(columns="weight_share").round(4).to_string())
    assert list(table["k"]) == [1, 2, 3]
    assert result.k == k_true, result.reason
    assert table["chosen"].sum() == 1 and int(table.loc[table["chosen"], "k"].iloc[0]) == k_true
    het_p = table["heterogeneity_p"][0]
    assert (het_p > 0.05) == (k_true == 1)  # one reward model explains one kind only
    if k_true == 2:  # one prototype cannot describe two kinds of people: clearly worse
        gap = table["criterion"][0] - table["criterion"][1]
        assert gap > 3 * table["se_vs_best"][0]
    # the shares are each prototype's mean weight over users: they sum to one
    for shares in table["weight_share"]:
        assert abs(sum(shares) - 1) < 1e-3 and list(shares) == sorted(shares, reverse=True)
    assert result.fit.k == k_true and result.fit.user_ids.tolist() == syn.data.user_ids.tolist()
    assert result.fit.k_selection is table


@pytest.mark.slow
def test_fit_auto_returns_the_chosen_fit_with_its_evidence_and_plot():
    syn = synthetic(n_users=150, k=2, n_train=40, n_test=0, partition_fraction=0.8, seed=5)
    fit = bayespal.fit(syn.data, k="auto", ks=(1, 2), **QUICK)
    assert fit.k_selection is not None and fit.k in (1, 2)
    assert "k chosen from the data" in fit.summary()
    fig = plots.plot_k_selection(fit.k_selection)
    left, right = fig.axes
    np.testing.assert_allclose(np.asarray(left.lines[0].get_ydata(), float),
                               fit.k_selection["criterion"].to_numpy(float))
    assert len(right.patches) == 1 + 2  # K=1: one bar, K=2: two stacked


def test_select_k_arguments_are_checked():
    syn = synthetic(n_users=30, k=2, n_train=10, n_test=0, seed=0)
    with pytest.raises(ValueError, match="ks"):
        bayespal.select_k(syn.data, ks=3)
    with pytest.raises(ValueError, match="k"):
        bayespal.select_k(syn.data, ks=(1, 2), k=2)
    with pytest.raises(ValueError, match="k: got 'many'"):
        bayespal.fit(syn.data, k="many")
    with pytest.raises(ValueError, match="ks"):
        bayespal.fit(syn.data, k=2, ks=(1, 2))
    with pytest.raises(ValueError, match="validation_fraction"):
        bayespal.select_k(syn.data, ks=(1, 2), validation_fraction=0)
