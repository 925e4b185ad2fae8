"""PAL's evaluation protocol: seen-user accuracy, and unseen-user accuracy after n
few-shot answers, each with log-loss and expected calibration error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayespal.data import PreferenceData
from bayespal.metrics import accuracy, expected_calibration_error, log_loss
from bayespal.users import place_users

SHOTS = (1, 2, 5, 10, 20, 50)


def _metrics(prob: np.ndarray, label: np.ndarray) -> dict:
    return {
        "comparisons": len(label),
        "accuracy": accuracy(prob, label),
        "log_loss": log_loss(prob, label),
        "ece": expected_calibration_error(prob, label),
    }


def fewshot_split(data: PreferenceData, n_test: int, seed: int = 0
                  ) -> tuple[PreferenceData, np.ndarray, PreferenceData]:
    """Per user: ``n_test`` random answers for testing, the rest a shot pool in random
    order (an answer: a comparison, or the choices of one ranking,
    ``PreferenceData.question``). Returns ``(pool, rank_in_pool, test)``; shots ``n`` are
    ``pool.subset(rank < n)``.

    Parameters
    ----------
    data:
        The unseen users' comparisons.
    n_test:
        Test answers per user.
    seed:
        Seeds the random order.
    """
    counts = data.answers_per_user()
    if (counts <= n_test).any():
        i = int(np.flatnonzero(counts <= n_test)[0])
        raise ValueError(f"user {data.user_ids[i]!r}: got {counts[i]} answers; expected more "
                         f"than n_test={n_test}")
    rank = data.rank_within_users(np.random.default_rng(seed))
    is_test = rank < n_test[()] if np.ndim(n_test) else rank < n_test
    return data.subset(~is_test), (rank - n_test)[~is_test], data.subset(is_test)


def evaluate_fewshot(
    fit,
    unseen: PreferenceData,
    *,
    seen_test: PreferenceData | None = None,
    shots: Sequence[int] = SHOTS,
    n_test: int = 10,
    method: str = "bayes",
    seed: int = 0,
    **placement,
) -> pd.DataFrame:
    """The PAL protocol as one table: a ``seen`` row (held-out comparisons of training
    users, if given) and an ``unseen`` row per ``n`` in ``shots``. All unseen users are
    placed at once per ``n`` (``method``: ``"bayes"`` posterior or ``"point"``, the
    reference's estimate); users with fewer than ``n`` pool comparisons sit that row out,
    and ``users`` says how many took part.

    Parameters
    ----------
    fit:
        A fitted posterior.
    unseen:
        Comparisons of users not in training.
    seen_test:
        Held-out comparisons of training users (optional).
    shots:
        Numbers of answers n to place users from.
    n_test:
        Test comparisons per unseen user.
    method:
        'bayes' (posterior) or 'point' (the reference).
    seed:
        Seeds the split and the placement.
    **placement:
        Options of the placement class.
    """
    unseen.require_pairs("evaluate_fewshot (it scores held-out pairs)")
    rows = []
    if seen_test is not None:
        graded = fit.levels > 2  # score every level's probability
        p = fit.predict_outcomes(seen_test) if graded else fit.predict_proba(seen_test)
        rows.append({"group": "seen", "n_shots": np.nan, "users": seen_test.n_users,
                     **_metrics(p, seen_test.label)})
    pool, rank, test = fewshot_split(unseen, n_test, seed)
    pool_counts = pd.Series(pool.answers_per_user(), index=pool.user_ids)
    for n in shots:
        eligible = pool_counts.index[pool_counts.to_numpy() >= n]
        if len(eligible) == 0:
            continue
        shot = pool.subset((rank < n) & np.isin(pool.user_ids[pool.user], eligible))
        held = test.subset(np.isin(test.user_ids[test.user], eligible))
        placed = place_users(fit, shot, method=method, seed=seed, **placement)
        predict = placed.predict_outcomes if fit.levels > 2 else placed.predict_proba
        p = predict(held.user_ids[held.user], held.item_a, held.item_b, held.prompt, rows=True)
        rows.append({"group": "unseen", "n_shots": n, "users": len(eligible),
                     **_metrics(p, held.label)})
    table = pd.DataFrame(rows)
    table.attrs["method"] = method
    return table
