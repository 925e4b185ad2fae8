"""MovieLens ml-latest-small: pairwise preferences (or rankings) from ratings.

Source: GroupLens, ml-latest-small (September 2018), research licence (no commercial
use; redistribution under the same terms): 610 users, 9,742 movies, 100,836 ratings.
Items are movies, as the text ``"Title (year): Genre, Genre"``. A comparison is two
movies one user rated differently; the higher-rated one is preferred (with ``ties=True``
also two movies rated the same, as a tie). Per user at most
``per_user`` comparisons are drawn (seeded), each movie pair once, in random order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayespal.data import PreferenceData


@dataclass(frozen=True, eq=False)
class MovieLensPreferences:
    """MovieLens ratings as comparisons.

    Attributes
    ----------
    data:
        The comparisons (label 1: item_a rated higher).
    texts:
        Each movie's text (title and genres), in ``data.item_ids`` order.
    """
    data: PreferenceData
    texts: list[str]  # by item id (movieId order of data.item_ids)


def movie_texts(movies: pd.DataFrame) -> pd.Series:
    """``"Toy Story (1995): Adventure, Animation, ..."`` by movieId.

    Parameters
    ----------
    movies:
        movies.csv as a DataFrame (movieId, title, genres).
    """
    genres = movies.genres.str.replace("|", ", ", regex=False).replace("(no genres listed)", "")
    text = movies.title.str.strip() + np.where(genres != "", ": " + genres, "")
    return pd.Series(text.to_numpy(), index=movies.movieId.to_numpy())


def movielens(folder: str | Path, embed: Callable[[Sequence[str]], np.ndarray],
              per_user: int = 60, min_ratings: int = 20, seed: int = 0,
              ties: bool = False) -> MovieLensPreferences:
    """Comparisons from ``ratings.csv``; ``embed`` maps movie texts to ``(n, D)``. Users
    with fewer than ``min_ratings`` ratings are skipped.

    Parameters
    ----------
    folder:
        A MovieLens folder with ratings.csv and movies.csv.
    embed:
        Texts -> (n, D) embeddings, e.g. a TextEmbedder.
    per_user:
        Comparisons drawn per user.
    min_ratings:
        Users with fewer ratings are skipped.
    seed:
        Seeds the pairs.
    ties:
        Keep pairs of movies a user rated the same, as ties: the data then have
        ``levels=3`` (label 0.5: a tie). Default: only pairs rated differently.
    """
    folder = Path(folder)
    for name in ("ratings.csv", "movies.csv"):
        if not (folder / name).exists():
            raise ValueError(f"folder: got {str(folder)!r}; expected {name} in it")
    ratings = pd.read_csv(folder / "ratings.csv")
    texts = movie_texts(pd.read_csv(folder / "movies.csv"))
    rng = np.random.default_rng(seed)
    counts = ratings.userId.value_counts()
    ratings = ratings[ratings.userId.isin(counts.index[counts >= min_ratings])]
    # vectorised sampling: for each user, random pairs of their ratings
    ratings = ratings.sort_values(["userId", "movieId"]).reset_index(drop=True)
    starts = ratings.groupby("userId").indices
    users, a_idx, b_idx = [], [], []
    user_ids = np.fromiter(starts.keys(), dtype=np.int64)
    sizes = np.array([len(starts[u]) for u in user_ids])
    firsts = np.array([starts[u][0] for u in user_ids])
    draws = 4 * per_user  # oversample, then keep pairs with different ratings (or, with
    # ties, any two different ratings of the user)
    i = rng.integers(0, sizes[:, None], (len(user_ids), draws)) + firsts[:, None]
    j = rng.integers(0, sizes[:, None], (len(user_ids), draws)) + firsts[:, None]
    r = ratings.rating.to_numpy()
    ok = (i != j) if ties else (r[i] != r[j])
    for row in range(len(user_ids)):  # at most per_user distinct pairs per user
        pairs = pd.DataFrame({"i": i[row][ok[row]], "j": j[row][ok[row]]})
        pairs = pairs.assign(lo=pairs.min(axis=1), hi=pairs.max(axis=1)).drop_duplicates(["lo", "hi"])
        pairs = pairs.head(per_user)
        users.append(np.full(len(pairs), user_ids[row]))
        a_idx.append(pairs.i.to_numpy())
        b_idx.append(pairs.j.to_numpy())
    a_idx, b_idx = np.concatenate(a_idx), np.concatenate(b_idx)
    movie = ratings.movieId.to_numpy()
    used = np.unique(np.concatenate([movie[a_idx], movie[b_idx]]))
    items = embed(texts.loc[used].tolist())
    label = np.where(r[a_idx] == r[b_idx], 0.5, (r[a_idx] > r[b_idx]).astype(float))
    data = PreferenceData.from_arrays(np.concatenate(users), movie[a_idx], movie[b_idx], label,
                                      items, item_ids=used, levels=3 if ties else 2)
    return MovieLensPreferences(data, texts.loc[used].tolist())


@dataclass(frozen=True, eq=False)
class MovieLensRankings:
    """MovieLens ratings as rankings, the same ratings as pairs, and held-out pairs.

    Attributes
    ----------
    rankings:
        Each user's groups of ``set_size`` rated movies ranked by their stars (equal stars
        tie), as choices (``PreferenceData.from_rankings``).
    pairs:
        The same groups binarised: every two movies of a group rated differently.
    test:
        Held-out pairs: two of a user's held-out movies rated differently.
    texts:
        Each movie's text, in ``item_ids`` order.
    """
    rankings: PreferenceData
    pairs: PreferenceData
    test: PreferenceData
    texts: list[str]


def movielens_rankings(folder: str | Path, embed: Callable[[Sequence[str]], np.ndarray],
                       set_size: int = 5, per_user: int = 12, held_out: int = 10,
                       min_ratings: int = 20, seed: int = 0) -> MovieLensRankings:
    """Per user: ``held_out`` random ratings held out (their differently rated pairs are
    ``test``), the next ``per_user * set_size`` random ratings in groups of ``set_size``,
    each group a ranking by stars with ties (Breslow) and, for comparison, the same groups
    as pairs. Users with fewer than ``min_ratings`` ratings are skipped; a user with too few
    ratings for ``per_user`` groups gives as many whole groups as they have.

    Parameters
    ----------
    folder:
        A MovieLens folder with ratings.csv and movies.csv.
    embed:
        Texts -> (n, D) embeddings.
    set_size:
        Movies per ranking.
    per_user:
        Rankings per user (at most).
    held_out:
        Held-out ratings per user.
    min_ratings:
        Users with fewer ratings are skipped (at least ``held_out + set_size``).
    seed:
        Seeds the split, the groups and the layout of the choices.
    """
    folder = Path(folder)
    for name in ("ratings.csv", "movies.csv"):
        if not (folder / name).exists():
            raise ValueError(f"folder: got {str(folder)!r}; expected {name} in it")
    if set_size < 2 or held_out < 2 or min_ratings < held_out + set_size:
        raise ValueError(f"set_size, held_out, min_ratings: got {set_size}, {held_out}, "
                         f"{min_ratings}; expected set_size >= 2, held_out >= 2 and "
                         "min_ratings >= held_out + set_size")
    ratings = pd.read_csv(folder / "ratings.csv")
    texts = movie_texts(pd.read_csv(folder / "movies.csv"))
    rng = np.random.default_rng(seed)
    counts = ratings.userId.value_counts()
    ratings = ratings[ratings.userId.isin(counts.index[counts >= min_ratings])]
    user, movie = ratings.userId.to_numpy(), ratings.movieId.to_numpy()
    stars = ratings.rating.to_numpy()
    order = np.lexsort((rng.random(len(user)), user))  # each user's ratings shuffled
    user, movie, stars = user[order], movie[order], stars[order]
    first = np.r_[0, np.flatnonzero(np.diff(user)) + 1]
    rank = np.arange(len(user)) - np.repeat(first, np.diff(np.r_[first, len(user)]))
    # held-out pairs: every two held-out ratings of a user, rated differently
    test = rank < held_out
    tu, tm, ts = user[test].reshape(-1, held_out), movie[test].reshape(-1, held_out), \
        stars[test].reshape(-1, held_out)
    i, j = np.triu_indices(held_out, 1)
    keep = ts[:, i] != ts[:, j]
    t_user = tu[:, i][keep]
    t_a, t_b = tm[:, i][keep], tm[:, j][keep]
    t_label = (ts[:, i] > ts[:, j])[keep].astype(np.int64)
    # the rankings: whole groups of set_size after the held-out ratings
    group = (rank - held_out) // set_size
    train = ~test & (group < per_user)
    full = pd.Series(group[train]).groupby([user[train], group[train]]).transform("size")
    train[np.flatnonzero(train)[full.to_numpy() < set_size]] = False
    gu = user[train].reshape(-1, set_size)[:, 0]
    gm, gs = movie[train].reshape(-1, set_size), stars[train].reshape(-1, set_size)
    ranks = 1 + (gs[:, None, :] > gs[:, :, None]).sum(-1)  # competition ranks: ties share
    used = np.unique(np.concatenate([gm.reshape(-1), t_a, t_b]))
    items = embed(texts.loc[used].tolist())
    rankings = PreferenceData.from_rankings(gu, gm.tolist(), ranks.tolist(), items, used,
                                            seed=seed)
    i, j = np.triu_indices(set_size, 1)
    keep = gs[:, i] != gs[:, j]
    swap = rng.random(int(keep.sum())) < 0.5
    pa, pb = gm[:, i][keep], gm[:, j][keep]
    label = (gs[:, i] > gs[:, j])[keep]
    pairs = PreferenceData.from_arrays(
        np.repeat(gu[:, None], len(i), 1)[keep], np.where(swap, pb, pa), np.where(swap, pa, pb),
        np.where(swap, ~label, label).astype(np.int64), items, used)
    test_data = PreferenceData.from_arrays(t_user, t_a, t_b, t_label, items, used)
    return MovieLensRankings(rankings, pairs, test_data, texts.loc[used].tolist())
