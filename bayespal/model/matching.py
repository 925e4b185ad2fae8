"""Prototype matching (label switching): the one place prototypes of two fits, or of a fit
and the truth, are put in correspondence."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def match_prototypes(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The permutation ``perm`` with ``other``'s prototype ``perm[j]`` matching
    ``reference``'s prototype ``j``.

    An optimal assignment on the correlation of the prototypes' profiles, each centred over
    its entries and across prototypes (every prototype's rewards share ``-||f(x)||^2``;
    weights share that they sum to one: what tells prototypes apart is how each deviates
    from the others).

    Parameters
    ----------
    reference, other:
        ``(K, n)`` and ``(K', n)``: one row per prototype over the same ``n`` entries, e.g.
        the users' weights (transposed) or the prototypes' rewards of items.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` integers; with ``K' > K`` the extra prototypes of ``other`` are left out, with
        ``K' < K`` unmatched reference prototypes get -1.
    """
    a, b = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"other: got shape {b.shape}; expected (K', {a.shape[-1]}), profiles "
                         f"over the same entries as reference {a.shape}")
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    a, b = a - a.mean(0), b - b.mean(0)
    na = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    nb = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    rows, cols = linear_sum_assignment(-(na @ nb.T))
    perm = np.full(len(a), -1)
    perm[rows] = cols
    return perm
