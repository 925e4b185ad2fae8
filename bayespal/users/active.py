"""Active query selection: which comparison to ask a new user next.

Acquisition functions value candidate pairs ``(a, b)`` for one user's posterior
(``NewUserPosteriors``), using equally weighted posterior draws ``j``
and ``p_j = P(answer | draw j)`` (``draw_probs``; binary: ``P(a > b)``, with ties or
graded strength the probability of every level, entropies taken over the levels):

- ``"information_gain"`` (BALD): the mutual information between the answer and ``w``,
  ``H[mean_j p_j] - mean_j H[p_j]``. Near zero when the posterior already knows the
  answer (every draw agrees), and also when the answer is a coin flip for every draw.
- ``"uncertainty"``: the predictive entropy ``H[mean_j p_j]``: asks where the user's answer
  is least predictable, even if the noise is irreducible.
- ``"random"``: uniform values (the baseline).

``suggest(..., n > 1)`` picks a batch greedily and skips candidates whose answers are
nearly the same function of ``w`` as an already chosen one (correlation of ``p_j``
across draws above ``max_correlation``), so a batch does not ask one question twice.

Questions over sets (``suggest_set``): show ``size`` items and ask for the best
(``kind="best_of"``) or for their order (``"ranking"``); the same strategies value the
answer's distribution over the ``size`` choices or the ``size!`` orders
(``NewUserPosteriors.draw_set_probs``). A set is built greedily from a pool: the best pair
of a sample of pool pairs, then the pool item that adds the most, until it has ``size``
items. ``per_item`` divides a question's value by the items it asks a person to read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from bayespal.users.newuser import SET_KINDS, NewUserPosteriors

STRATEGIES = ("information_gain", "uncertainty", "random")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """The entropy of answers whose levels have probabilities ``p (..., L)``."""
    p = p.clamp_min(1e-7)
    return -(p * p.log()).sum(-1)


def _expected(p: torch.Tensor) -> torch.Tensor:
    """The expected label ``(...)`` of level probabilities ``(..., L)``."""
    return p @ torch.linspace(0, 1, p.shape[-1], dtype=p.dtype)


def _single_user(posterior: NewUserPosteriors, user):
    if user is None:
        if len(posterior.ids) != 1:
            raise ValueError(f"user: got None; expected one of {list(posterior.ids[:5])}... "
                             "(this posterior holds several users)")
        return posterior.ids[0]
    return user


@torch.no_grad()
def acquisition(posterior: NewUserPosteriors, item_a, item_b,
                strategy: str = "information_gain", *, user=None, prompt=None,
                num_draws: int = 512, seed: int = 0, rows: bool = False) -> np.ndarray:
    """The acquisition value of candidate pairs: higher is more worth asking.

    Parameters
    ----------
    posterior:
        New users' posteriors.
    item_a, item_b:
        The candidates as item ids (two different items each).
    strategy:
        One of ``STRATEGIES`` (see the module docstring).
    user:
        Whose next question (default: the posterior's only user).
    prompt:
        PAL-B: each candidate's prompt id (a candidate is a prompt and two answers).
    num_draws:
        Posterior draws the values are computed from.
    seed:
        Seeds the ``"random"`` strategy.
    rows:
        Items and prompts are given as row numbers of the posterior's tables, not ids.
    """
    _check_strategy(strategy)
    user = _single_user(posterior, user)
    p = posterior.draw_probs(user, np.atleast_1d(item_a), np.atleast_1d(item_b),
                             None if prompt is None else np.atleast_1d(prompt), num_draws,
                             rows=rows, outcomes=True)
    return _values(p, strategy, seed)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: got {strategy!r}; expected one of {STRATEGIES}")


def _values(p: torch.Tensor, strategy: str, seed: int) -> np.ndarray:
    """Acquisition values of candidates from their per-draw level probabilities ``p (J, C,
    L)``."""
    if strategy == "random":
        return np.random.default_rng(seed).random(p.shape[1])
    predictive = _entropy(p.mean(0))
    if strategy == "uncertainty":
        return predictive.numpy()
    return (predictive - _entropy(p).mean(0)).clamp_min(0).numpy()


def _candidates(candidates) -> tuple[np.ndarray, np.ndarray | None]:
    """``(pairs (C, 2), prompts (C,) or None)`` from an array or a DataFrame."""
    if isinstance(candidates, pd.DataFrame):
        for col in ("item_a", "item_b"):
            if col not in candidates.columns:
                raise ValueError(f"candidates: got columns {list(candidates.columns)}; "
                                 f"expected a column named {col!r}")
        pairs = candidates[["item_a", "item_b"]].to_numpy()
        prompt = candidates["prompt"].to_numpy() if "prompt" in candidates.columns else None
    else:
        arr = np.asarray(candidates)
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise ValueError(f"candidates: got shape {arr.shape}; expected (C, 2) item ids or "
                             "(C, 3) (item_a, item_b, prompt) ids, C >= 1")
        pairs, prompt = arr[:, :2], (arr[:, 2] if arr.shape[1] == 3 else None)
    if len(pairs) == 0:
        raise ValueError("candidates: got none; expected at least one candidate pair")
    return pairs, prompt


@torch.no_grad()
def suggest(posterior: NewUserPosteriors, candidates, n: int = 1,
            strategy: str = "information_gain", *, user=None, max_correlation: float = 0.95,
            num_draws: int = 512, seed: int = 0, rows: bool = False, kind: str = "pair",
            size: int = 4, prompt=None) -> pd.DataFrame:
    """The ``n`` best next questions among ``candidates``, best first, with their values.

    Parameters
    ----------
    posterior:
        New users' posteriors.
    candidates:
        An ``(C, 2)`` array of item ids, or ``(C, 3)`` with each candidate's prompt id
        (PAL-B), or a DataFrame with ``item_a``, ``item_b`` (and ``prompt``) columns. For
        set questions (``kind`` other than ``"pair"``): a pool of item ids ``(M,)``.
    kind:
        ``"pair"`` (which of two), or a question over ``size`` items: ``"best_of"`` or
        ``"ranking"`` (``suggest_set``; ``n`` sets of distinct items, one after another).
    size:
        Items per set question.
    prompt:
        PAL-B set questions: the prompt id the pool's answers are for (pairs carry their
        prompts in ``candidates``).
    n:
        How many questions.
    strategy:
        One of ``STRATEGIES``.
    user:
        Whose next questions (default: the posterior's only user).
    max_correlation:
        For ``n > 1``, candidates whose per-draw answer probabilities (expected labels)
        correlate above it (in absolute value) with an already chosen one are skipped.
    num_draws, seed, rows:
        As for ``acquisition``.

    Returns
    -------
    pandas.DataFrame
        A DataFrame with ``item_a``, ``item_b`` (``prompt``), named as the candidates were (ids,
        or rows with ``rows=True``), and ``acquisition``, indexed by rank; for set questions
        as ``suggest_set``, one row per set.
    """
    if kind != "pair":
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: got {n!r}; expected a positive integer")
        pool = np.asarray(candidates, dtype=None if rows else object).reshape(-1)
        out = []
        for _ in range(n):  # n sets, each of items the earlier ones did not use
            row = suggest_set(posterior, pool, size, kind, strategy, user=user, prompt=prompt,
                              num_draws=num_draws, seed=seed, rows=rows)
            used = row.iloc[0, :size].to_numpy()
            pool = pool[~pd.Index(pool).isin(used)]
            out.append(row)
        return pd.concat(out, ignore_index=True).rename_axis("rank")
    if prompt is not None:
        raise ValueError(f"prompt: got {prompt!r} with kind='pair'; expected None (pair "
                         "candidates carry their prompts: (C, 3) or a 'prompt' column)")
    pairs, prompt = _candidates(candidates)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: got {n!r}; expected a positive integer")
    _check_strategy(strategy)
    user = _single_user(posterior, user)
    p = posterior.draw_probs(user, pairs[:, 0], pairs[:, 1], prompt, num_draws, rows=rows,
                             outcomes=True)
    value = _values(p, strategy, seed)
    p = _expected(p)  # (J, C): what the answers' correlation is taken of
    order = np.argsort(-value, kind="stable")
    chosen = [int(order[0])]
    if n > 1 and strategy != "random":
        z = p - p.mean(0)
        z = z / z.norm(dim=0).clamp_min(1e-9)  # unit columns: z_c . z_c' is a correlation
        too_close = (z.T @ z[:, chosen[0]]).abs() > max_correlation
        too_close[chosen[0]] = True
        for c in order[1:]:
            if len(chosen) == n:
                break
            if too_close[c]:
                continue
            chosen.append(int(c))
            too_close |= (z.T @ z[:, int(c)]).abs() > max_correlation
    elif n > 1:
        chosen = [int(c) for c in order[:n]]
    out = {"item_a": pairs[chosen, 0], "item_b": pairs[chosen, 1]}
    if prompt is not None:
        out["prompt"] = prompt[chosen]
    return pd.DataFrame({**out, "acquisition": value[chosen]},
                        index=pd.RangeIndex(len(chosen), name="rank"))


@torch.no_grad()
def set_acquisition(posterior: NewUserPosteriors, sets, kind: str = "best_of",
                    strategy: str = "information_gain", *, user=None, prompt=None,
                    num_draws: int = 512, seed: int = 0, rows: bool = False) -> np.ndarray:
    """The acquisition value of showing candidate sets of items ``(C, n)``: higher is more
    worth asking (``kind`` and the values as for ``suggest_set``).

    Parameters
    ----------
    posterior:
        New users' posteriors.
    sets:
        ``(C, n)`` item ids (distinct within a set).
    kind:
        ``"best_of"`` (which item is best) or ``"ranking"`` (their order).
    strategy, user, num_draws, seed, rows:
        As for ``acquisition``.
    prompt:
        PAL-B: each set's prompt id ``(C,)``, or one id for every set.
    """
    _check_strategy(strategy)
    user = _single_user(posterior, user)
    if prompt is not None and np.ndim(prompt) == 0:
        prompt = np.repeat(np.asarray([prompt], dtype=None if rows else object), len(sets))
    p = posterior.draw_set_probs(user, sets, kind, num_draws, seed=0, prompt=prompt, rows=rows)
    return _values(p, strategy, seed)


@torch.no_grad()
def suggest_set(posterior: NewUserPosteriors, pool, size: int = 4, kind: str = "best_of",
                strategy: str = "information_gain", *, user=None, prompt=None,
                max_pairs: int = 2000, num_draws: int = 512, seed: int = 0,
                rows: bool = False) -> pd.DataFrame:
    """The next set question for a user: ``size`` items of ``pool`` to show, asking for the
    best (``kind="best_of"``) or for their order (``"ranking"``), built greedily: the best of
    ``max_pairs`` pool pairs (all of them when there are fewer), then, while the set is
    smaller than ``size``, the pool item whose addition makes the most valuable set.

    Parameters
    ----------
    posterior:
        New users' posteriors.
    pool:
        ``(M,)`` candidate item ids (rows, with ``rows``), at least ``size``.
    size:
        Items per question (``>= 2``; at most 6 for rankings).
    kind:
        ``"best_of"`` or ``"ranking"``.
    strategy:
        One of ``STRATEGIES`` (``"random"``: a random set of the pool).
    user:
        Whose next question (default: the posterior's only user).
    prompt:
        PAL-B: the question's prompt id (required there; the pool holds its answers).
    max_pairs:
        Pool pairs tried for the first two items.
    num_draws, seed, rows:
        As for ``acquisition`` (``seed`` also draws the pairs tried).

    Returns
    -------
    pandas.DataFrame
        One row: ``item_1 .. item_size`` (in the order chosen), ``prompt`` (PAL-B),
        ``acquisition`` (the set's value; for ``"random"`` its information gain) and
        ``per_item`` (the value per item read).
    """
    if prompt is not None and np.ndim(prompt) != 0:
        raise ValueError(f"prompt: got an array of shape {np.shape(prompt)}; expected one "
                         "prompt id, the question's")
    if kind not in SET_KINDS:
        raise ValueError(f"kind: got {kind!r}; expected one of {SET_KINDS}")
    _check_strategy(strategy)
    items = np.asarray(pool, dtype=None if rows else object).reshape(-1)
    if not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size: got {size!r}; expected an integer >= 2")
    if len(pd.unique(items)) != len(items) or len(items) < size:
        raise ValueError(f"pool: got {len(items)} items ({len(pd.unique(items))} distinct); "
                         f"expected at least size={size} distinct items")
    user = _single_user(posterior, user)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        chosen = list(rng.choice(len(items), size, replace=False))
    else:
        m = len(items)
        i, j = np.triu_indices(m, 1)
        if len(i) > max_pairs:
            pick = rng.choice(len(i), max_pairs, replace=False)
            i, j = i[pick], j[pick]
        pairs = np.stack([items[i], items[j]], 1)
        value = set_acquisition(posterior, pairs, kind, strategy, user=user, prompt=prompt,
                                num_draws=num_draws, rows=rows)
        best = int(np.argmax(value))
        chosen = [int(i[best]), int(j[best])]
        while len(chosen) < size:
            rest = np.setdiff1d(np.arange(m), chosen)
            sets = np.concatenate([np.repeat(items[chosen][None], len(rest), 0),
                                   items[rest][:, None]], 1)
            value = set_acquisition(posterior, sets, kind, strategy, user=user,
                                    prompt=prompt, num_draws=num_draws, rows=rows)
            chosen.append(int(rest[int(np.argmax(value))]))
    final = set_acquisition(posterior, items[chosen][None], kind,
                            "information_gain" if strategy == "random" else strategy,
                            user=user, prompt=prompt, num_draws=num_draws, rows=rows)[0]
    out = {f"item_{t + 1}": [items[c]] for t, c in enumerate(chosen)}
    if prompt is not None and posterior.pop.takes_prompts:
        out["prompt"] = [prompt]
    return pd.DataFrame({**out, "acquisition": [final], "per_item": [final / size]},
                        index=pd.RangeIndex(1, name="rank"))
