import numpy as np
import pandas as pd
import pytest

from bayespal import DataError, PreferenceData


def make(**over):
    kw = dict(
        user=["u1", "u1", "u2", "u3"],
        item_a=["x", "y", "x", "z"],
        item_b=["y", "z", "z", "x"],
        label=[1, 0, 1, 1],
        items=np.eye(3, dtype=np.float32),
        item_ids=["x", "y", "z"],
    )
    kw.update(over)
    return PreferenceData.from_arrays(**kw)


def test_ids_are_mapped_and_kept():
    d = make()
    assert d.n_users == 3 and d.n_items == 3 and len(d) == 4
    assert list(d.user_ids) == ["u1", "u2", "u3"]
    frame = d.to_frame()
    assert list(frame["item_a"]) == ["x", "y", "x", "z"]
    assert list(frame["label"]) == [1, 0, 1, 1]


def test_from_frame_and_dataframe_items():
    items = pd.DataFrame(np.eye(3), index=["x", "y", "z"])
    df = pd.DataFrame({"who": ["a", "b"], "item_a": ["x", "y"], "item_b": ["z", "x"],
                       "label": [True, False]})
    d = PreferenceData.from_frame(df, items, user="who")
    assert list(d.label) == [1.0, 0.0]
    with pytest.raises(DataError, match="a column named 'user'"):
        PreferenceData.from_frame(df, items)


@pytest.mark.parametrize(
    "over, pattern",
    [
        (dict(items=np.array([[0, np.nan, 0], [0, 1, 0], [0, 0, 1]])), r"items\[0, 1\]: got nan"),
        (dict(items=np.array([[0, np.inf, 0], [0, 1, 0], [0, 0, 1]])), r"items\[0, 1\]: got inf"),
        (dict(items=np.ones(3)), "items: got 'array of shape \\(3,\\)'"),
        (dict(item_ids=["x", "y"]), "item_ids: got '2 ids'"),
        (dict(item_ids=["x", "x", "z"]), "unique item ids"),
        (dict(item_b=["y", "z", "q", "x"]), "item_b: got 'q'; expected an id present"),
        (dict(label=[1, 0, 2, 1]), r"label\[2\]: got 2; expected 0 or 1"),
        (dict(label=[1, 0, 0.5, 1]), r"label\[2\]: got 0.5"),
        (dict(label=[1, 0, 1]), "label: got 'array of shape \\(3,\\)'"),
        (dict(item_a=["x", "y", "x"]), "item_a: got 'length 3'; expected length 4"),
        (dict(user=[], item_a=[], item_b=[], label=[]), "at least one comparison"),
        (dict(item_b=["y", "z", "x", "x"]), r"item_b\[2\]: got 'x'; expected an item other than"),
    ],
)
def test_validation_errors_name_field_value_expectation(over, pattern):
    with pytest.raises(DataError, match=pattern):
        make(**over)


def test_split_comparisons_within_users(rng):
    n_users, per = 20, 10
    user = np.repeat(np.arange(n_users), per)
    a = rng.integers(0, 50, user.size)
    b = (a + 1) % 50
    d = PreferenceData.from_arrays(user, a, b, rng.integers(0, 2, user.size), rng.normal(size=(50, 4)))
    train, test = d.split_comparisons(test_per_user=3, seed=1)
    assert len(train) == 140 and len(test) == 60
    assert (train.comparisons_per_user() == 7).all() and (test.comparisons_per_user() == 3).all()
    # Nothing is lost or duplicated: the union of the splits is the data.
    def rows(x):
        return sorted(map(tuple, x.to_frame().itertuples(index=False)))

    assert sorted(rows(train) + rows(test)) == rows(d)
    with pytest.raises(DataError, match="user 0: got '10 answers'; expected more than"):
        d.split_comparisons(test_per_user=10)


