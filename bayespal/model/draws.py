"""The seam between a fitted population and everything that uses it.

``PopulationDraws`` is one immutable value: per-draw prototypes (and PAL-B loadings),
sharpness, position term and population prior, and the point-estimated maps that give
items (and prompts) their features. A MAP fit hands out one draw, a Bayesian fit ``S``
draws of its posterior, an ensemble its members' draws pooled (each draw with its own
member's maps). Predictions, new users, queries, rewards and diagnostics all consume it
and never look inside a fit's model or guide; its methods call
``bayespal.model.likelihood`` for every logit and reward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyro.distributions as dist
import torch
from torch import nn

from bayespal.model.likelihood import (
    choice_logits,
    choice_terms,
    expected_score,
    mixture_logits,
    mixture_rewards,
    outcome_probs,
    pair_terms,
    point_rewards,
    reward_gap,
)
from bayespal.model.pal import weights_distribution

UNKNOWN_USER_DRAWS = 16  # population draws of w per draw for a user the fit does not know


def _apply(maps: Sequence[nn.Module], x, device: torch.device) -> torch.Tensor:
    """Each map of embeddings ``x`` (on the maps' own device) -> ``(E, n, .)`` on ``device``."""
    if not torch.is_tensor(x):
        x = np.asarray(x)
        # a read-only table (an EmbeddingTable's) is copied: torch cannot wrap it safely
        x = torch.as_tensor(x if x.flags.writeable else x.copy())
    out = []
    for m in maps:
        param = next(m.parameters())
        out.append(m(x.to(param.device)).to(device))
    return torch.stack(out)


@dataclass(frozen=True, eq=False)
class PopulationDraws:
    """Draws of a fitted population (see the module docstring).

    Attributes
    ----------
    prototypes:
        ``(P, K, d)``.
    sharpness, position_bias:
        ``(P,)``.
    prior_log_proportions, prior_concentrations:
        ``(P, C)`` and ``(P, C, K)``: each draw's population prior of the weights, the
        mixture ``sum_c pi_c Dirichlet(alpha_c)`` (``weights_prior``; ``C = 1``: one
        Dirichlet).
    member:
        ``(P,)``: which maps (ensemble member) each draw belongs to.
    mappings, prompt_maps:
        The members' item maps ``f`` (and PAL-B's prompt maps ``phi``; None for PAL-A).
    metric:
        ``"distance"`` or ``"cosine"``.
    loadings:
        PAL-B's prompt loadings ``(P, K, d, q)``; None for PAL-A.
    item_effects:
        ``(P, M)``: each draw's effects of the training items (reward units, shared by
        every prototype); None without item effects.
    item_effect_scale:
        ``(P,)``: the effects' prior scale ``tau``, from which an item not in the training
        table draws its effect; None without item effects.
    cutpoints:
        ``(P, L - 1)``: each draw's cutpoints of graded answers (``L > 2`` levels:
        ties, strength); None for binary answers (one cutpoint 0).
    cutpoint_spread:
        ``(P,)``: with ``user_cutpoints``, the spread ``sigma`` of the users' cutpoint log
        factors ``s ~ Normal(0, sigma^2)`` (a user's cutpoints are ``cutpoints * exp(s)``),
        from which a user the fit does not know draws theirs; else None.
    """

    prototypes: torch.Tensor
    sharpness: torch.Tensor
    prior_log_proportions: torch.Tensor
    prior_concentrations: torch.Tensor
    position_bias: torch.Tensor
    member: torch.Tensor
    mappings: tuple[nn.Module, ...]
    prompt_maps: tuple[nn.Module, ...] | None = None
    metric: str = "distance"
    loadings: torch.Tensor | None = None
    item_effects: torch.Tensor | None = None
    item_effect_scale: torch.Tensor | None = None
    cutpoints: torch.Tensor | None = None
    cutpoint_spread: torch.Tensor | None = None

    @classmethod
    def pool(cls, parts: Sequence[PopulationDraws]) -> PopulationDraws:
        """The draws of several populations (ensemble members) as one set."""
        parts = list(parts)
        first = parts[0]
        member, maps, pmaps = [], [], []
        for p in parts:
            member.append(p.member + len(maps))
            maps += p.mappings
            pmaps += p.prompt_maps or ()

        def cat(name: str) -> torch.Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values)

        return cls(cat("prototypes"), cat("sharpness"), cat("prior_log_proportions"),
                   cat("prior_concentrations"),
                   cat("position_bias"), torch.cat(member), tuple(maps),
                   tuple(pmaps) if first.prompt_maps is not None else None, first.metric,
                   cat("loadings"), cat("item_effects"), cat("item_effect_scale"),
                   cat("cutpoints"), cat("cutpoint_spread"))

    # -- sizes ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """The number of draws ``P``."""
        return len(self.sharpness)

    @property
    def k(self) -> int:
        return self.prototypes.shape[-2]

    @property
    def n_members(self) -> int:
        return len(self.mappings)

    @property
    def takes_prompts(self) -> bool:
        """Whether comparisons need their prompts (PAL-B)."""
        return self.loadings is not None

    @property
    def device(self) -> torch.device:
        return self.prototypes.device

    @property
    def has_item_effects(self) -> bool:
        return self.item_effects is not None

    @property
    def levels(self) -> int:
        """How many ordered outcomes an answer has (2: binary)."""
        return 2 if self.cutpoints is None else self.cutpoints.shape[-1] + 1

    def cuts(self) -> torch.Tensor:
        """Each draw's cutpoints ``(P, L - 1)`` (binary: zeros ``(P, 1)``)."""
        if self.cutpoints is None:
            return self.sharpness.new_zeros(self.size, 1)
        return self.cutpoints

    @property
    def has_user_cutpoints(self) -> bool:
        """Whether each user scales the cutpoints by their own factor (``user_cutpoints``)."""
        return self.cutpoint_spread is not None

    def user_cuts(self, log_scale: torch.Tensor | None) -> torch.Tensor:
        """Cutpoints ``(P, *S, L - 1)`` of answers whose users' cutpoint log factors are
        ``log_scale (P, *S)``; None: the population's, ``(P, 1.., L - 1)`` broadcastable.

        Parameters
        ----------
        log_scale:
            ``(P, *S)`` per draw and answer, or None.
        """
        cuts = self.cuts()
        if log_scale is None:
            return cuts
        return cuts.reshape(self.size, *([1] * (log_scale.dim() - 1)), -1) * \
            log_scale.exp().unsqueeze(-1)

    def prior_cutpoint_log_scales(self, shape: Sequence[int],
                                  generator: torch.Generator | None = None
                                  ) -> torch.Tensor | None:
        """Draws ``(P, *shape)`` of unknown users' cutpoint log factors from each draw's
        prior ``Normal(0, sigma^2)``; None without ``user_cutpoints``.

        Parameters
        ----------
        shape:
            The draws' shape after the population draws.
        generator:
            For the draws (torch's global stream if None).
        """
        if self.cutpoint_spread is None:
            return None
        noise = torch.randn((self.size, *shape), generator=generator, device="cpu")
        return noise.to(self.device) * self.cutpoint_spread.reshape(-1, *([1] * len(shape)))

    def weights_prior(self, row: int | None = None, dtype: torch.dtype | None = None
                      ) -> dist.Distribution:
        """The population prior of one user's weights (``bayespal.model.pal.
        weights_distribution``): each draw's (batch shape ``(P,)``), or draw ``row``'s.

        Parameters
        ----------
        row:
            One draw (None: all).
        dtype:
            The distribution's dtype (None: the draws').
        """
        log_prop, conc = self.prior_log_proportions, self.prior_concentrations
        if row is not None:
            log_prop, conc = log_prop[row], conc[row]
        if dtype is not None:
            log_prop, conc = log_prop.to(dtype), conc.to(dtype)
        return weights_distribution(log_prop, conc)

    def prior_mean_weights(self) -> torch.Tensor:
        """``(P, K)``: each draw's prior mean of the weights."""
        return self.weights_prior().mean

    def sample_weights(self, shape: tuple[int, ...],
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws ``(P, *shape, K)`` of users' weights from each draw's population prior,
        from ``generator`` (torch's global stream if None): a component per user, then its
        Dirichlet (``sample_dirichlet``; one component: the Dirichlet's draws alone).

        Parameters
        ----------
        shape:
            Draws per population draw.
        generator:
            A torch generator (None: the global stream).
        """
        conc = self.prior_concentrations
        p, c, k = conc.shape
        if c == 1:
            return sample_dirichlet(conc[:, 0], shape, generator)
        n = math.prod(shape)
        comp = torch.multinomial(self.prior_log_proportions.exp().cpu(), n, replacement=True,
                                 generator=generator).to(conc.device)  # (P, n)
        alpha = conc.gather(1, comp[..., None].expand(p, n, k))  # (P, n, K)
        g = torch._standard_gamma(alpha.cpu(), generator=generator).to(conc.device)
        return (g / g.sum(-1, keepdim=True).clamp_min(1e-30)).reshape(p, *shape, k)

    def _map(self, fn) -> PopulationDraws:
        """The draws with ``fn`` applied to every per-draw tensor (the maps are kept)."""
        def opt(t):
            return None if t is None else fn(t)

        return replace(self, prototypes=fn(self.prototypes), sharpness=fn(self.sharpness),
                       prior_log_proportions=fn(self.prior_log_proportions),
                       prior_concentrations=fn(self.prior_concentrations),
                       position_bias=fn(self.position_bias), member=fn(self.member),
                       loadings=opt(self.loadings), item_effects=opt(self.item_effects),
                       item_effect_scale=opt(self.item_effect_scale),
                       cutpoints=opt(self.cutpoints),
                       cutpoint_spread=opt(self.cutpoint_spread))

    def subset(self, rows: torch.Tensor | slice) -> PopulationDraws:
        """Some of the draws (the maps are kept whole).

        Parameters
        ----------
        rows:
            Draw indices or a slice.
        """
        return self._map(lambda t: t[rows])

    # -- features ------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, embeddings) -> torch.Tensor:
        """Each member's ``f(x)`` of item embeddings ``(M, D)`` -> ``(E, M, d)``.

        Parameters
        ----------
        embeddings:
            (M, D) item embeddings.
        """
        return _apply(self.mappings, embeddings, self.device)

    @torch.no_grad()
    def prompt_features(self, embeddings) -> torch.Tensor | None:
        """Each member's ``phi(c)`` of prompt embeddings ``(C, Dc)`` -> ``(E, C, q)``; None
        for PAL-A (whose comparisons' prompts are ignored).

        Parameters
        ----------
        embeddings:
            (C, Dc) prompt embeddings (None: none).
        """
        if self.prompt_maps is None or embeddings is None:
            return None
        return _apply(self.prompt_maps, embeddings, self.device)

    def _per_draw(self, member_rows: torch.Tensor | None) -> torch.Tensor | None:
        """Member features ``(E, n, .)`` as each draw's ``(P, n, .)``, or shared ``(n, .)``
        when there is one member (no copy)."""
        if member_rows is None:
            return None
        return member_rows[0] if self.n_members == 1 else member_rows[self.member]

    def item_offsets(self, rows, generator: torch.Generator | None = None
                     ) -> torch.Tensor | None:
        """Each draw's effects ``(P, n)`` of items given by their rows in the training table
        (``-1``: an item not in it, whose effect is drawn from the prior ``Normal(0, tau^2)``
        of each draw); None without item effects.

        Parameters
        ----------
        rows:
            ``(n,)`` training-table rows, -1 for other items; None: every item is another.
        generator:
            For the prior draws (torch's global stream if None).
        """
        if self.item_effects is None:
            return None
        if rows is None:
            raise ValueError("rows: got None; expected the items' rows in the training table "
                             "(-1 for other items): this population has item effects")
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=self.device)
        known = rows >= 0
        out = self.item_effects[:, rows.clamp(min=0)]
        if not bool(known.all()):
            noise = torch.randn(out.shape, generator=generator, device="cpu").to(self.device)
            out = torch.where(known, out, noise * self.item_effect_scale[:, None])
        return out

    def pair_offsets(self, rows_a, rows_b) -> torch.Tensor | None:
        """Each draw's ``e(a) - e(b)`` ``(P, n)`` of comparisons whose items have training-table
        rows ``rows_a, rows_b`` (``item_offsets``); None without item effects.

        Parameters
        ----------
        rows_a, rows_b:
            ``(n,)`` rows, -1 for items not in the training table.
        """
        if not self.has_item_effects:
            return None
        return self.item_offsets(rows_a) - self.item_offsets(rows_b)

    # -- the logit -----------------------------------------------------------------------
    def terms(self, fa: torch.Tensor, fb: torch.Tensor, pc: torch.Tensor | None = None,
              offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``pair_terms`` of comparisons for every draw.

        Parameters
        ----------
        fa, fb:
            ``(E, n, d)`` the comparisons' item features under each member's map.
        pc:
            ``(E, n, q)`` their prompt features (PAL-B; ignored for PAL-A).
        offset:
            ``(P, n)``: the items' effects ``e(a) - e(b)`` (``item_offsets``); required
            exactly when the population has item effects.

        Returns
        -------
        tuple
            ``diff (P, n, K)`` and ``gram`` ``(P, n or 1, K, K)`` (cosine) or None.
        """
        if not self.takes_prompts:
            pc = None
        elif pc is None:
            raise ValueError("prompt: got None; expected the comparisons' prompts (this is a "
                             "PAL-B population)")
        if self.has_item_effects != (offset is not None):
            raise ValueError(f"offset: got {'none' if offset is None else 'item effects'}; "
                             f"expected {'the' if self.has_item_effects else 'no'} items' "
                             "effects (this population "
                             f"{'has' if self.has_item_effects else 'has no'} item effects)")
        return pair_terms(self.prototypes, self.sharpness, self._per_draw(fa), self._per_draw(fb),
                          loadings=self.loadings, pc=self._per_draw(pc), metric=self.metric,
                          position_bias=self.position_bias, offset=offset)

    def other_terms(self, fo: torch.Tensor, fb: torch.Tensor, pc: torch.Tensor | None = None,
                    offset: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``choice_terms`` of choices' further items for every draw.

        Parameters
        ----------
        fo:
            ``(E, n, m, d)`` the further items' features under each member's map.
        fb, pc:
            As for ``terms``.
        offset:
            ``(P, n, m)``: the items' effects ``e(o_j) - e(b)``; required exactly when the
            population has item effects.

        Returns
        -------
        tuple
            ``diff (P, n, m, K)`` and ``gram`` (cosine) or None.
        """
        if self.has_item_effects != (offset is not None):
            raise ValueError("offset: expected the further items' effects exactly when the "
                             "population has item effects")
        return choice_terms(self.prototypes, self.sharpness, self._per_draw(fo),
                            self._per_draw(fb), loadings=self.loadings,
                            pc=self._per_draw(pc) if self.takes_prompts else None,
                            metric=self.metric, offset=offset)

    def logits(self, weights: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor,
               pc: torch.Tensor | None = None, offset: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Per-draw logits ``(P, n)`` of comparisons for weights ``(P, n, K)`` (arguments as
        ``terms``).

        Parameters
        ----------
        weights:
            (P, n, K) weights paired with the draws.
        fa, fb, pc, offset:
            As for terms.
        """
        diff, gram = self.terms(fa, fb, pc, offset)
        return mixture_logits(weights.expand(diff.shape[0], -1, -1), diff, gram)

    def probs(self, weights: torch.Tensor | None, fa: torch.Tensor, fb: torch.Tensor,
              pc: torch.Tensor | None = None, known: torch.Tensor | None = None,
              generator: torch.Generator | None = None, offset: torch.Tensor | None = None,
              outcomes: bool = False, choice: tuple | None = None,
              cutpoint_log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Per-draw ``P(a preferred over b)`` of comparisons, ``(P, n)``: for graded answers
        the expected label (``likelihood.expected_score``, a tie counting half); with
        ``outcomes`` the probability of every level instead, ``(P, n, L)``. Choices from
        larger sets (``choice``): ``P(a chosen)``, or with ``outcomes`` the probability of
        each item ``(P, n, 2 + m)`` in the order ``(b, a, others)``.

        Parameters
        ----------
        weights:
            ``(P, n, K)``: each comparison's user's weights, drawn with the population draw
            (None: every user is unknown).
        fa, fb, pc:
            As for ``terms``.
        known:
            ``(n,)`` bool: comparisons whose user has ``weights``; the others integrate
            ``w`` over each draw's population ``Dirichlet(alpha)`` (``UNKNOWN_USER_DRAWS``
            draws), what a user not seen in training is predicted from.
        generator:
            For those population draws of ``w``.
        offset:
            As for ``terms``.
        outcomes:
            Return each level's probability (level 0: b preferred most strongly).
        choice:
            ``(fo (E, n, m, d), others (n, m), offset (P, n, m) or None)``: the further
            items of choices (``others`` -1 pads), or None for pairs.
        cutpoint_log_scale:
            ``(P, n)``: with ``user_cutpoints``, each comparison's user's cutpoint log factor,
            drawn with ``weights``; the unknown users draw theirs from the prior.
        """
        diff, gram = self.terms(fa, fb, pc, offset)
        n = diff.shape[-2]
        if choice is not None:
            if self.cutpoints is not None:
                raise ValueError("choice: got further items with graded answers; expected "
                                 "binary answers (a choice from a set)")
            fo, others, other_offset = choice
            o_diff, o_gram = self.other_terms(fo, fb, pc, other_offset)

        def score(w: torch.Tensor, lead: int, log_scale: torch.Tensor | None
                  ) -> torch.Tensor:  # w (P, [S,] n, K)
            def grow(t: torch.Tensor | None) -> torch.Tensor | None:  # a dim for S
                return t.unsqueeze(1) if t is not None and lead else t

            logits = mixture_logits(w, grow(diff), grow(gram))
            if choice is not None:
                u = choice_logits(w, logits, grow(o_diff), grow(o_gram), others)
                p = torch.softmax(u, -1)
                return p if outcomes else p[..., 1]
            if not outcomes and self.cutpoints is None:
                return torch.sigmoid(logits)
            cuts = self.user_cuts(log_scale)
            if log_scale is None:
                cuts = cuts.reshape(self.size, *([1] * (logits.dim() - 1)), -1)
            return outcome_probs(logits, cuts) if outcomes else expected_score(logits, cuts)

        if weights is not None:
            weights = weights.expand(diff.shape[0], -1, -1)  # MAP: one draw of everything
        if self.has_user_cutpoints and weights is not None and cutpoint_log_scale is None:
            raise ValueError("cutpoint_log_scale: got None with user_cutpoints; expected the "
                             "users' cutpoint log factors drawn with their weights")
        probs = None if weights is None else score(weights, 0, cutpoint_log_scale)
        if known is None:
            known = torch.full((n,), weights is not None, device=diff.device)
        if bool(known.all()):
            return probs
        w0 = self.sample_weights((UNKNOWN_USER_DRAWS, n), generator)
        pop = score(w0, 1, self.prior_cutpoint_log_scales((UNKNOWN_USER_DRAWS, n),
                                                          generator)).mean(1)
        if probs is None:
            return pop
        return torch.where(known[:, None] if outcomes else known, probs, pop)

    @torch.no_grad()
    def predict(self, weight_draws, users: np.ndarray, emb_a, emb_b, emb_c=None,
                chunk: int = 4096, rows_a=None, rows_b=None, outcomes: bool = False,
                emb_o=None, others=None, rows_o=None, cutpoint_draws=None) -> torch.Tensor:
        """Per-draw ``P(a preferred over b)`` ``(P, n)`` of comparisons given by embeddings
        (graded answers: the expected label; ``outcomes``: every level's probability, ``(P,
        n, L)``; choices from larger sets: of each item, ``(P, n, 2 + m)``; see ``probs``),
        in chunks of ``chunk`` comparisons.

        Parameters
        ----------
        weight_draws:
            ``positions (B,) -> (P, B, K)``: the users' weight draws, paired with these
            population draws (None: no user is known).
        users:
            ``(n,)`` user positions; -1 for users the fit does not know (integrated over
            the population prior, see ``probs``).
        emb_a, emb_b, emb_c:
            ``(n, D)`` item embeddings of each comparison; ``(n, Dc)`` prompt embeddings
            (PAL-B; ignored for PAL-A).
        chunk:
            Comparisons per chunk.
        rows_a, rows_b:
            With item effects: the items' rows in the training table (-1 for other items;
            see ``item_offsets``).
        outcomes:
            Every level's probability instead of the expected label.
        emb_o, others, rows_o:
            Choices from larger sets: ``(n, m, D)`` the further items' embeddings, ``(n, m)``
            their rows (-1: padding, whose embedding is ignored) and, with item effects, their
            training-table rows ``(n, m)``; None for pairs.
        cutpoint_draws:
            ``positions (B,) -> (P, B)``: with ``user_cutpoints``, the users' cutpoint log
            factors drawn with ``weight_draws``.
        """
        out = []
        for s in range(0, len(users), chunk):
            sl = slice(s, s + chunk)
            pos = torch.as_tensor(np.asarray(users[sl]), dtype=torch.long, device=self.device)
            known = pos >= 0
            w = shift = None
            if weight_draws is not None and bool(known.any()):
                w = weight_draws(pos.clamp(min=0))
                if self.has_user_cutpoints:
                    shift = cutpoint_draws(pos.clamp(min=0)).expand(self.size, -1)
            fa, fb = self.features(emb_a[sl]), self.features(emb_b[sl])
            pc = None if emb_c is None else self.prompt_features(emb_c[sl])
            offset = self.pair_offsets(None if rows_a is None else rows_a[sl],
                                       None if rows_b is None else rows_b[sl])
            choice = None
            if others is not None:
                mask = torch.as_tensor(np.asarray(others[sl]), device=self.device)
                o_off = None
                if self.has_item_effects:
                    ro = np.asarray(rows_o[sl])
                    o_off = (self.item_offsets(ro.reshape(-1)).reshape(self.size, *ro.shape)
                             - self.item_offsets(rows_b[sl]).unsqueeze(-1))
                choice = (self.features(emb_o[sl]), mask, o_off)
            out.append(self.probs(w, fa, fb, pc, known, offset=offset, outcomes=outcomes,
                                  choice=choice, cutpoint_log_scale=shift))
        if not out:
            width = self.levels if others is None else 2 + np.asarray(others).shape[1]
            tail = (width,) if outcomes else ()
            return torch.zeros(self.size, 0, *tail, device=self.device)
        return torch.cat(out, 1)

    def rewards(self, features: torch.Tensor, pc: torch.Tensor | None = None,
                rows=None) -> torch.Tensor:
        """Each prototype's reward ``(P, K, M)`` of items with member features ``(E, M, d)``;
        PAL-B: for one prompt with member features ``(E, 1, q)``.

        Parameters
        ----------
        features:
            (E, M, d) member features of the items.
        pc:
            PAL-B: (E, 1, q) one prompt's features.
        rows:
            With item effects: the items' training-table rows (``item_offsets``).
        """
        loadings = self._reward_loadings(pc)
        feats = self._per_draw(features)
        return point_rewards(self.prototypes, feats, loadings=loadings,
                             pc=None if loadings is None else self._per_draw(pc),
                             metric=self.metric, effects=self.item_offsets(rows))

    def _reward_loadings(self, pc: torch.Tensor | None) -> torch.Tensor | None:
        """The loadings rewards use (None for PAL-A); PAL-B needs the prompt's features."""
        if not self.takes_prompts:
            return None
        if pc is None:
            raise ValueError("prompt_embedding: got None; expected the embedding of the prompt "
                             "the rewards are for (this is a PAL-B population)")
        return self.loadings

    def user_rewards(self, weights: torch.Tensor, features: torch.Tensor,
                     pc: torch.Tensor | None = None, rows=None) -> torch.Tensor:
        """A user's reward (sharpness times ``mixture_rewards``,
        logit units) of items for weight draws ``(P, K)`` paired with these draws, with member
        features ``(E, M, d)`` (PAL-B: one prompt's ``(E, 1, q)``) -> ``(P, M)``.

        Parameters
        ----------
        weights:
            (P, K) weight draws paired with these draws.
        features:
            (E, M, d) member features of the items.
        pc:
            PAL-B: (E, 1, q) one prompt's features.
        rows:
            With item effects: the items' training-table rows (``item_offsets``).
        """
        loadings = self._reward_loadings(pc)
        r = mixture_rewards(weights.expand(self.size, -1), self.prototypes,
                            self._per_draw(features), loadings=loadings,
                            pc=None if loadings is None else self._per_draw(pc),
                            metric=self.metric, effects=self.item_offsets(rows))
        return self.sharpness[:, None] * r

    def bind(self, items, prompts=None, device: str | torch.device = "cpu", rows=None
             ) -> BoundPopulation:
        """These draws with the features of an item (and prompt) table, on ``device``, for
        work that indexes comparisons by rows (new users, queries).

        Parameters
        ----------
        items:
            (M, D) item embeddings.
        prompts:
            (C, Dc) prompt embeddings (PAL-B).
        device:
            Where the bound tensors live.
        rows:
            With item effects: the items' training-table rows (``item_offsets``); an item
            not in it draws its effect once per draw, shared by all its comparisons.
        """
        if self.takes_prompts and prompts is None:
            raise ValueError("prompts: got None; expected a prompt-embedding table (this is a "
                             "PAL-B population)")
        feats = self.features(items).to(device)
        pfeats = self.prompt_features(prompts)
        offsets = self.item_offsets(rows)
        return BoundPopulation(self.to(device), feats,
                               None if pfeats is None else pfeats.to(device),
                               None if offsets is None else offsets.to(device))

    def to(self, device: str | torch.device) -> PopulationDraws:
        """The draws' tensors on ``device`` (the maps stay where they are).

        Parameters
        ----------
        device:
            The target device.
        """
        return self._map(lambda t: t.to(device))


def sample_dirichlet(concentration: torch.Tensor, shape: tuple[int, ...],
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``Dirichlet(concentration[p])`` draws ``(P, *shape, K)`` for ``concentration (P, K)``,
    from ``generator`` (torch's global stream if None).

    Parameters
    ----------
    concentration:
        (P, K).
    shape:
        Draws per row.
    generator:
        A torch generator (None: the global stream).
    """
    c = concentration.reshape(concentration.shape[0], *([1] * len(shape)), -1)
    c = c.expand(concentration.shape[0], *shape, concentration.shape[-1])
    g = torch._standard_gamma(c, generator=generator)
    return g / g.sum(-1, keepdim=True).clamp_min(1e-30)


class BoundPopulation:
    """``PopulationDraws`` with the features of one item (and prompt) table, for
    comparisons given by rows of those tables.

    Parameters
    ----------
    draws:
        The population draws.
    item_features:
        ``(E, M, d)``.
    prompt_features:
        ``(E, C, q)`` (PAL-B) or None.
    item_offsets:
        ``(P, M)``: each draw's effects of the table's items (``item_offsets``); None
        without item effects.
    """

    def __init__(self, draws: PopulationDraws, item_features: torch.Tensor,
                 prompt_features: torch.Tensor | None,
                 item_offsets: torch.Tensor | None = None) -> None:
        self.draws, self.item_features, self.prompt_features = draws, item_features, prompt_features
        self.item_offsets = item_offsets
        self.k, self.size, self.metric = draws.k, draws.size, draws.metric
        self.n_items = item_features.shape[-2]
        self.n_prompts = 0 if prompt_features is None else prompt_features.shape[-2]

    @property
    def takes_prompts(self) -> bool:
        return self.draws.takes_prompts

    def terms(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logit terms for item rows ``a, b`` (and prompt rows ``c``) of any shape ``S``:
        ``diff (P, *S, K)``, ``gram (P, *S, K, K)`` (cosine) or None.

        Parameters
        ----------
        a, b:
            Item rows of any shape S.
        c:
            Prompt rows (PAL-B).
        """
        fa = self.item_features[:, a.reshape(-1)]
        fb = self.item_features[:, b.reshape(-1)]
        pc = None
        if self.prompt_features is not None:
            pc = self.prompt_features[:, c.reshape(-1)]
        offset = None
        if self.item_offsets is not None:
            offset = self.item_offsets[:, a.reshape(-1)] - self.item_offsets[:, b.reshape(-1)]
        diff, gram = self.draws.terms(fa, fb, pc, offset)
        diff = diff.expand(self.size, *diff.shape[-2:]).reshape(self.size, *a.shape, self.k)
        if gram is not None:
            gram = gram.expand(self.size, -1, -1, -1).reshape(self.size, *a.shape, self.k, self.k)
        return diff, gram

    def other_terms(self, o: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``choice_terms`` of choices' further items (rows ``o (*S, m)``, -1 padding: any
        value is computed, the caller masks it) against item b (rows ``b (*S)``, prompt rows
        ``c``): ``diff (P, *S, m, K)`` and None (the distance metric only).

        Parameters
        ----------
        o:
            Further item rows ``(*S, m)``.
        b, c:
            Item b's and the prompt's rows ``(*S)``.
        """
        m, flat_b = o.shape[-1], b.reshape(-1)
        flat_o = o.clamp(min=0).reshape(-1)
        e = self.item_features.shape[0]
        fo = self.item_features[:, flat_o].reshape(e, len(flat_b), m, -1)
        fb = self.item_features[:, flat_b]
        pc = None if self.prompt_features is None else self.prompt_features[:, c.reshape(-1)]
        offset = None
        if self.item_offsets is not None:
            offset = (self.item_offsets[:, flat_o].reshape(self.size, len(flat_b), m)
                      - self.item_offsets[:, flat_b].unsqueeze(-1))
        diff, gram = self.draws.other_terms(fo, fb, pc, offset)
        if gram is not None:
            raise ValueError("metric: got 'cosine' with choices from sets; expected 'distance' "
                             "(a choice is a multinomial logit of the prototypes' rewards)")
        return diff.expand(self.size, *diff.shape[1:]).reshape(self.size, *o.shape, self.k), None

    def choice_logits(self, w: torch.Tensor, pop: torch.Tensor, a: torch.Tensor,
                      b: torch.Tensor, c: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The categorical logits ``(U, S, n, 2 + m)`` over ``(b, a, others)`` of each user's
        choices (rows ``a, b, c (U, n)``, further items ``o (U, n, m)``, -1 padding) for
        weight draws ``w (U, S, K)`` paired with population draws ``pop (U, S)``
        (``likelihood.choice_logits``).

        Parameters
        ----------
        w, pop, a, b, c:
            As for ``logits``.
        o:
            (U, n, m) further item rows, -1 padding.
        """
        logits = self.logits(w, pop, a, b, c)
        diff, gram = self.other_terms(o, b, c)  # (P, U, n, m, K)
        rows = torch.arange(w.shape[0])[:, None]
        return choice_logits(w[:, :, None, :], logits, diff[pop, rows], gram, o.unsqueeze(1))

    def logits(self, w: torch.Tensor, pop: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
               c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of each user's comparisons (item rows ``a, b``, prompt rows ``c``, all
        ``(U, n)``) for that user's weight draws ``w (U, S, K)``, each paired with the
        population draw ``pop (U, S)`` -> ``(U, S, n)``.

        With one member, PAL-A and the distance metric the logit is computed from the ideal
        points ``z = w P`` (a batched matrix product, memory ``(U, S, n)``); otherwise the
        terms of ``terms`` are gathered per draw (memory ``(U, S, n, K)``).

        Parameters
        ----------
        w:
            (U, S, K) weight draws.
        pop:
            (U, S) their population draws.
        a, b, c:
            (U, n) item and prompt rows.
        """
        d = self.draws
        if d.takes_prompts or d.n_members > 1 or d.metric != "distance":
            diff, gram = self.terms(a, b, c)
            rows = torch.arange(w.shape[0])[:, None]
            return mixture_logits(w.unsqueeze(-2), diff[pop, rows],
                                  None if gram is None else gram[pop, rows])
        z = torch.einsum("usk,uskd->usd", w, d.prototypes[pop])
        f = self.item_features[0]
        gap = reward_gap(z, f[a], f[b]).transpose(1, 2)  # (U, S, n): every draw, every answer
        if self.item_offsets is not None:  # (M, P) rows gathered per answer, then per draw
            e = self.item_offsets.T
            gap = gap + torch.gather(e[a] - e[b], 2, pop.unsqueeze(1).expand(-1, a.shape[1], -1)
                                     ).transpose(1, 2)
        return d.sharpness[pop].unsqueeze(-1) * gap + d.position_bias[pop].unsqueeze(-1)
