"""Choices from larger sets and rankings (Plackett-Luce): the stages of a ranking, the
likelihood, clear errors, known-truth recovery, files and diagnostics."""

import itertools

import numpy as np
import pytest
import torch

import bayespal
from bayespal.data import DataError, PreferenceData, ranking_stages
from bayespal.datasets import synthetic
from bayespal.metrics import choice_accuracy, choice_log_loss
from bayespal.model.likelihood import choice_logits


def _stage_log_lik(data: PreferenceData, u: np.ndarray) -> np.ndarray:
    """Each comparison's log P(chosen) for item utilities ``u`` through the library's own
    likelihood (one prototype whose reward is ``u``)."""
    a, b = torch.as_tensor(data.item_a), torch.as_tensor(data.item_b)
    ut = torch.as_tensor(u, dtype=torch.float64)
    logits = ut[a] - ut[b]
    others = torch.as_tensor(data.others if data.others is not None
                             else np.full((len(a), 0), -1))
    diff = (ut[others.clamp(min=0)] - ut[b][:, None]).unsqueeze(-1)  # (n, m, 1)
    z = choice_logits(torch.ones(len(a), 1, dtype=torch.float64), logits, diff, None, others)
    return torch.log_softmax(z, -1).gather(-1, torch.as_tensor(data.label).long()[:, None])[:, 0].numpy()


def _plackett_luce(u: np.ndarray, order: list, unranked: list = ()) -> float:
    """log P(order) by the textbook formula: the top-m items chosen one after another from
    those left (unranked ones stay in every set)."""
    left = list(order) + list(unranked)
    total = 0.0
    for x in order:
        total += u[x] - np.log(np.exp(u[left]).sum())
        left.remove(x)
    return total


