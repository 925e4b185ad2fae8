"""ArviZ export, LOO model comparison, predictive checks, alignment, plots."""

import copy
import warnings

import arviz_plots
import arviz_stats
import matplotlib
import numpy as np
import pytest
import xarray as xr

import bayespal
from bayespal.analysis import diagnostics as dg
from bayespal.analysis import plots
from bayespal.datasets import synthetic

pytestmark = pytest.mark.slow  # every test here fits a model

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def hetero():
    return synthetic(n_users=200, k=3, n_train=40, n_test=0, seed=0)


@pytest.fixture(scope="module")
def fits_by_k(hetero):
    # one mapping size (no choice among candidates): these tests are about diagnostics
    return {f"K={k}": bayespal.fit(hetero.data, k=k, pref_dim=4, hidden=(64,), seed=0,
                                   progress=False)
            for k in (1, 2, 3, 4, 5)}


def test_datatree_layout_and_roundtrip(fits_by_k, tmp_path):
    fit = fits_by_k["K=3"]
    dt = dg.to_datatree(fit, num_samples=100, seed=0)
    assert set(dt.children) >= {"posterior", "posterior_predictive", "log_likelihood",
                                "observed_data", "constant_data"}
    post = dt["posterior"]
    assert post["weights"].dims == ("chain", "draw", "user", "prototype")
    assert post["prototypes"].dims == ("chain", "draw", "prototype", "pref_dim")
    assert list(post["user"].values[:3]) == list(fit.user_ids[:3])
    assert dt["log_likelihood"]["label"].dims == ("chain", "draw", "comparison")
    assert dt.attrs["k"] == 3 and dt.attrs["model_config_hash"] == fit.model_config.hash()
    assert dt.attrs["bayespal_version"] == bayespal.__version__
    # the posterior draws and the log-likelihood come from the same draws
    ll = dt["log_likelihood"]["label"].values[0, :, :5]
    assert np.isfinite(ll).all() and (ll < 0).all()
    for ext, writer, reader in (("nc", "to_netcdf", lambda p: xr.open_datatree(p, engine="h5netcdf")),
                                ("zarr", "to_zarr", lambda p: xr.open_datatree(p, engine="zarr"))):
        path = tmp_path / f"fit.{ext}"
        getattr(dt, writer)(path)
        back = reader(path).load()
        xr.testing.assert_identical(back["posterior"].to_dataset(), post.to_dataset())
        xr.testing.assert_identical(back["log_likelihood"].to_dataset(),
                                    dt["log_likelihood"].to_dataset())
        assert back.attrs["model_config"] == dt.attrs["model_config"]


