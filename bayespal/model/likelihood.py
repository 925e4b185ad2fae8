"""The PAL logit and the prototypes' rewards: the only place either formula is written.

An item ``x`` mapped to ``f = f(x)`` has, for a point ``p`` of the preference space (a
prototype or a user's ideal point), the reward ``r_p(x) = 2 p . f - ||f||^2``, i.e.
``-||f - p||^2`` up to a constant of ``p``. A comparison of ``a`` with ``b`` has the logit
``beta * (r_z(a) - r_z(b))`` for the user's ideal point ``z = sum_k w_k p_k``; because the
reward is linear in ``p`` and ``sum_k w_k = 1``, that is ``w . diff`` with the per-prototype
terms ``diff_k = beta * (r_k(a) - r_k(b))`` (``pair_terms``), so every consumer
(training, predictions, new users, queries, rewards, diagnostics) contracts the same
terms with the weights (``mixture_logits``).

An optional item effect ``e(x)`` (a residual reward per item, shared by every prototype:
what the embedding does not explain about how much everyone likes the item) adds to every
prototype's reward, ``r_k(x) + e(x)``, so the logit gains ``beta * (e(a) - e(b))``.

PAL-B's prototypes depend on the prompt, ``g_k(c) = P_k + L_k phi(c)``
(``prompt_prototypes``). With its optional cosine metric the logit is
``beta * (cos(f_a, z) - cos(f_b, z))`` = ``w . diff / sqrt(w^T G w)`` with ``G = g g^T``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rewards(points: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``r_p(x) = 2 p . f(x) - ||f(x)||^2`` of items for points of the preference space.

    Parameters
    ----------
    points:
        ``(..., J, d)``: prototypes (``J = K``) or ideal points.
    features:
        ``(M, d)`` mapped items, shared by all points, or ``(..., M, d)``.

    Returns
    -------
    torch.Tensor
        ``(..., J, M)``.
    """
    return 2 * points @ features.transpose(-1, -2) - features.pow(2).sum(-1).unsqueeze(-2)


