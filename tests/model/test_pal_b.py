"""PAL-B, the prompt-conditioned model: fit, predictions, new users, queries, diagnostics."""

import copy

import numpy as np
import pytest

import bayespal
from bayespal import ModelConfig
from bayespal.analysis.diagnostics import align_prototypes, loo, to_datatree
from bayespal.analysis.evaluation import evaluate_fewshot
from bayespal.analysis.reward import RewardModel
from bayespal.datasets import synthetic, synthetic_prompted
from bayespal.metrics import accuracy
from bayespal.users.active import acquisition, suggest
from bayespal.users.newuser import NewUser, place_users

pytestmark = pytest.mark.slow  # every test here fits a model

FIT = dict(k=2, pref_dim=4, hidden=(16,), seed=0, progress=False)


@pytest.fixture(scope="module")
def prompted():
    return synthetic_prompted(prompt_strength=1.0, seed=0)


@pytest.fixture(scope="module")
def fit_b(prompted):
    return bayespal.fit(prompted.train, prompt_dim=8, **FIT)


def test_pal_b_beats_pal_a_when_the_preferred_response_depends_on_the_prompt(prompted, fit_b):
    fit_a = bayespal.fit(prompted.train, **FIT)
    test = prompted.test
    acc_a = accuracy(fit_a.predict_proba(test), test.label)
    acc_b = accuracy(fit_b.predict_proba(test), test.label)
    bayes = prompted.bayes_accuracy(prompted.is_test)
    # measured: PAL-A 0.675, PAL-B 0.9005, Bayes-optimal 0.937
    assert acc_b >= acc_a + 0.15
    assert acc_b >= bayes - 0.06


def test_pal_b_matches_pal_a_when_prompts_do_not_matter():
    flat = synthetic_prompted(prompt_strength=0.0, seed=0)
    test = flat.test
    acc_a = accuracy(bayespal.fit(flat.train, **FIT).predict_proba(test), test.label)
    acc_b = accuracy(bayespal.fit(flat.train, prompt_dim=8, **FIT).predict_proba(test),
                     test.label)
    # measured: PAL-A 0.8855, PAL-B 0.8867 (Bayes-optimal 0.910)
    assert abs(acc_a - acc_b) <= 0.015


def test_unseen_users_are_placed_from_prompted_answers(prompted, fit_b):
    """The same few-shot protocol as PAL-A: accuracy grows with answers, and the Bayesian
    placement sits close to the truth's accuracy after 20 answers."""
    # the same truth (seed 0 draws it before the users), a fresh sample of 60 users
    unseen = synthetic_prompted(n_users=60, prompt_strength=1.0, seed=0)
    table = evaluate_fewshot(fit_b, unseen.data, shots=(1, 20), n_test=10)
    acc = dict(zip(table.n_shots, table.accuracy, strict=True))
    assert acc[20] > acc[1] + 0.05
    assert acc[20] >= 0.85


def test_new_user_queries_and_predictions_need_prompts(prompted, fit_b):
    user = NewUser(fit_b)
    with pytest.raises(ValueError, match="prompt"):
        user.observe(0, 1, 1)
    user.observe([0, 2], [1, 3], [1, 0], prompt=[0, 5])
    assert user.n_answers()[0] == 2
    p = user.predict_proba([4, 6], [5, 7], prompt=[1, 2])
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    cand = np.array([[0, 1, 0], [2, 3, 1], [4, 5, 2], [6, 7, 3]])
    picked = suggest(user, cand, n=2)
    assert list(picked.columns) == ["item_a", "item_b", "prompt", "acquisition"]
    assert set(picked.prompt) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="prompt: got None"):
        suggest(user, cand[:, :2])
    s = acquisition(user, cand[:, 0], cand[:, 1], prompt=cand[:, 2])
    assert s.shape == (4,) and np.all(s >= 0)


def test_information_gain_needs_the_prompt(prompted, fit_b):
    """A question's value depends on its prompt: BALD scores of the same pair under
    different prompts differ."""
    user = NewUser(fit_b).observe([0], [1], [1], prompt=[0])
    pairs = np.tile([[10, 11]], (prompted.data.prompts.shape[0], 1))
    s = acquisition(user, pairs[:, 0], pairs[:, 1], prompt=np.arange(len(pairs)))
    assert s.std() > 0.1 * s.mean()