def test_arviz_functions_accept_the_datatree(fits_by_k):
    dt = dg.to_datatree(fits_by_k["K=3"], num_samples=100, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arviz_stats.loo(dt)
    assert np.isfinite(res.elpd)
    pc = arviz_plots.plot_ppc_pava(dt, data_type="binary", backend="matplotlib")
    # the PAVA calibration plot drew the observed labels' curve against the replicated ones
    assert len(pc.viz.children) > 0 and pc.backend == "matplotlib"


def test_loo_ranks_k(fits_by_k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = dg.compare(fits_by_k, num_samples=300, seed=0)
    print(table[["rank", "elpd", "p", "se", "dse", "warning", "bad_k"]].to_string())
    elpd = table["elpd"]
    best_small = max(elpd["K=1"], elpd["K=2"])
    worst_big = min(elpd["K=3"], elpd["K=4"], elpd["K=5"])
    assert table.index[0] in ("K=3", "K=4", "K=5")
    # "clearly worse": below every K >= 3 model by more than 4 standard errors of the difference
    assert worst_big - best_small > 4 * table.loc["K=2", "dse"]
    assert (table["bad_k"] >= 0).all() and table.loc["K=1", "bad_k"] < 0.01


def test_loo_handles_constant_log_likelihood(hetero):
    small = hetero.data.subset(hetero.data.user < 30)
    point = bayespal.fit(small, k=2, pref_dim=4, inference="map", epochs=20, progress=False)
    dt = dg.to_datatree(point, num_samples=50)
    res = dg.loo(dt)  # every draw is the same: PSIS alone would fail
    assert res.n_constant == len(small)
    np.testing.assert_allclose(res.elpd, float(dt["log_likelihood"]["label"][0, 0].sum()))
    assert float(res.pareto_k.max()) == 0.0


def test_heterogeneity_check_flags_k1_only_on_heterogeneous_users(fits_by_k):
    flagged = dg.heterogeneity_check(fits_by_k["K=1"], seed=0)
    homog = synthetic(n_users=200, k=1, n_train=40, n_test=0, seed=0)
    k1_homog = bayespal.fit(homog.data, k=1, pref_dim=4, seed=0, progress=False)
    fine = dg.heterogeneity_check(k1_homog, seed=0)
    print(f"K=1 heterogeneous p={float(flagged.p_value):.3f}; homogeneous p={float(fine.p_value):.3f}")
    assert float(flagged.p_value) < 0.01
    assert float(fine.p_value) > 0.05
    assert flagged["user_agreement"].sizes["user"] == 200


def test_alignment_recovers_a_permutation(fits_by_k, hetero):
    a = fits_by_k["K=3"]
    b = bayespal.fit(hetero.data, k=3, pref_dim=4, seed=11, progress=False)
    perm = dg.align_prototypes(a, b)
    np.testing.assert_array_equal(dg.align_prototypes(a, a), [0, 1, 2])
    scrambled = copy.deepcopy(a)
    scrambled.permute_prototypes([2, 0, 1])  # new j is old [2, 0, 1][j]: old 0 is now 1
    np.testing.assert_array_equal(dg.align_prototypes(a, scrambled), [1, 2, 0])
    wa = a.user_weights()["mean"].values
    wb = b.user_weights()["mean"].values[:, perm]
    corr = [np.corrcoef(wa[:, j], wb[:, j])[0, 1] for j in range(3)]
    assert min(corr) > 0.8, corr
    # K=5 against K=3: three matched, the extra two left out
    assert len(set(dg.align_prototypes(a, fits_by_k["K=5"]))) == 3


def test_plots_draw_the_fit(fits_by_k, hetero):
    fit = fits_by_k["K=3"]
    fig = plots.plot_loss(fit)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), fit.loss_history)
    fig = plots.plot_users_simplex(fit)
    offsets = fig.axes[0].collections[0].get_offsets()
    assert offsets.shape == (200, 2)
    np.testing.assert_allclose(offsets, plots._ternary_xy(fit.user_weights()["mean"].values))
    sizes = fig.axes[0].collections[0].get_sizes()
    sd = fit.user_weights()["sd"].values.mean(1)
    assert np.corrcoef(sizes, sd)[0, 1] > 0.99  # the marker grows with the sd, as documented
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["sd 0.02", "sd 0.1", "sd 0.2"]
    assert fig.get_layout_engine() is not None  # constrained layout: nothing clipped
    fig = plots.plot_users_simplex(fits_by_k["K=4"])
    assert fig.axes[0].images[0].get_array().shape == (200, 4)
    fig = plots.plot_prototype_items(fit, hetero.data.items[:50], top=4)
    r = dg.prototype_reward_matrix(fit, hetero.data.items[:50])
    for k, ax in enumerate(fig.axes):
        widths = sorted((p.get_width() for p in ax.patches), reverse=True)
        np.testing.assert_allclose(widths, np.sort(r[k])[::-1][:4], rtol=1e-5)
    p = fit.predict_proba(hetero.data)
    fig = plots.plot_calibration(p, hetero.data.label)
    x, y = fig.axes[0].lines[1].get_data()
    assert (np.diff(x) > 0).all() and np.abs(x - y).max() < 0.15
    fig = plots.plot_user_posterior(fit, fit.user_ids[0])
    assert len(fig.axes[0].lines) == 3
    fig = plots.plot_heterogeneity(dg.heterogeneity_check(fit, num_samples=50, seed=0))
    assert len(fig.axes[0].patches) == 30
    matplotlib.pyplot.close("all")


def test_loo_handles_nearly_constant_log_likelihood():
    import arviz_base

    rng = np.random.default_rng(0)
    ll = rng.normal(-0.7, 0.1, size=(1, 200, 50))
    ll[0, :, 7] = -5e-12 * rng.random(200)  # a saturated comparison: varies by ~5e-12
    dt = arviz_base.from_dict({"posterior": {"x": rng.normal(size=(1, 200))},
                               "log_likelihood": {"label": ll},
                               "observed_data": {"label": np.ones(50)}},
                              dims={"label": ["comparison"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = dg.loo(dt)
    assert np.isfinite(res.elpd) and np.isfinite(res.elpd_i.values).all()
    assert res.n_constant == 1
