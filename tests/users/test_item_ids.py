"""Items (and prompts) are named by the user's ids in every public function; row numbers
only where a caller says ``rows=True``.

The trap these tests guard: integer item ids that are not the rows' numbers. Here the ids
are the rows reversed and shifted (``id = 1299 - row``), so an id is also a valid row
number of another item, and a function that read ids as rows would score the wrong items
without any error.
"""

import numpy as np
import pandas as pd
import pytest

import bayespal
from bayespal import EmbeddingTable, PreferenceData
from bayespal.analysis.reward import RewardModel
from bayespal.datasets import synthetic, synthetic_prompted
from bayespal.users import NewUser, NewUserPosteriors, place_users, suggest

M = 300


def _renamed(data: PreferenceData, ids: np.ndarray) -> PreferenceData:
    """``data`` with item ``row`` renamed ``ids[row]`` (same comparisons, same embeddings)."""
    return PreferenceData.from_arrays(data.user_ids[data.user], ids[data.item_a],
                                      ids[data.item_b], data.label, data.items, item_ids=ids,
                                      user_ids=data.user_ids)


@pytest.fixture(scope="module")
def renamed():
    syn = synthetic(n_users=40, k=2, n_train=20, n_test=0, n_items=M, seed=3)
    ids = 1299 - np.arange(M)  # id 1000 is row 299; rows 0..299 are other items' ids
    data = _renamed(syn.data, ids)
    fit = bayespal.fit(data, k=2, pref_dim=4, hidden=(16,), epochs=30,
                       validation_fraction=0, seed=0, progress=False)
    return data, ids, fit


def test_predictions_take_item_ids(renamed):
    data, ids, fit = renamed
    user = data.user_ids[data.user[:50]]
    by_data = fit.predict_proba(data.subset(np.arange(len(data)) < 50), seed=1)
    by_id = fit.predict_proba(user=user, item_a=ids[data.item_a[:50]],
                              item_b=ids[data.item_b[:50]], seed=1)
    by_row = fit.predict_proba(user=user, item_a=data.item_a[:50], item_b=data.item_b[:50],
                               rows=True, seed=1)
    np.testing.assert_allclose(by_id, by_data, rtol=1e-6)
    np.testing.assert_allclose(by_row, by_data, rtol=1e-6)
    # the same numbers read as ids would name other items: the answer differs
    assert np.abs(fit.predict_proba(user=user, item_a=data.item_a[:50] + 1000,
                                    item_b=data.item_b[:50] + 1000, seed=1) - by_data).max() > 0.05
    with pytest.raises(ValueError, match=r"item_a: got 5; expected an id of the table \(300 ids"):
        fit.predict_proba(user=user[:1], item_a=[5], item_b=[1000])
    pop = fit.predict_population_proba([1000, 1001], [1002, 1003])
    np.testing.assert_allclose(pop, fit.predict_population_proba([299, 298], [297, 296],
                                                                 rows=True))
    np.testing.assert_array_equal(fit.item_rows([1299, 1000]), [0, 299])


def test_new_users_take_and_give_item_ids(renamed):
    data, ids, fit = renamed
    a, b, y = ids[[0, 5, 9, 20]], ids[[1, 6, 3, 40]], [1, 0, 1, 1]
    by_id = NewUser(fit, seed=2).observe(a, b, y)
    rows = fit.item_rows(a), fit.item_rows(b)
    by_row = NewUser(fit, seed=2).observe(*rows, y, rows=True)
    np.testing.assert_allclose(by_id.weights()["mean"].values, by_row.weights()["mean"].values)
    with pytest.raises(ValueError, match="item_a: got 7; expected an id of the table"):
        by_id.observe(7, 1000, 1)
    assert by_id.n_answers()[0] == 4  # the refused answer left nothing behind
    cands = np.stack([ids[10:30], ids[30:50]], 1)
    best = suggest(by_id, cands, n=3)
    assert set(best.item_a) <= set(ids[10:30]) and set(best.item_b) <= set(ids[30:50])
    best_rows = suggest(by_row, np.stack([fit.item_rows(cands[:, 0]),
                                          fit.item_rows(cands[:, 1])], 1), n=3, rows=True)
    np.testing.assert_array_equal(ids[best_rows.item_a.to_numpy()], best.item_a.to_numpy())
    np.testing.assert_allclose(by_id.predict_proba(ids[2], ids[3]),
                               by_row.predict_proba(2, 3, rows=True))
    placed = place_users(fit, data.subset(data.user < 3))
    group = NewUserPosteriors(fit, data.user_ids[:3])
    sub = data.subset(data.user < 3)
    group.observe(sub.user_ids[sub.user], ids[sub.item_a], ids[sub.item_b], sub.label.astype(int))
    np.testing.assert_allclose(placed.weights()["mean"].values, group.weights()["mean"].values,
                               atol=0.03)