def test_rankings_are_the_plackett_luce_likelihood():
    """The choices a ranking is stored as multiply to its Plackett-Luce probability (full,
    top-2 of five, and with a tie: Breslow), and the probabilities of all orders of a set sum
    to one; a choice with no further items is the pair's Bernoulli."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=6) * 2
    items = np.eye(6, dtype=np.float32)
    full = PreferenceData.from_rankings(["u"], [[3, 1, 4, 0]], [[2, 4, 1, 3]], items)
    np.testing.assert_allclose(_stage_log_lik(full, u).sum(), _plackett_luce(u, [4, 3, 0, 1]))
    top2 = PreferenceData.from_rankings(["u"], [[0, 1, 2, 3, 5]], [[None, 2, None, 1, None]],
                                        items)
    assert len(top2) == 2 and top2.set_size == 5
    np.testing.assert_allclose(_stage_log_lik(top2, u).sum(),
                               _plackett_luce(u, [3, 1], [0, 2, 5]))
    best = PreferenceData.from_choices(["u"], [[2, 5, 0, 1]], [0], items)
    np.testing.assert_allclose(_stage_log_lik(best, u).sum(), _plackett_luce(u, [0], [2, 5, 1]))
    # Breslow: two items tied at the top are each chosen from the set that holds both
    tied = PreferenceData.from_rankings(["u"], [[0, 1, 2]], [[1, 1, 2]], items)
    s = np.exp(u[[0, 1, 2]]).sum()
    np.testing.assert_allclose(_stage_log_lik(tied, u).sum(), u[0] + u[1] - 2 * np.log(s))
    # every order of four items: probabilities sum to one
    orders = list(itertools.permutations([0, 2, 3, 5]))
    data = PreferenceData.from_rankings(["u"] * len(orders), [list(o) for o in orders], None,
                                        items, seed=1)
    answer = np.repeat(np.arange(len(orders)), 3)  # three choices per full ranking of four
    per_order = np.bincount(answer, _stage_log_lik(data, u))
    np.testing.assert_allclose(np.exp(per_order).sum(), 1.0)
    # the layout is random: the chosen item is item_a about half of the time
    assert 0.3 < data.label.mean() < 0.7
    pair = PreferenceData.from_arrays([0, 0], [1, 2], [2, 3], [1, 0], items, others=[[], [4]])
    ll = _stage_log_lik(pair, u)
    np.testing.assert_allclose(ll[0], -np.log1p(np.exp(-(u[1] - u[2]))))


def test_stages_of_a_padded_batch():
    """ranking_stages on padded arrays: the number of choices is the ranked items whose set
    holds another item, and every choice's items come from its ranking's set."""
    sets = np.array([[0, 1, 2, -1], [3, 4, 5, 6]])
    ranks = np.array([[1.0, 2.0, 3.0, np.inf], [np.inf, 1.0, np.inf, np.inf]])
    answer, a, b, label, others = ranking_stages(sets, ranks, np.random.default_rng(0))
    assert answer.tolist() == [0, 0, 1]
    for r, x, y, o in zip(answer, a, b, others, strict=True):
        members = {int(x), int(y), *o[o >= 0].tolist()}
        assert members <= set(sets[r][sets[r] >= 0].tolist())
    chosen = np.where(label == 1, a, b)
    assert chosen.tolist() == [0, 1, 4]


def test_choice_errors_name_the_field():
    """A repeated item, a set of one, ranks that do not match their set, nothing ranked, a
    chosen item not shown, further items with a tie scale or repeating item_a: each refused
    by name; pairs-only consumers refuse choice data instead of mis-scoring it."""
    items = np.eye(5, dtype=np.float32)
    with pytest.raises(DataError, match=r"sets\[1\]: got \[2, 2, 3\]; expected distinct items"):
        PreferenceData.from_rankings([0, 0], [[0, 1], [2, 2, 3]], None, items)
    with pytest.raises(DataError, match=r"sets\[0\]: got \[4\]; expected at least 2 items"):
        PreferenceData.from_rankings([0], [[4]], None, items)
    with pytest.raises(DataError, match=r"ranks\[0\]: got \[1, 2, 3\]; expected 2 ranks"):
        PreferenceData.from_rankings([0], [[0, 1]], [[1, 2, 3]], items)
    with pytest.raises(DataError, match=r"ranks\[0\]: got \[None, None\]; expected at least one"):
        PreferenceData.from_rankings([0], [[0, 1]], [[None, None]], items)
    with pytest.raises(DataError, match=r"ranks\[0\]\[1\]: got 'x'; expected a number"):
        PreferenceData.from_rankings([0], [[0, 1]], [[1, "x"]], items)
    with pytest.raises(DataError, match=r"chosen\[0\]: got 4; expected one of the items"):
        PreferenceData.from_choices([0], [[0, 1, 2]], [4], items)
    with pytest.raises(DataError, match=r"others\[0\]: got \[2\]; expected no further items "
                                        r"with levels=3"):
        PreferenceData.from_arrays([0], [0], [1], [0.5], items, levels=3, others=[[2]])
    with pytest.raises(DataError, match=r"others\[1\]: got 0; expected items other than"):
        PreferenceData.from_arrays([0, 0], [0, 0], [1, 1], [1, 1], items, others=[[2], [0, 3]])
    with pytest.raises(DataError, match=r"others: got 9; expected an id present in item_ids"):
        PreferenceData.from_arrays([0], [0], [1], [1], items, others=[[9]])
    data = PreferenceData.from_choices([0, 1], [[0, 1, 2], [2, 3, 4]], [1, 4], items)
    frame = data.to_frame()
    again = PreferenceData.from_frame(frame, items, others="others")
    np.testing.assert_array_equal(again.others, data.others)
    assert data.subset(np.array([1])).others.shape == (1, 1)
    from bayespal.analysis.baselines import BradleyTerry

    with pytest.raises(DataError, match=r"data: got 'choices from sets of up to 3 items"):
        BradleyTerry(epochs=1).fit(data)


@pytest.fixture(scope="module")
def ranking_truth():
    """Users who rank four items at a time (25 rankings each, 75 choices), fitted by
    default on the truth's own features (the model family holds the truth)."""
    syn = synthetic(n_users=300, k=2, n_train=25, n_test=10, n_items=1000, set_size=4,
                    sharpness=2.0, seed=4)
    d = syn.data
    data = PreferenceData.from_arrays(d.user, d.item_a, d.item_b, d.label,
                                      syn.true_features.astype(np.float32),
                                      user_ids=np.arange(d.n_users),
                                      others=[r[r >= 0].tolist() for r in d.others],
                                      question=d.question)
    fit = bayespal.fit(data.subset(~syn.is_test), 2, hidden=(), progress=False)
    return syn, data, fit