def paired_rewards(points: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``r_{p_i}(x_i) = 2 p_i . f(x_i) - ||f(x_i)||^2``: each point with its own item, row by
    row (``rewards`` scores every point against every item).

    Parameters
    ----------
    points:
        ``(..., n, d)`` ideal points (``n = 1`` broadcasts one point over the items).
    features:
        ``(n, d)`` mapped items.

    Returns
    -------
    torch.Tensor
        ``(..., n)``.
    """
    return 2 * (points * features).sum(-1) - features.pow(2).sum(-1)


def reward_gap(points: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor,
               per_comparison: bool = False) -> torch.Tensor:
    """``r_p(a) - r_p(b)`` for comparisons, without forming either reward.

    Parameters
    ----------
    points:
        ``(..., J, d)`` shared by all comparisons or, with ``per_comparison``,
        ``(..., B, J, d)``: each comparison's own points (PAL-B's prompt prototypes).
    fa, fb:
        ``(B, d)`` or ``(..., B, d)`` mapped items of the comparisons.

    Returns
    -------
    torch.Tensor
        ``(..., B, J)``.
    """
    delta = fa - fb
    if per_comparison:
        inner = torch.einsum("...bjd,...bd->...bj", points, delta)
    else:
        inner = delta @ points.transpose(-1, -2)
    return 2 * inner - (fa.pow(2).sum(-1) - fb.pow(2).sum(-1)).unsqueeze(-1)


def prompt_prototypes(prototypes: torch.Tensor, loadings: torch.Tensor, pc: torch.Tensor
                      ) -> torch.Tensor:
    """PAL-B's prototypes for prompts, ``g_k(c) = P_k + L_k phi(c)``.

    Parameters
    ----------
    prototypes:
        ``(..., K, d)`` base prototypes ``P``.
    loadings:
        ``(..., K, d, q)`` prompt loadings ``L``.
    pc:
        ``(B, q)`` (or ``(..., B, q)``) prompt features ``phi(c)``.

    Returns
    -------
    torch.Tensor
        ``(..., B, K, d)``.
    """
    return prototypes.unsqueeze(-3) + torch.einsum("...kdq,...bq->...bkd", loadings, pc)


def pair_terms(prototypes: torch.Tensor, sharpness: torch.Tensor, fa: torch.Tensor,
               fb: torch.Tensor, *, loadings: torch.Tensor | None = None,
               pc: torch.Tensor | None = None, metric: str = "distance",
               position_bias: torch.Tensor | float = 0.0,
               offset: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The per-prototype terms of comparisons' logits, from which the logit of any weights
    follows (``mixture_logits``).

    Parameters
    ----------
    prototypes:
        ``(..., K, d)``.
    sharpness:
        ``(...)``.
    fa, fb:
        ``(B, d)`` or ``(..., B, d)``: the comparisons' mapped items.
    loadings, pc:
        PAL-B: the loadings ``(..., K, d, q)`` and the comparisons' prompt features
        ``(B, q)`` or ``(..., B, q)``; both None for PAL-A.
    metric:
        ``"distance"``: ``diff_k = beta * (r_k(a) - r_k(b))`` and ``gram = None`` (the logit
        ``w . diff`` is linear in ``w``). ``"cosine"``: ``diff_k = beta * (a/|a| - b/|b|) .
        g_k`` and ``gram = g g^T`` ``(..., B or 1, K, K)``.
    position_bias:
        ``(...)`` or a number, added to every ``diff_k`` (the weights sum to one, so it adds
        to the logit).
    offset:
        ``(..., B)``: the items' effects ``e(a) - e(b)`` (reward units, shared by every
        prototype), added to every prototype's reward gap; None: none. Distance metric only.

    Returns
    -------
    tuple
        ``diff (..., B, K)`` and ``gram`` (None for the distance metric).
    """
    if (loadings is None) != (pc is None):
        raise ValueError(f"prompt: got {'no ' if pc is None else ''}prompt features for a "
                         f"{'PAL-B' if loadings is not None else 'PAL-A'} population; expected "
                         "each comparison's prompt for PAL-B, none for PAL-A")
    points, per_comparison = prototypes, False
    if loadings is not None:
        points, per_comparison = prompt_prototypes(prototypes, loadings, pc), True
    beta = sharpness[..., None, None]
    bias = position_bias[..., None, None] if torch.is_tensor(position_bias) else position_bias
    if metric == "distance":
        gap = reward_gap(points, fa, fb, per_comparison)
        if offset is not None:
            gap = gap + offset.unsqueeze(-1)
        return beta * gap + bias, None
    if offset is not None:
        raise ValueError("offset: got item effects with the cosine metric; expected none "
                         "(item effects are rewards, which the cosine score does not have)")
    fa, fb = F.normalize(fa, dim=-1), F.normalize(fb, dim=-1)
    delta = fa - fb
    if per_comparison:
        lin = torch.einsum("...bkd,...bd->...bk", points, delta)
    else:
        lin = delta @ points.transpose(-1, -2)
    gram = points @ points.transpose(-1, -2)
    return beta * lin, gram if per_comparison else gram.unsqueeze(-3)


