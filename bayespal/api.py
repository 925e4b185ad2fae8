"""``bayespal.fit``: one fit of a given number of prototypes
(``bayespal.posterior.fit``), or with ``k="auto"`` the number chosen from the data
(``bayespal.analysis.selection.select_k``). It sits above both layers it joins."""

from __future__ import annotations

from bayespal.analysis.selection import DEFAULT_KS, select_k
from bayespal.checks import fail
from bayespal.data import PreferenceData
from bayespal.posterior import Posterior
from bayespal.posterior import fit as fit_k


def fit(data: PreferenceData, k: int | str | None = None, **options) -> Posterior:
    """Fit PAL to preference data and return its posterior.

    ``k`` is the number of prototypes, or ``"auto"``: choose it from the data with
    ``select_k`` (candidates ``ks=``, default 1-5) and return the chosen fit,
    whose ``k_selection`` holds the evidence per K. Everything else is
    ``bayespal.posterior.fit``'s (the model and how it is fitted; the self-tuning
    defaults; ensembles, validation, checkpoints, ranks).

    Parameters
    ----------
    data:
        The training comparisons.
    k:
        The number of prototypes, or ``"auto"``.
    **options:
        Arguments of bayespal.posterior.fit (and ``ks``, ``unseen_fraction``, ``shots``
        of select_k with ``k="auto"``).

    Returns
    -------
    FittedPAL or EnsemblePAL
        ``FittedPAL``, or ``EnsemblePAL`` for ``ensemble > 1``.
    """
    if isinstance(k, str):
        if k != "auto":
            raise fail("k", k, "a positive integer, None (the default 3) or 'auto'")
        ks = options.pop("ks", DEFAULT_KS)
        return select_k(data, ks, **options).fit
    for name in ("ks", "unseen_fraction", "shots"):
        if name in options:
            raise fail(name, options[name], "no such option unless k='auto'")
    return fit_k(data, k, **options)