def test_split_users_and_subset_compacts_users(rng):
    user = np.repeat(np.arange(10), 4)
    d = PreferenceData.from_arrays(user, np.zeros(40, int), np.ones(40, int),
                                   rng.integers(0, 2, 40), rng.normal(size=(2, 3)))
    seen, unseen = d.split_users(0.3, seed=0)
    assert seen.n_users == 7 and unseen.n_users == 3
    assert not set(seen.user_ids) & set(unseen.user_ids)
    with pytest.raises(DataError, match="user: got 99; expected a user with at least one"):
        seen.require_users([99])
    with pytest.raises(DataError, match="unseen_fraction"):
        d.split_users(1.5)


class _HashEmbedder:
    """A deterministic stand-in for a text embedder: counts calls and texts embedded."""

    def __init__(self, dim: int = 6):
        self.dim, self.calls = dim, []

    def __call__(self, texts):
        self.calls.append(list(texts))
        seeds = [sum(map(ord, t)) for t in texts]
        return np.stack([np.random.default_rng(s).normal(size=self.dim) for s in seeds])


def _pairs_frame():
    return pd.DataFrame({
        "user": ["ann", "ann", "bob", "bob", "cy"],
        "prompt": ["p1", "p1", "p2", "p1", "p2"],
        "chosen": ["A", "B", "A", "C", "D"],
        "rejected": ["B", "C", "D", "A", "B"],
    })


def test_from_pairs_deduplicates_and_keeps_who_chose_what():
    emb = _HashEmbedder()
    d = PreferenceData.from_pairs(_pairs_frame(), emb, seed=3)
    assert d.meta["texts"] == ["A", "B", "C", "D"] and list(d.item_ids) == [0, 1, 2, 3]
    assert emb.calls == [["A", "B", "C", "D"]]  # every response embedded once
    texts = np.array(d.meta["texts"])
    winner = np.where(d.label == 1, texts[d.item_a], texts[d.item_b])
    loser = np.where(d.label == 1, texts[d.item_b], texts[d.item_a])
    assert list(winner) == ["A", "B", "A", "C", "D"] and list(loser) == ["B", "C", "D", "A", "B"]
    assert 0 < d.label.mean() < 1  # the chosen response is not always shown first
    assert list(d.user_ids[d.user]) == ["ann", "ann", "bob", "bob", "cy"]
    assert d.prompts is None


def test_from_pairs_with_prompts_and_a_dataset_like_object():
    class Dataset:  # what bayespal reads of a datasets.Dataset
        column_names = ["user", "prompt", "chosen", "rejected"]

        def to_pandas(self):
            return _pairs_frame()

    emb, pemb = _HashEmbedder(), _HashEmbedder(dim=3)
    d = PreferenceData.from_pairs(Dataset(), emb, prompt="prompt", prompt_embedder=pemb)
    assert d.meta["prompt_texts"] == ["p1", "p2"] and d.prompts.shape == (2, 3)
    assert list(np.array(d.meta["prompt_texts"])[d.prompt]) == ["p1", "p1", "p2", "p1", "p2"]
    datasets = pytest.importorskip("datasets")
    real = PreferenceData.from_pairs(datasets.Dataset.from_pandas(_pairs_frame()), emb)
    assert real.n_comparisons == 5


@pytest.mark.parametrize("column, value, pattern", [
    ("chosen", None, r"chosen\[2\]: got (None|nan); expected a non-empty text"),
    ("rejected", "  ", r"rejected\[2\]: got '  '; expected a non-empty text"),
    ("chosen", "D", "an item compared with itself|item_b"),
])
def test_from_pairs_refuses_bad_rows(column, value, pattern):
    frame = _pairs_frame()
    frame.loc[2, column] = value
    with pytest.raises(DataError, match=pattern):
        PreferenceData.from_pairs(frame, _HashEmbedder())
    with pytest.raises(DataError, match="a column named 'answer'"):
        PreferenceData.from_pairs(_pairs_frame(), _HashEmbedder(), chosen="answer")
    with pytest.raises(DataError, match="frame: got 'a list'; expected a pandas DataFrame"):
        PreferenceData.from_pairs([1, 2], _HashEmbedder())