@pytest.mark.slow
def test_rankings_recover_the_truth(ranking_truth, weight_recovery):
    """Known truth: on held-out rankings, the chosen item's log-loss within 0.03 of the
    truth's and choice accuracy within 2 points of Bayes-optimal; the mixed users' weights
    recovered to 0.1 on average and their 90% intervals covering 85-95% of the true weights
    (measured 0.893; 0.967 without the local refinement, ``local_epochs=0``)."""
    syn, data, fit = ranking_truth
    test = data.subset(syn.is_test)
    q = fit.predict_outcomes(test, seed=0)
    assert q.shape == (len(test), 4)
    np.testing.assert_allclose(q.sum(1), 1, atol=1e-5)
    assert np.all(q[:, 2:][test.others < 0] == 0)
    truth = syn.true_outcome_probs[syn.is_test]
    acc, bayes = choice_accuracy(q, test.label), syn.bayes_accuracy(syn.is_test)
    ll, ll_true = choice_log_loss(q, test.label), choice_log_loss(truth, test.label)
    print(f"accuracy {acc:.4f} (Bayes {bayes:.4f}); log-loss {ll:.4f} (truth {ll_true:.4f})")
    assert acc > bayes - 0.02
    assert ll < ll_true + 0.03
    inside, error = weight_recovery(fit, syn)
    mixed = syn.group < 0
    err = error[mixed].mean()
    print(f"mixed users: mean |error| {err:.3f}, 90% intervals cover {inside[mixed].mean():.3f}")
    assert err < 0.1
    assert 0.85 <= inside[mixed].mean() <= 0.95
    with pytest.raises(DataError, match="predict_proba"):
        fit.predict_proba(test)