def mixture_logits(weights: torch.Tensor, diff: torch.Tensor, gram: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Logits ``w . diff`` (cosine: ``/ sqrt(w^T gram w)``) from ``pair_terms``.

    Parameters
    ----------
    weights:
        Mixture weights broadcastable to ``diff (..., K)``.
    diff, gram:
        From ``pair_terms``.
    """
    num = (weights * diff).sum(-1)
    if gram is None:
        return num
    quad = ((weights.unsqueeze(-1) * gram).sum(-2) * weights).sum(-1)
    return num / quad.clamp_min(1e-12).sqrt()


def point_rewards(prototypes: torch.Tensor, features: torch.Tensor, *,
                  loadings: torch.Tensor | None = None, pc: torch.Tensor | None = None,
                  metric: str = "distance", effects: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Each prototype's reward of items (what a user made of prototype ``k`` alone scores).

    Parameters
    ----------
    prototypes:
        ``(..., K, d)``.
    features:
        ``(M, d)`` mapped items.
    loadings, pc:
        PAL-B: loadings ``(..., K, d, q)`` and the features of one prompt ``(1, q)``.
    metric:
        ``"distance"``: ``rewards``; ``"cosine"``: ``cos(f(x), g_k)``.
    effects:
        ``(..., M)``: the items' effects, added to every prototype's reward (distance
        metric only); None: none.

    Returns
    -------
    torch.Tensor
        ``(..., K, M)``.
    """
    points = prototypes
    if loadings is not None:
        points = prompt_prototypes(prototypes, loadings, pc)[..., 0, :, :]
    if metric == "cosine":
        return F.normalize(points, dim=-1) @ F.normalize(features, dim=-1).T
    r = rewards(points, features)
    return r if effects is None else r + effects.unsqueeze(-2)


def mixture_rewards(weights: torch.Tensor, prototypes: torch.Tensor, features: torch.Tensor,
                    *, loadings: torch.Tensor | None = None, pc: torch.Tensor | None = None,
                    metric: str = "distance", effects: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """A user's reward of items: the reward of their ideal point ``z = sum_k w_k g_k``.

    With the distance metric this is ``sum_k w_k r_k(x)`` (the reward is linear in the
    point); with the cosine metric ``cos(f(x), z)``. Times the sharpness, differences are
    the logits of comparisons.

    Parameters
    ----------
    weights:
        ``(..., K)``.
    prototypes:
        ``(..., K, d)``.
    features:
        ``(M, d)`` or ``(..., M, d)`` mapped items.
    loadings, pc, metric, effects:
        As for ``point_rewards``.

    Returns
    -------
    torch.Tensor
        ``(..., M)``.
    """
    points = prototypes
    if loadings is not None:
        points = prompt_prototypes(prototypes, loadings, pc)[..., 0, :, :]
    z = (weights.unsqueeze(-1) * points).sum(-2, keepdim=True)  # (..., 1, d)
    if metric == "cosine":
        return (F.normalize(z, dim=-1) @ F.normalize(features, dim=-1).transpose(-1, -2))[..., 0, :]
    r = rewards(z, features)[..., 0, :]
    return r if effects is None else r + effects


# -- what is observed of a comparison: its outcome on an ordered scale ------------------
#
# A comparison's answer is one of ``L`` ordered levels, ``0`` (b preferred, most strongly)
# to ``L - 1`` (a preferred, most strongly): ``L = 2`` is the binary choice, ``L = 3`` adds
# a tie in the middle, larger ``L`` grade how strongly. The levels are an ordered logistic
# model of the logit ``l``: ``P(level >= j) = sigmoid(l - c_{j-1})`` with cutpoints
# ``c_0 < ... < c_{L-2}``, symmetric about 0 (swapping a and b mirrors the scale; a
# preference for the first item shown is the position term's job). Binary: ``c = (0,)``,
# ``P(a) = sigmoid(l)``. Ties: ``c = (-t, t)``, the Rao-Kupper model. A label is the level
# divided by ``L - 1``, in ``[0, 1]``, so 1 means "a preferred" and 0.5 "a tie" on every
# scale, and the expected label (``expected_score``, a tie counting half) is ``P(a)`` for
# binary answers.


def cutpoint_count(levels: int) -> int:
    """How many free cutpoint gaps a symmetric scale of ``levels`` outcomes has."""
    return (levels - 1) // 2


def cutpoints(gaps: torch.Tensor | None, levels: int) -> torch.Tensor:
    """The symmetric cutpoints ``(..., L - 1)`` from positive gaps ``(..., H)``,
    ``H = cutpoint_count(L)``: the positive cutpoints are ``cumsum(gaps)`` (with a middle
    cutpoint 0 when ``L`` is even).

    Parameters
    ----------
    gaps:
        ``(..., H)`` positive gaps; None for binary answers (``L = 2``: one cutpoint 0).
    levels:
        The number of outcomes ``L >= 2``.
    """
    if gaps is None:
        if levels != 2:
            raise ValueError(f"gaps: got None with levels={levels}; expected "
                             f"{cutpoint_count(levels)} cutpoint gaps")
        return torch.zeros(1)
    upper = gaps.cumsum(-1)
    middle = [torch.zeros_like(upper[..., :1])] if levels % 2 == 0 else []
    return torch.cat([-upper.flip(-1), *middle, upper], -1)


def outcome_bounds(level: torch.Tensor, cuts: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cutpoints ``(lo, hi)`` around each observed level, ``-inf``/``+inf`` at the ends
    of the scale; a level of ``-1`` (padding: no answer) gets ``(-inf, +inf)``, whose
    probability is 1.

    Parameters
    ----------
    level:
        ``(..., n)`` observed levels ``0 .. L-1`` (long), ``-1`` for padding.
    cuts:
        ``(..., L - 1)`` cutpoints broadcastable with ``level``'s leading dims.
    """
    inf = torch.full_like(cuts[..., :1], float("inf"))
    ext = torch.cat([-inf, cuts, inf], -1)  # (..., L + 1)
    n_levels = cuts.shape[-1] + 1
    pad = level < 0
    lo_idx = torch.where(pad, 0, level)
    hi_idx = torch.where(pad, n_levels, level + 1)
    shape = torch.broadcast_shapes(ext.shape[:-1], level.shape[:-1])
    ext = ext.expand(*shape, ext.shape[-1])
    return (ext.gather(-1, lo_idx.expand(*shape, level.shape[-1])),
            ext.gather(-1, hi_idx.expand(*shape, level.shape[-1])))


def outcome_log_prob(logits: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``log P(observed level | logit)`` = ``log(sigmoid(hi - l) - sigmoid(lo - l))``,
    computed without cancellation as ``log sigmoid(hi - l) + log sigmoid(l - lo) +
    log(1 - exp(lo - hi))``.

    Parameters
    ----------
    logits:
        ``(...)`` the comparisons' logits.
    lo, hi:
        ``(...)`` from ``outcome_bounds``.
    """
    gap = torch.log(-torch.expm1(lo - hi))
    return F.logsigmoid(hi - logits) + F.logsigmoid(logits - lo) + gap


def outcome_slopes(logits: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first derivative of ``outcome_log_prob`` in the logit and minus its second
    (``>= 0``: the ordered logistic is log-concave in ``l``).

    Parameters
    ----------
    logits, lo, hi:
        As for ``outcome_log_prob``.
    """
    below, above = torch.sigmoid(lo - logits), torch.sigmoid(logits - hi)
    return below - above, below * (1 - below) + above * (1 - above)


def outcome_probs(logits: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """``P(level = j)`` ``(..., L)`` of comparisons with logits ``(...)``.

    Parameters
    ----------
    logits:
        ``(...)``.
    cuts:
        ``(L - 1,)`` or ``(..., L - 1)`` broadcastable with ``logits``.
    """
    at_least = torch.sigmoid(logits.unsqueeze(-1) - cuts)  # P(level >= j), j = 1..L-1
    one = torch.ones_like(at_least[..., :1])
    upper = torch.cat([one, at_least], -1)
    lower = torch.cat([at_least, torch.zeros_like(one)], -1)
    return (upper - lower).clamp_min(0)


def expected_score(logits: torch.Tensor, cuts: torch.Tensor | None = None) -> torch.Tensor:
    """The expected label ``E[level / (L - 1)]`` (a tie counts half): the mean over the
    cutpoints of ``sigmoid(l - c)``; ``P(a preferred)`` for binary answers (``cuts``
    None).

    Parameters
    ----------
    logits:
        ``(...)``.
    cuts:
        ``(L - 1,)`` or ``(..., L - 1)``; None: binary.
    """
    if cuts is None:
        return torch.sigmoid(logits)
    return torch.sigmoid(logits.unsqueeze(-1) - cuts).mean(-1)


# -- choices from larger sets (best-of-n, the stages of a ranking) ------------------------
#
# A comparison with further items ``o_1 .. o_m`` (``PreferenceData.others``) is a choice of
# item a (label 1) or item b (label 0) from the whole set: a multinomial logit of the
# user's utilities ``u(x) = beta * sum_k w_k r_k(x)``, so with ``l = u(a) - u(b)`` (the
# pair's logit, ``mixture_logits``) and ``t_j = u(o_j) - u(b)`` (``choice_terms``)
# ``log P(a) = l - log(1 + e^l + sum_j e^{t_j})``. With no further items this is the
# Bernoulli of ``l``. A ranking is a product of such choices (Plackett-Luce,
# ``bayespal.data.ranking_stages``).


def choice_terms(prototypes: torch.Tensor, sharpness: torch.Tensor, fo: torch.Tensor,
                 fb: torch.Tensor, *, loadings: torch.Tensor | None = None,
                 pc: torch.Tensor | None = None, metric: str = "distance",
                 offset: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The per-prototype terms of ``u(o_j) - u(b)`` for each further item of a choice:
    ``pair_terms`` of ``(o_j, b)`` without the position term.

    Parameters
    ----------
    prototypes, sharpness, loadings, metric:
        As for ``pair_terms``.
    fo:
        ``(..., B, m, d)`` the further items' features.
    fb:
        ``(..., B, d)`` item b's features.
    pc:
        PAL-B: ``(..., B, q)`` the comparisons' prompt features.
    offset:
        ``(..., B, m)`` the items' effects ``e(o_j) - e(b)``; None: none.

    Returns
    -------
    tuple
        ``diff (..., B, m, K)`` and ``gram`` (None for the distance metric; else
        broadcastable to ``(..., B, m, K, K)``).
    """
    b, m = fo.shape[-3], fo.shape[-2]

    def flat(t: torch.Tensor) -> torch.Tensor:  # (..., B, m, x) -> (..., B * m, x)
        return t.reshape(*t.shape[:-3], b * m, t.shape[-1])

    def spread(t: torch.Tensor) -> torch.Tensor:  # (..., B, x) -> (..., B * m, x)
        return flat(t.unsqueeze(-2).expand(*t.shape[:-1], m, t.shape[-1]))

    diff, gram = pair_terms(prototypes, sharpness, flat(fo), spread(fb), loadings=loadings,
                            pc=None if pc is None else spread(pc), metric=metric,
                            offset=None if offset is None else offset.reshape(
                                *offset.shape[:-2], b * m))
    diff = diff.reshape(*diff.shape[:-2], b, m, diff.shape[-1])
    if gram is not None:
        gram = (gram.unsqueeze(-3) if gram.shape[-3] == 1
                else gram.reshape(*gram.shape[:-3], b, m, *gram.shape[-2:]))
    return diff, gram


def choice_logits(weights: torch.Tensor, logits: torch.Tensor, diff: torch.Tensor,
                  gram: torch.Tensor | None, others: torch.Tensor) -> torch.Tensor:
    """The utilities of every item of a choice relative to item b, ``(..., B, 2 + m)`` in
    the order ``(b, a, o_1, ..., o_m)`` (``-inf`` where ``others`` pads): the logits of a
    categorical whose value is the label (0: b chosen, 1: a).

    Parameters
    ----------
    weights:
        ``(..., B, K)`` the users' weights.
    logits:
        ``(..., B)`` the pairs' logits ``u(a) - u(b)``.
    diff, gram:
        From ``choice_terms``.
    others:
        ``(B, m)`` the further items (``-1``: none).
    """
    t = mixture_logits(weights.unsqueeze(-2), diff, gram)
    t = t.masked_fill(others < 0, float("-inf"))
    zero = torch.zeros_like(logits).unsqueeze(-1)
    return torch.cat([zero, logits.unsqueeze(-1), t], -1)