def test_set_questions_with_prompts(prompted, fit_b):
    """PAL-B set questions: a set of two is the pair under the same prompt, a set's value
    depends on its prompt, the greedy set carries its prompt, a ranking answer under a
    prompt moves the user, and a set without a prompt is refused."""
    from bayespal.users import set_acquisition, suggest_set

    user = NewUser(fit_b).observe([0, 2], [1, 3], [1, 0], prompt=[0, 5])
    rng = np.random.default_rng(0)
    sets = np.stack([rng.choice(1000, 4, replace=False) for _ in range(20)])
    prompt = rng.integers(0, 40, 20)
    pair = user.draw_probs(user.ids[0], sets[:, 0], sets[:, 1], prompt, 256, seed=0)
    two = user.draw_set_probs(user.ids[0], sets[:, :2], "best_of", 256, seed=0, prompt=prompt)
    np.testing.assert_allclose(two[..., 0].numpy(), pair.numpy(), atol=1e-5)
    order = user.draw_set_probs(user.ids[0], sets, "ranking", 256, seed=0, prompt=prompt)
    np.testing.assert_allclose(order.sum(-1).numpy(), 1.0, atol=1e-5)
    same = np.tile(sets[:1], (40, 1))
    value = set_acquisition(user, same, "ranking", prompt=np.arange(40))
    assert value.std() > 0.1 * value.mean()  # the same answers tell more under some prompts
    pool = rng.choice(1000, 30, replace=False)
    best = suggest_set(user, pool, 3, "ranking", prompt=7)
    assert best["prompt"][0] == 7 and set(best.iloc[0, :3]) <= set(pool.tolist())
    np.testing.assert_allclose(best["acquisition"][0],
                               set_acquisition(user, best.iloc[:, :3].to_numpy(), "ranking",
                                               prompt=7)[0], rtol=1e-6)
    assert best["acquisition"][0] > np.quantile(value, 0.5)
    twice = suggest(user, pool, n=2, kind="best_of", size=3, prompt=7)
    assert len(twice) == 2 and set(twice.prompt) == {7}
    before = user.weights()["mean"].values.copy()
    user.observe_ranking(best.iloc[0, :3].to_list(), [1, 2, 3], prompt=7)
    assert np.abs(user.weights()["mean"].values - before).max() > 1e-3
    with pytest.raises(ValueError, match="prompt: got None"):
        suggest_set(user, pool, 3, "ranking")
    with pytest.raises(ValueError, match="prompt: got 7 with kind='pair'"):
        suggest(user, np.array([[0, 1, 0]]), prompt=7)


def test_diagnostics_and_save_load_round_trip(prompted, fit_b, tmp_path):
    sub = prompted.test.subset(np.arange(400))
    tree = to_datatree(fit_b, sub, num_samples=100)
    assert tree["posterior"]["loadings"].dims == ("chain", "draw", "prototype", "pref_dim",
                                                  "prompt_dim")
    assert "PAL-B" in tree.attrs["model"]
    assert np.isfinite(loo(tree).elpd)
    swapped = copy.deepcopy(fit_b)
    swapped.permute_prototypes([1, 0])
    assert list(align_prototypes(fit_b, swapped)) == [1, 0]
    path = tmp_path / "palb.bayespal"
    fit_b.save(path)
    back = bayespal.load(path)
    assert back.model_config.prompted and back.model_config == fit_b.model_config
    np.testing.assert_allclose(back.predict_proba(sub, seed=3), fit_b.predict_proba(sub, seed=3),
                               atol=1e-6)
    placed = place_users(back, sub)
    assert placed.weights()["mean"].shape == (sub.n_users, 2)


def test_pal_b_errors_name_the_field(prompted, fit_b):
    plain = synthetic(n_users=20, n_train=5, n_test=0).data
    with pytest.raises(ValueError, match="data: .*prompt"):
        bayespal.fit(plain, prompt_dim=4, epochs=1, progress=False)
    with pytest.raises(ValueError, match="metric"):
        ModelConfig(metric="cosine")
    with pytest.raises(ValueError, match="prompt_dim"):
        ModelConfig(prompt_dim=0)
    with pytest.raises(ValueError, match="prompt: got None"):
        fit_b.predict_proba(user=[0], item_a=[0], item_b=[1])
    with pytest.raises(ValueError, match="prompt"):
        fit_b.predict_proba(user=[0], item_a=[0], item_b=[1], prompt=[10_000])
    with pytest.raises(ValueError, match="PAL-B"):
        RewardModel(fit_b)


def test_map_pal_b_and_prototype_permutation(prompted):
    """Point estimates (the reference's estimator) work for PAL-B, including the reference
    few-shot recipe; permuting prototypes moves the loadings with them."""
    from bayespal.users.newuser import PointPlacement

    sub = prompted.train.subset(np.arange(3000))
    fit = bayespal.fit(sub, prompt_dim=8, inference="map", epochs=20, **FIT)
    test = prompted.test.subset(np.arange(500))
    before = fit.predict_proba(test)
    assert accuracy(before, test.label) > 0.6
    fit.permute_prototypes([1, 0])
    np.testing.assert_allclose(fit.predict_proba(test), before, atol=1e-5)
    point = PointPlacement(fit, ["u"]).observe(["u"] * 3, [0, 2, 4], [1, 3, 5], [1, 0, 1],
                                              prompt=[0, 1, 2])
    assert point.weights()["mean"].shape == (1, 2)
