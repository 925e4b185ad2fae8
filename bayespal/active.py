"""Active query selection: which comparison to ask a new user next.

Acquisition functions score candidate pairs ``(a, b)`` for one user's posterior
(:class:`~bayespal.newuser.NewUsers`), using equally weighted posterior draws
``(w_j, population_j)`` and ``p_j = P(a > b | w_j)``:

- ``"information_gain"`` (BALD): the mutual information between the answer and ``w``,
  ``H[mean_j p_j] - mean_j H[p_j]``. Near zero when the posterior already knows the
  answer (every draw agrees), and also when the answer is a coin flip for every draw.
- ``"uncertainty"``: the predictive entropy ``H[mean_j p_j]``: asks where the user's answer
  is least predictable, even if the noise is irreducible.
- ``"random"``: uniform scores (the baseline).

``suggest(..., n > 1)`` picks a batch greedily and skips candidates whose answers are
nearly the same function of ``w`` as an already chosen one (correlation of ``p_j``
across draws above ``max_correlation``), so a batch does not ask one question twice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from bayespal.newuser import NewUsers

STRATEGIES = ("information_gain", "uncertainty", "random")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def _draw_probs(posterior: NewUsers, user, item_a, item_b, num_draws: int,
                prompt=None) -> torch.Tensor:
    """``p_j(c)`` for equally weighted draws ``j`` of one user: ``(num_draws, C)``."""
    pos = posterior._positions([user])[0]
    a = posterior._rows("item_a", item_a)
    b = posterior._rows("item_b", item_b)
    c = posterior._prompt_rows(prompt, len(a))
    w, pop = posterior.draws(num_draws, seed=int(posterior.n_answers()[pos]))
    w, pop = w[pos : pos + 1], pop[pos : pos + 1]  # (1, J, K), (1, J)
    return torch.sigmoid(posterior.pop.logits(w, pop, a[None], b[None], c[None]))[0]


@torch.no_grad()
def score(
    posterior: NewUsers,
    item_a,
    item_b,
    strategy: str = "information_gain",
    *,
    user=None,
    prompt=None,
    num_draws: int = 512,
    seed: int = 0,
) -> np.ndarray:
    """Acquisition scores of candidate pairs (rows of the posterior's item table) for
    ``user`` (default: the posterior's only user). Higher is more worth asking. PAL-B:
    ``prompt`` gives each candidate's prompt row (a candidate is a prompt and two answers)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: got {strategy!r}; expected one of {STRATEGIES}")
    user = _single_user(posterior, user)
    a = posterior._rows("item_a", item_a)
    b = posterior._rows("item_b", item_b)
    if len(a) != len(b):
        raise ValueError(f"item_b: got length {len(b)}; expected {len(a)}, the length of item_a")
    if (a == b).any():
        row = int(torch.nonzero(a == b)[0, 0])
        raise ValueError(f"candidates: got the pair ({int(a[row])}, {int(b[row])}) at row {row}; "
                         "expected two different items (a user cannot compare an item with "
                         "itself)")
    n = len(a)
    if strategy == "random":
        return np.random.default_rng(seed).random(n)
    p = _draw_probs(posterior, user, np.atleast_1d(item_a), np.atleast_1d(item_b), num_draws,
                    None if prompt is None else np.atleast_1d(prompt))
    predictive = _entropy(p.mean(0))
    if strategy == "uncertainty":
        return predictive.numpy()
    return (predictive - _entropy(p).mean(0)).clamp_min(0).numpy()


def _single_user(posterior: NewUsers, user):
    if user is None:
        if len(posterior.ids) != 1:
            raise ValueError(f"user: got None; expected one of {list(posterior.ids[:5])}... "
                             "(this posterior holds several users)")
        return posterior.ids[0]
    return user


@torch.no_grad()
def suggest(
    posterior: NewUsers,
    candidates,
    n: int = 1,
    strategy: str = "information_gain",
    *,
    user=None,
    max_correlation: float = 0.95,
    num_draws: int = 512,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``n`` best next questions among ``candidates`` (an ``(C, 2)`` array of item rows,
    or a DataFrame with ``item_a``, ``item_b``), best first, with their scores. PAL-B: a
    ``(C, 3)`` array ``(item_a, item_b, prompt)`` or a DataFrame with a ``prompt`` column.

    For ``n > 1`` candidates whose per-draw answer probabilities correlate above
    ``max_correlation`` (in absolute value) with an already chosen one are skipped.
    """
    cols = ["item_a", "item_b"] + (["prompt"] if posterior.pop.prompted else [])
    if isinstance(candidates, pd.DataFrame):
        for col in cols:
            if col not in candidates.columns:
                raise ValueError(f"candidates: got columns {list(candidates.columns)}; "
                                 f"expected a column named {col!r}")
        pairs = candidates[cols].to_numpy()
    else:
        pairs = np.asarray(candidates)
    width = len(cols)
    if pairs.ndim != 2 or pairs.shape[1] != width or len(pairs) == 0:
        what = "(item_a, item_b, prompt) rows" if width == 3 else "item rows"
        raise ValueError(f"candidates: got shape {pairs.shape}; expected (C, {width}) {what}, "
                         "C >= 1")
    prompt = pairs[:, 2] if width == 3 else None
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: got {n!r}; expected a positive integer")
    user = _single_user(posterior, user)
    s = score(posterior, pairs[:, 0], pairs[:, 1], strategy, user=user, prompt=prompt,
              num_draws=num_draws, seed=seed)
    order = np.argsort(-s, kind="stable")
    chosen = [int(order[0])]
    if n > 1 and strategy != "random":
        p = _draw_probs(posterior, user, pairs[:, 0], pairs[:, 1], num_draws, prompt)
        z = p - p.mean(0)
        z = z / z.norm(dim=0).clamp_min(1e-9)  # unit columns: z_c . z_c' is a correlation
        too_close = torch.zeros(len(pairs), dtype=torch.bool)
        too_close[chosen[0]] = True
        too_close |= (z.T @ z[:, chosen[0]]).abs() > max_correlation
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
    return pd.DataFrame({**out, "score": s[chosen]},
                        index=pd.RangeIndex(len(chosen), name="rank"))
