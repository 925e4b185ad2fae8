"""Predictive metrics for pairwise preferences."""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def accuracy(prob: np.ndarray, label: np.ndarray) -> float:
    """Share of comparisons where ``prob > 0.5`` agrees with ``label`` (1 = a preferred).

    Parameters
    ----------
    prob:
        Predicted P(a preferred).
    label:
        Observed labels (1 = a).
    """
    return float(((np.asarray(prob) > 0.5) == (np.asarray(label) == 1)).mean())


def log_loss(prob: np.ndarray, label: np.ndarray) -> float:
    """Mean negative log-likelihood, probabilities clipped to ``[1e-6, 1 - 1e-6]``.

    Parameters
    ----------
    prob:
        Predicted P(a preferred).
    label:
        Observed labels (1 = a).
    """
    p = np.clip(np.asarray(prob, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(label)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def expected_calibration_error(prob: np.ndarray, label: np.ndarray, n_bins: int = 10) -> float:
    """ECE of ``P(a preferred)`` with equal-width bins: ``sum_b n_b/N |mean(y) - mean(p)|``.

    Parameters
    ----------
    prob:
        Predicted P(a preferred).
    label:
        Observed labels (1 = a).
    n_bins:
        Equal-width probability bins.
    """
    p, y = np.asarray(prob, dtype=np.float64), np.asarray(label, dtype=np.float64)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    gap = np.abs(np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins))
    return float(gap.sum() / len(p))
