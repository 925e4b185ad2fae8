"""New-user posteriors: agreement with NUTS, prior at zero answers, vectorised placement."""

import itertools
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS

import bayespal
from bayespal.datasets import synthetic
from bayespal.users.newuser import NewUser, NewUserPosteriors, place_users

# bayespal 0.2's default fit, written out
RECIPE_0_2 = dict(hidden=(64,), lr_schedule="cosine", epochs=200, lr_final_factor=0.05,
                  patience=10, validation_fraction=0)

pytestmark = pytest.mark.slow  # every test here fits a model


@pytest.fixture(scope="module", params=[2, 4])
def small_fit(request):
    k = request.param
    syn = synthetic(n_users=60, k=k, n_train=20, n_test=0, n_items=300, seed=k)
    return bayespal.fit(syn.data, k=k, pref_dim=4, epochs=40, seed=0, progress=False)


def nuts_weights(dr: torch.Tensor, y: torch.Tensor, prior: dist.Distribution, seed: int,
                 num_samples: int = 3000, warmup: int = 400) -> np.ndarray:
    """Reference posterior of w by Pyro's NUTS: w ~ prior (the population's), y ~
    Bern(sigmoid(w . dr))."""

    def model():
        w = pyro.sample("w", prior)
        with pyro.plate("n", len(y)):
            pyro.sample("y", dist.Bernoulli(logits=dr @ w), obs=y)

    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model), num_samples=num_samples, warmup_steps=warmup, disable_progbar=True)
    mcmc.run()
    return mcmc.get_samples()["w"].numpy()


