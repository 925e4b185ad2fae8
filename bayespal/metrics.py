"""Predictive metrics for pairwise preferences.

Each takes either ``P(a preferred)`` per comparison, ``(n,)``, or, for answers on a scale of
``L`` ordered levels (ties, graded strength), every level's probability ``(n, L)`` (as
``Posterior.predict_outcomes`` gives them); labels are grades divided by ``L - 1`` (1 = a
preferred, 0.5 = a tie).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def expected_label(prob: np.ndarray) -> np.ndarray:
    """The expected label of each comparison: ``prob`` itself for ``(n,)``, the mean of
    the grid ``0, 1/(L-1), ..., 1`` under each row for ``(n, L)`` (a tie counts half).

    Parameters
    ----------
    prob:
        ``(n,)`` P(a preferred) or ``(n, L)`` level probabilities.
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim == 1:
        return p
    return p @ np.linspace(0.0, 1.0, p.shape[1])


def _levels(prob: np.ndarray, label: np.ndarray) -> np.ndarray:
    """The observed level of each label on ``prob``'s scale of ``L`` levels."""
    n_levels = prob.shape[1]
    level = np.rint(np.asarray(label, dtype=np.float64) * (n_levels - 1)).astype(np.int64)
    if level.min(initial=0) < 0 or level.max(initial=0) >= n_levels:
        raise ValueError(f"label: got values outside [0, 1]; expected grades / {n_levels - 1}")
    return level


def accuracy(prob: np.ndarray, label: np.ndarray) -> float:
    """Share of decided comparisons (label != 0.5, i.e. not a tie) where the predicted side
    (expected label > 0.5) agrees with the label's (1 = a preferred).

    Parameters
    ----------
    prob:
        Predicted P(a preferred) ``(n,)`` or level probabilities ``(n, L)``.
    label:
        Observed labels (1 = a).
    """
    y = np.asarray(label, dtype=np.float64)
    decided = y != 0.5
    if not decided.any():
        return float("nan")
    score = expected_label(prob)[decided]
    return float(((score > 0.5) == (y[decided] > 0.5)).mean())


def answer_nll(prob: np.ndarray, label: np.ndarray, choices: bool = False) -> np.ndarray:
    """Each answer's negative log-likelihood ``(n,)``, probabilities clipped to ``[1e-6,
    1]`` (``(n,)``: also to ``1 - 1e-6``): what ``log_loss`` and ``choice_log_loss``
    average.

    Parameters
    ----------
    prob:
        Predicted P(a preferred) ``(n,)``, level probabilities ``(n, L)``, or with
        ``choices`` each item's probability of being chosen ``(n, 2 + m)``.
    label:
        Observed labels (1 = a; with ``choices``: 1 item_a chosen, 0 item_b).
    choices:
        ``prob`` is over the items of a set (``(item_b, item_a, others)``).
    """
    if choices:
        p, y = _chosen(prob, label)
        return -np.log(np.clip(p[np.arange(len(p)), y], EPS, 1))
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim == 2:
        return -np.log(np.clip(p[np.arange(len(p)), _levels(p, label)], EPS, 1))
    p = np.clip(p, EPS, 1 - EPS)
    y = np.asarray(label, dtype=np.float64)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def log_loss(prob: np.ndarray, label: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels, probabilities clipped to ``[1e-6, 1]``
    (``(n,)``: also to ``1 - 1e-6``).

    Parameters
    ----------
    prob:
        Predicted P(a preferred) ``(n,)`` or level probabilities ``(n, L)``.
    label:
        Observed labels (1 = a).
    """
    return float(np.mean(answer_nll(prob, label)))


def expected_calibration_error(prob: np.ndarray, label: np.ndarray, n_bins: int = 10) -> float:
    """ECE with equal-width bins, ``sum_b n_b/N |mean(y) - mean(p)|``: of ``P(a preferred)``
    for ``(n,)``; for level probabilities ``(n, L)`` the mean over levels of each level's
    one-against-the-rest ECE (``tie_calibration`` gives the tie's alone).

    Parameters
    ----------
    prob:
        Predicted P(a preferred) ``(n,)`` or level probabilities ``(n, L)``.
    label:
        Observed labels (1 = a).
    n_bins:
        Equal-width probability bins.
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim == 2:
        level = _levels(p, label)
        return float(np.mean([_ece(p[:, j], (level == j).astype(np.float64), n_bins)
                              for j in range(p.shape[1])]))
    return _ece(p, np.asarray(label, dtype=np.float64), n_bins)


def tie_calibration(prob: np.ndarray, label: np.ndarray, n_bins: int = 10) -> float:
    """The ECE of the predicted tie probability (the middle level of an odd scale, label
    0.5) against the observed ties.

    Parameters
    ----------
    prob:
        ``(n, L)`` level probabilities, ``L`` odd.
    label:
        Observed labels.
    n_bins:
        Equal-width probability bins.
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] % 2 == 0:
        raise ValueError(f"prob: got shape {p.shape}; expected (n, L) level probabilities "
                         "with an odd L (a middle level: the tie)")
    tie = (_levels(p, label) == p.shape[1] // 2).astype(np.float64)
    return _ece(p[:, p.shape[1] // 2], tie, n_bins)


def _ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    gap = np.abs(np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins))
    return float(gap.sum() / len(p))


def _chosen(prob: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(label)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] != len(y):
        raise ValueError(f"prob: got shape {p.shape}; expected (n, 2 + m) choice "
                         f"probabilities (item_b, item_a, others) for {len(y)} labels")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("label: got values other than 0 and 1; expected which of item_b (0) "
                         "and item_a (1) was chosen")
    return p, y.astype(np.int64)


def choice_log_loss(prob: np.ndarray, label: np.ndarray) -> float:
    """Mean negative log-probability of the chosen item of choices from sets (pairs
    included), probabilities clipped below at 1e-6.

    Parameters
    ----------
    prob:
        ``(n, 2 + m)`` each item's probability of being chosen in the order ``(item_b,
        item_a, others)`` (``Posterior.predict_outcomes`` of data with ``others``).
    label:
        Observed labels (1: item_a chosen, 0: item_b).
    """
    return float(np.mean(answer_nll(prob, label, choices=True)))


def choice_accuracy(prob: np.ndarray, label: np.ndarray) -> float:
    """Share of choices where the most probable item is the one chosen.

    Parameters
    ----------
    prob, label:
        As for ``choice_log_loss``.
    """
    p, y = _chosen(prob, label)
    return float((p.argmax(1) == y).mean())


def choice_calibration(prob: np.ndarray, label: np.ndarray, shown: np.ndarray | None = None,
                       n_bins: int = 10) -> float:
    """Expected calibration error of choices from sets, one-vs-rest: every item shown, its
    predicted probability of being chosen against whether it was (10 equal-width bins; for
    pairs the binary ECE of ``P(a)`` and ``P(b)`` together).

    Parameters
    ----------
    prob, label:
        As for ``choice_log_loss``.
    shown:
        ``(n, 2 + m)`` which slots hold an item (padding of sets smaller than the widest
        is left out); default: all.
    n_bins:
        Bins of the predicted probability.
    """
    p, y = _chosen(prob, label)
    mask = np.ones(p.shape, dtype=bool) if shown is None else np.asarray(shown, dtype=bool)
    if mask.shape != p.shape:
        raise ValueError(f"shown: got shape {mask.shape}; expected {p.shape}, one per slot")
    hit = np.zeros(p.shape)
    hit[np.arange(len(p)), y] = 1.0
    return _ece(p[mask], hit[mask], n_bins)
