"""PAL's evaluation protocol: seen-user accuracy, and unseen-user accuracy after n
few-shot answers, each with log-loss and expected calibration error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayespal.data import PreferenceData
from bayespal.metrics import (
    accuracy,
    choice_accuracy,
    choice_calibration,
    choice_log_loss,
    expected_calibration_error,
    expected_label,
    log_loss,
)
from bayespal.posterior import Posterior
from bayespal.users import NewUserPosteriors, place_users

SHOTS = (1, 2, 5, 10, 20, 50)


def predict_answers(posterior: Posterior | NewUserPosteriors, data: PreferenceData
                    ) -> np.ndarray:
    """The probabilities answers are scored by: ``P(a preferred)`` ``(n,)`` of binary
    pairs, every level's ``(n, L)`` of graded answers, each item's ``(n, 2 + m)`` of
    choices from sets (``data.others``).

    Parameters
    ----------
    posterior:
        A fitted posterior, or placed new users (``place_users``; then ``data``'s users
        are theirs and its items and prompts are rows of the fit's tables).
    data:
        The answers.
    """
    if isinstance(posterior, NewUserPosteriors):
        levels = posterior.pop.draws.levels
        args = (data.user_ids[data.user], data.item_a, data.item_b, data.prompt)
        if data.others is not None:
            return posterior.predict_outcomes(*args, others=data.others, rows=True)
        if levels > 2:
            return posterior.predict_outcomes(*args, rows=True)
        return posterior.predict_proba(*args, rows=True)
    if data.others is not None or posterior.levels > 2:
        return posterior.predict_outcomes(data)
    return posterior.predict_proba(data)


def answer_metrics(prob: np.ndarray, data: PreferenceData) -> dict:
    """``comparisons``, ``accuracy``, ``log_loss`` and ``ece`` (10 bins) of predictions
    ``prob`` from ``predict_answers``; of choices from sets their categorical versions
    (``choice_accuracy``, ``choice_log_loss``, ``choice_calibration``).

    Parameters
    ----------
    prob:
        As ``predict_answers`` returns.
    data:
        The answers predicted.
    """
    label = data.label
    if data.others is not None:
        return {"comparisons": len(label), "accuracy": choice_accuracy(prob, label),
                "log_loss": choice_log_loss(prob, label),
                "ece": choice_calibration(prob, label, _shown(data))}
    return {
        "comparisons": len(label),
        "accuracy": accuracy(prob, label),
        "log_loss": log_loss(prob, label),
        "ece": expected_calibration_error(prob, label),
    }


def reliability_points(prob: np.ndarray, data: PreferenceData) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted, observed)`` pairs a reliability diagram bins: ``P(a)`` (graded: the
    expected label) against the label; for choices from sets every item shown, its
    probability of being chosen against whether it was (one-vs-rest).

    Parameters
    ----------
    prob:
        As ``predict_answers`` returns.
    data:
        The answers predicted.
    """
    if data.others is None:
        return expected_label(prob), data.label
    hit = np.zeros(prob.shape)
    hit[np.arange(len(prob)), data.label.astype(np.int64)] = 1.0
    shown = _shown(data)
    return prob[shown], hit[shown]


def _shown(data: PreferenceData) -> np.ndarray:
    """Which slots of ``(item_b, item_a, others)`` hold an item, ``(n, 2 + m)``."""
    return np.column_stack([np.ones((data.n_comparisons, 2), dtype=bool), data.others >= 0])


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
    reference's estimate); users with fewer than ``n`` pool answers sit that row out,
    and ``users`` says how many took part. ``n`` counts answers: with rankings
    (``PreferenceData.question``) n whole rankings, scored per choice by the categorical
    metrics (``choice_accuracy``, ``choice_log_loss``, ``choice_calibration``).

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
    rows = []
    if seen_test is not None:
        rows.append({"group": "seen", "n_shots": np.nan, "users": seen_test.n_users,
                     **answer_metrics(predict_answers(fit, seen_test), seen_test)})
    pool, rank, test = fewshot_split(unseen, n_test, seed)
    pool_counts = pd.Series(pool.answers_per_user(), index=pool.user_ids)
    for n in shots:
        eligible = pool_counts.index[pool_counts.to_numpy() >= n]
        if len(eligible) == 0:
            continue
        shot = pool.subset((rank < n) & np.isin(pool.user_ids[pool.user], eligible))
        held = test.subset(np.isin(test.user_ids[test.user], eligible))
        placed = place_users(fit, shot, method=method, seed=seed, **placement)
        rows.append({"group": "unseen", "n_shots": n, "users": len(eligible),
                     **answer_metrics(predict_answers(placed, held), held)})
    table = pd.DataFrame(rows)
    table.attrs["method"] = method
    return table