def test_rewards_are_indexed_by_item_id(renamed):
    data, ids, fit = renamed
    r = fit.prototype_rewards(num_samples=20)
    np.testing.assert_array_equal(r["item"].values, ids)
    bare = fit.prototype_rewards(data.items[:5], num_samples=20)
    np.testing.assert_array_equal(bare["item"].values, np.arange(5))
    np.testing.assert_allclose(bare["mean"].values, r["mean"].values[:, :5], rtol=1e-5)
    table = RewardModel(fit, weights=[0.5, 0.5]).reward_items()
    assert table.index.name == "item" and (table.index.to_numpy() == ids).all()
    frame = pd.DataFrame(data.items[:4], index=["w", "x", "y", "z"])
    named = RewardModel(fit, weights=[0.5, 0.5]).reward_items(frame)
    np.testing.assert_allclose(named["mean"].values, table["mean"].values[:4], rtol=1e-5)
    assert list(named.index) == ["w", "x", "y", "z"]


def test_string_ids_and_tables_passed_by_the_caller(renamed):
    data, ids, fit = renamed
    names = np.array([f"item-{i}" for i in range(M)])
    other = EmbeddingTable(names, data.items)
    p = fit.predict_proba(user=data.user_ids[:2], item_a=["item-0", "item-1"],
                          item_b=["item-2", "item-3"], items=other, seed=0)
    q = fit.predict_proba(user=data.user_ids[:2], item_a=ids[[0, 1]], item_b=ids[[2, 3]], seed=0)
    np.testing.assert_allclose(p, q, rtol=1e-6)
    with pytest.raises(ValueError, match="item_b: got 'nope'; expected an id of the table"):
        fit.predict_proba(user=data.user_ids[:1], item_a=["item-0"], item_b=["nope"],
                          items=other)
    with pytest.raises(ValueError, match="items: got 3 columns; expected 16"):
        fit.item_table(pd.DataFrame(np.zeros((2, 3)), index=["a", "b"]))
    nu = NewUser(fit, items=other).observe("item-4", "item-9", 1)
    assert nu.n_answers()[0] == 1


def test_prompts_are_named_by_id():
    syn = synthetic_prompted(n_users=30, n_train=20, n_test=0, seed=0)
    data = syn.data
    names = np.array([f"prompt-{i}" for i in range(len(data.prompt_ids))])
    renamed = PreferenceData.from_arrays(
        data.user_ids[data.user], data.item_ids[data.item_a], data.item_ids[data.item_b],
        data.label, data.items, item_ids=data.item_ids, user_ids=data.user_ids,
        prompt=names[data.prompt], prompts=data.prompts, prompt_ids=names)
    fit = bayespal.fit(renamed, k=2, pref_dim=4, prompt_dim=2, hidden=(16,), epochs=10,
                       validation_fraction=0, seed=0, progress=False)
    first = renamed.subset(np.arange(len(renamed)) < 20)
    p = fit.predict_proba(user=first.user_ids[first.user], item_a=first.item_ids[first.item_a],
                          item_b=first.item_ids[first.item_b], prompt=names[first.prompt],
                          seed=0)
    np.testing.assert_allclose(p, fit.predict_proba(first, seed=0), rtol=1e-6)
    nu = NewUser(fit).observe(first.item_ids[first.item_a[:3]], first.item_ids[first.item_b[:3]],
                              [1, 0, 1], prompt=names[first.prompt[:3]])
    with pytest.raises(ValueError, match="prompt: got 0; expected an id of the table"):
        nu.observe(first.item_ids[0], first.item_ids[1], 1, prompt=0)