def exact_by_prior_sampling(dr: torch.Tensor, y: np.ndarray, prior: dist.Distribution
                            ) -> tuple:
    """Brute force: 2M prior draws weighted by the likelihood. Exact up to a Monte Carlo
    error set by its ESS (returned last), which is huge unless the answers are very
    informative."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        w = prior.sample((2_000_000,)).double()
    sign = torch.as_tensor(2 * y - 1).double()
    ll = torch.cat([torch.nn.functional.logsigmoid(sign * (part @ dr.double().T)).sum(-1)
                    for part in w.split(100_000)])  # chunks: (draws x answers) stays small
    wt = torch.softmax(ll, 0)
    mean = (wt[:, None] * w).sum(0).numpy()
    qs = []
    for q in (0.05, 0.95):
        order = torch.argsort(w, 0)
        cw = torch.cumsum(wt[order], 0)
        idx = (cw < q).sum(0)
        qs.append(w.gather(0, order)[idx, torch.arange(w.shape[1])].numpy())
    return mean, qs[0], qs[1], float(1 / wt.pow(2).sum())


def _answers(nu, k, n):
    rng = np.random.default_rng(10 * k + n)
    a = rng.integers(0, 300, n)
    b = (a + rng.integers(1, 300, n)) % 300
    true_w = rng.dirichlet(np.ones(k))
    dr = nu.pop.terms(torch.as_tensor(a), torch.as_tensor(b))[0][0]  # (n, K), includes beta
    y = (rng.random(n) < torch.sigmoid(dr @ torch.as_tensor(true_w, dtype=torch.float32))
         .numpy()).astype(int)
    return a, b, y, dr


# n = 1,000 is checked against NUTS by test_informative_posterior_matches_nuts (K = 4) and
# by benchmarks/newuser_speed.py's exactness table (K = 2 and 4): ~50 s each here
@pytest.mark.parametrize("n", [1, 5, 20, 200])
def test_posterior_matches_the_exact_posterior(small_fit, n):
    """Against brute-force prior sampling where its ESS exceeds 10^5 (then exact to
    ~0.002), else against NUTS (3,000 draws, whose 5%/95% quantiles carry ~0.01-0.02 of
    Monte Carlo error themselves). Mean and 90% interval within 0.02."""
    k = small_fit.k
    nu = NewUser(small_fit, population="mean", num_samples=32768, seed=1)
    a, b, y, dr = _answers(nu, k, n)
    nu.observe(a, b, y)
    ours = nu.weights(ci=0.9)
    mean, lower, upper, ess = exact_by_prior_sampling(dr, y, nu.pop.draws.weights_prior(0))
    print(f"K={k}, n={n}: brute-force ESS {ess:.0f}")
    if ess < 1e5:
        ref = nuts_weights(dr, torch.as_tensor(y, dtype=torch.float32), nu.pop.draws.weights_prior(0), n)
        mean, lower, upper = ref.mean(0), np.quantile(ref, 0.05, 0), np.quantile(ref, 0.95, 0)
    np.testing.assert_allclose(ours["mean"].values[0], mean, atol=0.02)
    np.testing.assert_allclose(ours["lower"].values[0], lower, atol=0.02)
    np.testing.assert_allclose(ours["upper"].values[0], upper, atol=0.02)
    assert ours["ess"].values[0] > 0.3 * 32768


@pytest.fixture(scope="module")
def fit4():
    syn = synthetic(n_users=60, k=4, n_train=20, n_test=0, n_items=300, seed=4)
    return bayespal.fit(syn.data, k=4, pref_dim=4, epochs=40, seed=0, progress=False)


def test_informative_posterior_matches_nuts(fit4):
    """1,000 noiseless answers from an interior truth, K = 4: a concentrated posterior that
    brute force cannot resolve (ESS < 100) and NUTS (near-Gaussian target) can."""
    small_fit = fit4
    k, n = small_fit.k, 1000
    nu = NewUser(small_fit, population="mean", num_samples=32768, seed=1)
    a, b, _, dr = _answers(nu, k, n)
    truth = torch.full((k,), 1.0 / k) + torch.linspace(-0.1, 0.1, k)
    y = (dr @ truth > 0).numpy().astype(int)
    _, _, _, ess = exact_by_prior_sampling(dr, y, nu.pop.draws.weights_prior(0))
    ours = nu.observe(a, b, y).weights(ci=0.9)
    ref = nuts_weights(dr, torch.as_tensor(y, dtype=torch.float32), nu.pop.draws.weights_prior(0), 7,
                       num_samples=600, warmup=200)  # near-Gaussian: NUTS mixes fast
    print(f"K={k}: brute-force ESS {ess:.0f}, ours ESS {ours['ess'].values[0]:.0f}, "
          f"sd {ours['sd'].values[0]}")
    assert ess < 1e5
    np.testing.assert_allclose(ours["mean"].values[0], ref.mean(0), atol=0.02)
    np.testing.assert_allclose(ours["lower"].values[0], np.quantile(ref, 0.05, 0), atol=0.02)
    np.testing.assert_allclose(ours["upper"].values[0], np.quantile(ref, 0.95, 0), atol=0.02)
    assert ours["ess"].values[0] > 0.3 * 32768


def test_many_answers_seed_spread_and_order(small_fit):
    """1,000 answers: sampler seeds agree within 0.01 (the old sampler: 0.11), and the same
    answers fed one by one give the posterior they give at once (old: 0.959 vs 0.809)."""
    k, n = small_fit.k, 1000
    probe = NewUser(small_fit)
    a, b, y, _ = _answers(probe, k, n)
    means = []
    for seed in range(4):
        nu = NewUser(small_fit, seed=seed)
        nu.observe(a, b, y)
        means.append(nu.weights()["mean"].values[0])
    spread = np.ptp(np.array(means), 0).max()
    one = NewUser(small_fit, seed=7)
    for i in range(n):
        one.observe(a[i], b[i], y[i])
    w_one = one.weights()
    print(f"K={k}: seed spread {spread:.4f}; one by one {w_one['mean'].values[0]} vs "
          f"at once {np.mean(means, 0)}; ESS {w_one['ess'].values[0]:.0f}")
    assert spread <= 0.01
    np.testing.assert_allclose(w_one["mean"].values[0], np.mean(means, 0), atol=0.015)
    assert w_one["ess"].values[0] > 0.2 * one.num_samples


def test_low_ess_warns_exactly_when_below_the_floor(small_fit):
    """With ``min_ess`` near 0 the sampler never rebuilds: 1,000 answers reweighting the
    prior's draws leave a tiny ESS, which must be reported; a rebuilt sampler must not warn."""
    from bayespal.users.newuser import ESS_FLOOR

    k = small_fit.k
    for min_ess, expect_low in ((1e-9, True), (0.25, False)):
        nu = NewUser(small_fit, num_samples=2048, seed=0, population="mean", min_ess=min_ess)
        nu.weights()  # draws from the prior
        a, b, _, dr = _answers(nu, k, 1000)
        nu.observe(a, b, (dr[:, 0] > 0).numpy().astype(int))  # a noiseless prototype-0 user
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ess = nu.ess[0]
        hit = any("effective sample size below" in str(c.message) for c in caught)
        assert hit == (ess < min(ESS_FLOOR, 2048 / 4)) == expect_low, (min_ess, ess, hit)