@pytest.mark.slow
def test_choice_fits_save_and_diagnose(ranking_truth, tmp_path):
    """Saved and loaded, a fit of rankings predicts the same; its DataTree holds one
    categorical log-likelihood per choice (on average over draws the posterior predictive
    of the chosen item), and LOO runs on it."""
    from bayespal.analysis.diagnostics import loo, to_datatree

    syn, data, fit = ranking_truth
    test = data.subset(syn.is_test)
    fit.save(tmp_path / "rank.bayespal")
    back = bayespal.load(tmp_path / "rank.bayespal")
    np.testing.assert_allclose(back.predict_outcomes(test, seed=0),
                               fit.predict_outcomes(test, seed=0), atol=1e-6)
    train = data.subset(~syn.is_test).subset(np.arange(2000))
    tree = to_datatree(fit, train, num_samples=200, seed=0)
    ll = tree["log_likelihood"]["label"].values.reshape(-1, 2000)
    q = fit.predict_outcomes(train, num_samples=200, seed=0)
    gap = np.abs(np.exp(ll).mean(0) - q[np.arange(2000), train.label.astype(int)])
    assert gap.mean() < 0.005 and gap.max() < 0.15  # two independent sets of 200 draws
    rep = tree["posterior_predictive"]["label"].values
    assert rep.max() == 3 and rep.min() == 0  # replicated choices range over the whole set
    # one observation per ranking: its choices' log-likelihoods summed, and LOO leaves out
    # whole rankings
    answers, inverse = np.unique(train.question, return_inverse=True)
    per = tree["log_likelihood"]["answer"].values.reshape(-1, len(answers))
    expect = np.stack([np.bincount(inverse, row, len(answers)) for row in ll[:5]])
    np.testing.assert_allclose(per[:5], expect, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(tree["constant_data"]["answer_of"].values, inverse)
    result = loo(tree)
    assert np.isfinite(float(result["elpd"])) and result.n_data_points == len(answers)


def test_heterogeneity_check_of_choices(ranking_truth):
    """The heterogeneity check of choices: a fit with the true K reproduces how much the
    users' choices differ (the K = 1 fit is flagged in ``test_select_k_on_rankings``), and
    the replicated agreement is that of users drawn from the population."""
    from bayespal.analysis.diagnostics import heterogeneity_check

    syn, data, fit = ranking_truth
    check = heterogeneity_check(fit, data.subset(~syn.is_test), num_samples=100, seed=0)
    print(float(check["observed"]), float(check["replicated"].mean()), float(check["p_value"]))
    assert 0.05 < float(check["p_value"]) < 0.95
    agree = check["user_agreement"].values
    assert agree.shape == (300,) and 0.3 < agree.mean() < 0.9


@pytest.mark.slow
def test_new_user_rankings_match_nuts(ranking_truth, matches_nuts):
    """A new user's posterior after eight rankings of four (24 choices, one ranking with a
    tie, one a top-1) equals NUTS on the textbook Plackett-Luce likelihood of the same
    item utilities (an independent likelihood): mean and 90% interval within 0.02."""
    import pyro
    import pyro.distributions as dist

    from bayespal.users.newuser import NewUser

    _, _, fit = ranking_truth
    nu = NewUser(fit, population="mean", num_samples=16384, seed=1)
    rng = np.random.default_rng(3)
    sets = [rng.choice(1000, 4, replace=False).tolist() for _ in range(8)]
    ranks = [rng.permutation(4).tolist() for _ in range(8)]
    ranks[0] = [1, 1, 2, 3]  # a tie at the top (Breslow)
    ranks[1] = [None, 1, None, None]  # best of four
    for items, rk in zip(sets, ranks, strict=True):
        nu.observe_ranking(items, rk, rows=True)
    assert nu.n_answers()[0] == 3 + 1 + 6 * 3
    ours = nu.weights(ci=0.9)
    d = nu.pop.draws
    f = nu.pop.item_features[0].double()
    proto = d.prototypes[0].double()
    beta = float(d.sharpness[0])
    reward = beta * (2 * proto @ f.T - (f ** 2).sum(-1))  # (K, M) each prototype's utility
    # the choices by hand: each ranked item from those ranked no better (ties: Breslow)
    stage_sets, chosen = [], []
    for items, rk in zip(sets, ranks, strict=True):
        r = np.array([np.inf if x is None else x for x in rk], dtype=float)
        for i in np.flatnonzero(np.isfinite(r)):
            left = [items[j] for j in range(4) if r[j] >= r[i]]
            if len(left) > 1:
                stage_sets.append(left + [-1] * (4 - len(left)))
                chosen.append(left.index(items[i]))
    sets_t, chosen_t = torch.tensor(stage_sets), torch.tensor(chosen)
    prior = nu.pop.draws.weights_prior(0, torch.float64)

    def model():
        w = pyro.sample("w", prior)
        u = (w @ reward)[sets_t.clamp(min=0)].masked_fill(sets_t < 0, float("-inf"))
        with pyro.plate("choices", len(chosen_t)):
            pyro.sample("y", dist.Categorical(logits=u), obs=chosen_t)

    matches_nuts(ours, model)
    with pytest.raises(ValueError, match=r"others\[0\]: got \[5, 5\]; expected items other"):
        nu.observe([1], [2], [1], others=[[5, 5]], rows=True)


@pytest.mark.slow
def test_set_questions(ranking_truth):
    """Set questions for a new user: the orders of a set have probabilities summing to one
    whose first-place margins are the best-of probabilities; a ranking tells at least as
    much as the best of the same set and as a pair of its items (both answers are functions
    of the ranking: under Plackett-Luce two items' order in a ranking is distributed as
    their pairwise choice); the greedy set beats random sets of the pool."""
    from bayespal.users import NewUser, set_acquisition, suggest, suggest_set

    _, _, fit = ranking_truth
    nu = NewUser(fit, num_samples=4096, seed=0)
    nu.observe([1, 2, 3], [4, 5, 6], [1, 0, 1], rows=True)
    rng = np.random.default_rng(0)
    sets = np.stack([rng.choice(1000, 4, replace=False) for _ in range(30)])
    best = nu.draw_set_probs(nu.ids[0], sets, "best_of", 256, seed=0, rows=True)
    order = nu.draw_set_probs(nu.ids[0], sets, "ranking", 256, seed=0, rows=True)
    assert best.shape == (256, 30, 4) and order.shape == (256, 30, 24)
    torch.testing.assert_close(order.sum(-1), torch.ones(256, 30))
    perms = torch.as_tensor(list(itertools.permutations(range(4))))
    first = torch.zeros_like(best).index_add_(-1, perms[:, 0], order)
    torch.testing.assert_close(first, best, atol=1e-5, rtol=1e-4)
    # two items' order within a ranking is their pairwise choice (Plackett-Luce)
    pair = nu.draw_set_probs(nu.ids[0], sets[:, :2], "best_of", 256, seed=0, rows=True)
    ahead = torch.tensor([list(p).index(0) < list(p).index(1) for p in perms.tolist()])
    torch.testing.assert_close(order[..., ahead].sum(-1), pair[..., 0], atol=1e-5, rtol=1e-4)
    ig_rank = set_acquisition(nu, sets, "ranking", rows=True)
    ig_best = set_acquisition(nu, sets, "best_of", rows=True)
    ig_pair = set_acquisition(nu, sets[:, :2], "best_of", rows=True)
    assert np.all(ig_rank >= ig_best - 1e-6) and np.all(ig_rank >= ig_pair - 1e-6)
    assert ig_rank.mean() > 1.5 * ig_pair.mean()
    pool = rng.choice(1000, 60, replace=False)
    greedy = suggest_set(nu, pool, 4, "ranking", rows=True)
    assert set(greedy.iloc[0, :4]) <= set(pool.tolist()) and len(set(greedy.iloc[0, :4])) == 4
    rand = np.stack([rng.choice(pool, 4, replace=False) for _ in range(50)])
    assert greedy["acquisition"][0] > np.quantile(set_acquisition(nu, rand, "ranking",
                                                                  rows=True), 0.9)
    np.testing.assert_allclose(greedy["per_item"][0], greedy["acquisition"][0] / 4)
    two = suggest(nu, pool, n=2, kind="best_of", size=3, rows=True)
    assert len(two) == 2 and not set(two.iloc[0, :3]) & set(two.iloc[1, :3])
    with pytest.raises(ValueError, match=r"sets\[0\]: got \[1, 1\]; expected distinct"):
        nu.draw_set_probs(nu.ids[0], [[1, 1]], rows=True)
    with pytest.raises(ValueError, match=r"kind: got 'worst_of'"):
        suggest_set(nu, pool, 4, "worst_of", rows=True)


def test_long_format_rankings():
    """One row per item shown: questions become rankings (a best-of-n has one ranked row),
    the same comparisons as ``from_rankings``; a question with two users is refused."""
    import pandas as pd

    items = np.eye(6, dtype=np.float32)
    frame = pd.DataFrame({
        "user": ["u", "u", "u", "v", "v", "v", "v"],
        "question": [0, 0, 0, 1, 1, 1, 1],
        "item": [0, 1, 2, 2, 3, 4, 5],
        "rank": [2, 1, 3, None, 1, None, None],
    })
    long = PreferenceData.from_long_frame(frame, items)
    direct = PreferenceData.from_rankings(["u", "v"], [[0, 1, 2], [2, 3, 4, 5]],
                                          [[2, 1, 3], [None, 1, None, None]], items)
    for name in ("user", "item_a", "item_b", "label", "others"):
        np.testing.assert_array_equal(getattr(long, name), getattr(direct, name))
    np.testing.assert_array_equal(long.question, [0, 0, 1])  # two choices, then one
    frame.loc[3, "user"] = "w"
    with pytest.raises(DataError, match=r"user of question 1: got 'several values'"):
        PreferenceData.from_long_frame(frame, items)


def test_answers_stay_together():
    """A ranking's choices share a question: splits, the validation split and few-shot
    splits hold out and count whole answers, subsets and frames keep them, and a question
    spanning two users is refused by name."""
    from bayespal.analysis.evaluation import fewshot_split
    from bayespal.inference.tuning import validation_split

    syn = synthetic(n_users=100, k=2, n_train=8, n_test=2, n_items=200, set_size=4, seed=0)
    data = syn.data
    assert (data.answers_per_user() == 10).all() and (data.comparisons_per_user() == 30).all()
    np.testing.assert_array_equal(data.question, syn.question)
    train, test = data.split_comparisons(test_per_user=3, seed=1)
    assert (test.answers_per_user() == 3).all() and (train.answers_per_user() == 7).all()
    assert not set(train.question) & set(test.question)
    fit_part, val = validation_split(data, 0.3, seed=2)
    assert not set(fit_part.question) & set(val.question)
    assert (fit_part.answers_per_user() >= 1).all()
    pool, rank, held = fewshot_split(data, 4, seed=3)
    assert (held.answers_per_user() == 4).all()
    for n in (1, 3):  # n shots are n whole rankings
        assert (pool.subset(rank < n).answers_per_user() == n).all()
    again = PreferenceData.from_frame(data.to_frame(), data.items, others="others",
                                      question="question")
    np.testing.assert_array_equal(again.question, data.question)
    items = np.eye(4, dtype=np.float32)
    with pytest.raises(DataError, match=r"question\[2\]: got 'q1'; expected one user per "
                                        r"question"):
        PreferenceData.from_arrays([0, 0, 1], [0, 1, 2], [1, 2, 3], [1, 0, 1], items,
                                   question=["q1", "q1", "q1"])
    with pytest.raises(DataError, match=r"question: got 'length 2'; expected length 3"):
        PreferenceData.from_arrays([0, 0, 1], [0, 1, 2], [1, 2, 3], [1, 0, 1], items,
                                   question=["q1", "q2"])
    pairs = PreferenceData.from_arrays([0, 0], [0, 1], [1, 2], [1, 0], items)
    np.testing.assert_array_equal(pairs.answers, [0, 1])  # a pair is its own answer


@pytest.mark.slow
def test_unseen_users_placed_from_rankings(ranking_truth):
    """Users the fit never saw, placed from n whole rankings by ``evaluate_fewshot``: their
    held-out choices are predicted better with every ranking answered, within 3 points of
    the truth's after 20, and calibrated (one-vs-rest ECE); predicting a pair through the
    choice path equals ``predict_proba``."""
    from bayespal.analysis.evaluation import evaluate_fewshot

    syn, _, fit = ranking_truth
    new = synthetic(n_users=60, k=2, n_train=25, n_test=10, n_items=1000, set_size=4,
                    sharpness=2.0, seed=4)  # the same items and prototypes, other users
    d = new.data
    unseen = PreferenceData.from_arrays(d.user + 1000, d.item_a, d.item_b, d.label,
                                        new.true_features.astype(np.float32),
                                        others=[r[r >= 0].tolist() for r in d.others],
                                        question=d.question)
    table = evaluate_fewshot(fit, unseen, shots=(1, 5, 20), n_test=10, seed=0)
    bayes = float(new.true_outcome_probs.max(1).mean())  # the truth's expected accuracy
    print(table.to_string(), f"\ntruth's expected accuracy {bayes:.4f}")
    acc, ll = table["accuracy"].to_numpy(), table["log_loss"].to_numpy()
    assert (np.diff(acc) > 0).all() and (np.diff(ll) < 0).all()
    assert acc[-1] > bayes - 0.03 and table["ece"].iloc[-1] < 0.04
    assert (table["comparisons"] == 60 * 10 * 3).all()  # 10 rankings of 4: 3 choices each
    from bayespal.users import place_users

    placed = place_users(fit, unseen.subset(unseen.question < 5 * 3 * 60), seed=0)
    users = placed.ids[:3].repeat(2)
    a, b = np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9, 10, 11, 12])
    pairs = placed.predict_outcomes(users, a, b, others=[[]] * 6, rows=True)
    np.testing.assert_allclose(pairs[:, 1], placed.predict_proba(users, a, b, rows=True),
                               atol=1e-6)


@pytest.mark.slow
def test_select_k_on_rankings():
    """select_k scores choices by their categorical log-loss (seen and unseen users placed
    from whole rankings) and finds the two kinds of people in rankings of four."""
    syn = synthetic(n_users=150, k=2, n_train=20, n_test=0, n_items=400, set_size=4,
                    partition_fraction=0.8, sharpness=3.0, seed=5)
    d = syn.data
    data = PreferenceData.from_arrays(d.user, d.item_a, d.item_b, d.label,
                                      syn.true_features.astype(np.float32),
                                      others=[r[r >= 0].tolist() for r in d.others],
                                      question=d.question)
    sel = bayespal.select_k(data, ks=(1, 2), hidden=(), seed=0)
    print(sel.table.to_string(), "\n", sel.reason)
    assert sel.k == 2 and "smallest K within one paired standard error" in sel.reason
    t = sel.table.set_index("k")
    assert t.loc[2, "unseen_log_loss"] < t.loc[1, "unseen_log_loss"] - 0.05
    # one reward model does not reproduce how differently these users choose
    assert t.loc[1, "heterogeneity_p"] < 0.01