def test_zero_answers_is_the_prior_predictive(small_fit):
    nu = NewUser(small_fit, num_samples=8192)
    mean = nu.pop.draws.prior_mean_weights()[0].numpy()
    np.testing.assert_allclose(nu.weights()["mean"].values[0], mean, atol=0.02)
    # The prior predictive equals fit.predict_proba for a user the fit has never seen.
    a, b = np.arange(0, 20), np.arange(20, 40)
    p_new = nu.predict_proba(a, b)
    p_pop = small_fit.predict_proba(user=["stranger"] * 20, item_a=a, item_b=b, num_samples=500)
    np.testing.assert_allclose(p_new, p_pop, atol=0.03)


@pytest.fixture(scope="module")
def unseen_setup():
    """A population fitted on 80% of 500 users; the other 100 users are new to it."""
    syn = synthetic(n_users=500, k=3, n_train=40, n_test=20, seed=0)
    seen, unseen = syn.data.split_users(0.2, seed=0)
    seen_train = seen.subset(~syn.is_test[np.isin(syn.data.user_ids[syn.data.user], seen.user_ids)])
    # 0.2's fixed recipe: these tests are about placing new users in a given population
    # (the self-tuning fit's own effect on them is in benchmarks/defaults.py)
    fit = bayespal.fit(seen_train, k=3, pref_dim=4, seed=0, progress=False, **RECIPE_0_2)
    perm = list(min(itertools.permutations(range(3)), key=lambda q: (
        (fit.user_weights()["mean"].values[:, list(q)] - syn.true_weights[seen.user_ids]) ** 2
    ).sum()))
    return syn, fit, unseen, perm


def test_unseen_user_intervals_cover_the_truth(unseen_setup):
    syn, fit, unseen, perm = unseen_setup
    answers = unseen.subset(~syn.is_test[np.isin(syn.data.user_ids[syn.data.user],
                                                 unseen.user_ids)])  # 40 answers each
    w = place_users(fit, answers, seed=1).weights(ci=0.9)
    truth = syn.true_weights[unseen.user_ids]
    mix = syn.group[unseen.user_ids] < 0  # interior truth
    lo, hi = w["lower"].values[:, perm], w["upper"].values[:, perm]
    cover = ((truth >= lo) & (truth <= hi))[mix].mean()
    print(f"unseen users (40 answers): 90% interval coverage {cover:.3f}")
    assert 0.75 <= cover <= 0.97


def test_few_answers_beat_the_population_average(unseen_setup):
    syn, fit, unseen, _ = unseen_setup
    per_user = unseen.comparisons_per_user()
    order = np.argsort(unseen.user, kind="stable")
    rank = np.empty(len(unseen), int)
    rank[order] = np.arange(len(unseen)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    shots, held = unseen.subset(rank < 10), unseen.subset(rank >= 10)
    new = place_users(fit, shots, seed=2)
    p_new = new.predict_proba(held.user_ids[held.user], held.item_a, held.item_b)
    p_pop = fit.predict_proba(held)  # users unknown to the fit: population average
    acc_new = ((p_new > 0.5) == (held.label == 1)).mean()
    acc_pop = ((p_pop > 0.5) == (held.label == 1)).mean()
    print(f"unseen users: 10 answers {acc_new:.4f} vs population average {acc_pop:.4f}")
    assert acc_new > acc_pop + 0.03


def test_vectorised_placement_equals_one_at_a_time(small_fit):
    rng = np.random.default_rng(3)
    users = np.repeat(["u1", "u2", "u3"], 4)
    a = rng.integers(0, 300, 12)
    b = (a + 7) % 300
    y = rng.integers(0, 2, 12)
    many = NewUserPosteriors(small_fit, ["u1", "u2", "u3"], num_samples=2048, seed=4, population="mean")
    many.observe(users, a, b, y)
    one = NewUser(small_fit, "u2", num_samples=2048, seed=4, population="mean")
    one.observe(a[4:8], b[4:8], y[4:8])
    np.testing.assert_allclose(many.weights()["mean"].sel(user="u2"),
                               one.weights()["mean"].values[0], atol=0.02)
    p = many.predict_proba(["u3", "u1", "u3"], [1, 2, 3], [4, 5, 6])
    assert p.shape == (3,) and ((p > 0) & (p < 1)).all()


def test_bad_input_is_refused(small_fit):
    nu = NewUser(small_fit)
    with pytest.raises(ValueError, match=r"item_a: got 300; expected an id of the table \(300 "):
        nu.observe(300, 1, 1)
    with pytest.raises(ValueError, match=r"item_a: got 300; expected a row number in \[0, 300\)"):
        nu.observe(300, 1, 1, rows=True)
    with pytest.raises(ValueError, match=r"label\[0\]: got 2; expected 0 or 1"):
        nu.observe(0, 1, 2)
    with pytest.raises(ValueError, match="item_b: got 3, the same item as item_a"):
        nu.observe(3, 3, 1)
    group = NewUserPosteriors(small_fit, ["a", "b"])
    with pytest.raises(ValueError, match="user: got 'x'"):
        group.observe(["a", "x"], [0, 2], [1, 3], [1, 1])
    assert group.n_answers().sum() == 0  # nothing half-written, not even the valid answer


def test_protocol_table_and_bayes_beats_point_on_calibration(unseen_setup):
    from bayespal.analysis.evaluation import evaluate_fewshot

    syn, fit, unseen, _ = unseen_setup
    seen_ids = fit.user_ids
    sel = np.isin(syn.data.user_ids[syn.data.user], seen_ids)
    seen_train = syn.data.subset(sel & ~syn.is_test)
    seen_test = syn.data.subset(sel & syn.is_test)
    bayes = evaluate_fewshot(fit, unseen, seen_test=seen_test, n_test=10)
    assert list(bayes.group) == ["seen"] + ["unseen"] * 6
    assert list(bayes.n_shots[1:]) == [1, 2, 5, 10, 20, 50]
    assert (bayes.users[1:] == 100).all() and (bayes.comparisons[1:] == 1000).all()
    map_fit = bayespal.fit(seen_train, k=3, pref_dim=4, inference="map", seed=0,
                           progress=False, **RECIPE_0_2)  # only the inference differs
    point = evaluate_fewshot(map_fit, unseen, seen_test=seen_test, n_test=10, method="point")
    print(bayes.round(4).to_string(), point.round(4).to_string(), sep="\n")
    few_b, few_p = bayes[bayes.n_shots <= 10], point[point.n_shots <= 10]
    assert (few_b.ece.values < few_p.ece.values).all()
    assert (few_b.accuracy.values >= few_p.accuracy.values - 0.01).all()
    # more answers help: accuracy at 50 shots beats 1 shot clearly
    assert bayes.accuracy.iloc[-1] > bayes.accuracy.iloc[1] + 0.08


@pytest.mark.parametrize("levels", [2, 3, 5])
def test_analytic_derivatives_match_autograd(levels):
    """The Laplace step's exact gradient and Hessian (squared distance) equal autograd's, for
    binary, tied and graded answers (with padding)."""
    from bayespal.model.likelihood import cutpoints, outcome_bounds
    from bayespal.users.newuser import _derivatives, _log_target

    gen = torch.Generator().manual_seed(0)
    b, n, k = 7, 12, 4
    y = torch.randn(b, k - 1, generator=gen, dtype=torch.float64)
    alpha = torch.rand(b, k, generator=gen, dtype=torch.float64) + 0.2
    diff = torch.randn(b, n, k, generator=gen, dtype=torch.float64) * 2
    level = torch.randint(levels, (b, n), generator=gen)
    level[:, -2:] = -1  # padding
    gaps = None if levels == 2 else torch.tensor([0.7, 0.4][: (levels - 1) // 2],
                                                 dtype=torch.float64)
    cuts = cutpoints(gaps, levels).double()
    lo, hi = outcome_bounds(level, cuts.expand(b, -1))

    def check(choice=None) -> None:
        f, g, h = _derivatives(y, alpha, diff, None, lo, hi, choice)
        yy = y.clone().requires_grad_(True)
        fa = _log_target(yy, alpha, diff, None, lo, hi, choice)
        (ga,) = torch.autograd.grad(fa.sum(), yy, create_graph=True)
        ha = torch.stack([torch.autograd.grad(ga[:, i].sum(), yy, retain_graph=True)[0]
                          for i in range(k - 1)], -2)
        torch.testing.assert_close(f, fa.detach())
        torch.testing.assert_close(g, ga.detach())
        torch.testing.assert_close(h, ha.detach())

    check()
    if levels != 2:
        return
    # choices from sets of up to five (two further items, some padded), binary answers
    od = torch.randn(b, n, 3, k, generator=gen, dtype=torch.float64) * 2
    o = torch.randint(0, 9, (b, n, 3), generator=gen)
    o[:, ::2, 2] = -1
    o[:, ::3] = -1  # pairs among the choices
    check((od, o, level))
    # with no further items anywhere the choice likelihood is the binary one
    none = (od, torch.full_like(o, -1), level)
    torch.testing.assert_close(_log_target(y, alpha, diff, None, lo, hi, none),
                               _log_target(y, alpha, diff, None, lo, hi))
