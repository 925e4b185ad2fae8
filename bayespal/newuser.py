"""Few-shot posteriors for new, unseen users, without refitting the population.

The population (mapping ``f``, prototypes ``P``, sharpness ``beta``, concentration
``alpha``) stays fixed; only a new user's mixture weights ``w`` are inferred. Because the
PAL-A logit is linear in ``w`` (``logit = beta * w . (r(a) - r(b))``), this is a
K-dimensional Bayesian logistic regression on the simplex with prior ``Dirichlet(alpha)``.
PAL-B is the same with each answer's prompt-dependent rewards (pass its ``prompt``); with
the cosine score the logit is ``w . d / sqrt(w^T G w)`` and the sampler is unchanged.

We compute it by **adaptive importance sampling**, vectorised over users: draws from the
prior (shared by all users), then up to three rounds of a *defensive* proposal (``10%``
prior + ``90%`` a logistic-normal fitted to the current weighted draws, full
covariance, 1.5x wider) until the effective sample size (ESS) is at least ``min_ess``
of the draws (or stops growing). After new answers the last proposal is the first one tried, so an update
usually takes one round. Work is lazy: answers are recorded at once, the posterior is
computed when first asked for. The weights are exact up to Monte Carlo error, which
ESS reports; the posterior agrees with NUTS (``tests/test_newuser.py``).

``population="draws"`` (the default) integrates over ``num_population_draws`` posterior
draws of the population (each importance draw is paired with one population draw);
``"mean"`` plugs in the population's posterior mean. ``benchmarks/newuser_calibration.py``
measures both; see ``docs/results.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr

from bayespal.data import PreferenceData
from bayespal.ensemble import EnsemblePAL
from bayespal.models.ideal_point import pair_terms
from bayespal.models.prompted import prompt_prototypes
from bayespal.posterior import FittedPAL

POPULATION_MODES = ("draws", "mean")
DEFENSIVE = 0.1  # share of the prior in the proposal mixture


def _log_dirichlet(log_w: torch.Tensor, conc: torch.Tensor) -> torch.Tensor:
    """Dirichlet log density from ``log w`` (stable for tiny components)."""
    norm = torch.lgamma(conc.sum(-1)) - torch.lgamma(conc).sum(-1)
    return norm + ((conc - 1) * log_w).sum(-1)


def _sample_log_dirichlet(conc: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` draws of ``log w`` for each row of ``conc (..., K)`` -> ``(..., n, K)``.

    Uses ``G = Gamma(a + 1) * U^(1/a)`` in log space so small concentrations never
    underflow to exact zeros."""
    shape = conc.shape[:-1] + (n, conc.shape[-1])
    c = conc.unsqueeze(-2).expand(shape)
    log_g = torch._standard_gamma(c + 1).log() + torch.rand(shape).clamp_min(1e-38).log() / c
    return log_g - torch.logsumexp(log_g, -1, keepdim=True)


def _alpha_rows(alpha: torch.Tensor, n: int) -> torch.Tensor:
    """The prior concentration of draws ``0..n-1``: ``alpha (K,)`` shared, or, pooled over
    an ensemble, ``alpha (P, K)`` per population draw (draw ``i`` uses population
    ``i % P``) -> ``(n, K)``."""
    return alpha if alpha.dim() == 1 else alpha[torch.arange(n) % len(alpha)]


def _prior_draws(alpha: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` prior draws of ``log w`` ``(n, K)``, draw ``i`` from its population's prior."""
    if alpha.dim() == 1:
        return _sample_log_dirichlet(alpha, n)
    return _sample_log_dirichlet(_alpha_rows(alpha, n), 1)[:, 0]


class _LogisticNormal:
    """Additive logistic-normal proposals on the simplex, one per user: ``y = log(w_k / w_K)``
    (k < K) is ``Normal(mean, cov)``. Fitted to weighted draws with a 1.5x wider spread."""

    def __init__(self, mean: torch.Tensor, chol: torch.Tensor) -> None:
        self.mean, self.chol = mean, chol  # (U, K-1), (U, K-1, K-1)
        self.mvn = torch.distributions.MultivariateNormal(mean.unsqueeze(1),
                                                          scale_tril=chol.unsqueeze(1))

    @classmethod
    def fit(cls, log_w: torch.Tensor, weight: torch.Tensor) -> _LogisticNormal:
        y = log_w[..., :-1] - log_w[..., -1:]  # (U, S, K-1)
        mean = (weight.unsqueeze(-1) * y).sum(1)
        dev = y - mean.unsqueeze(1)
        cov = torch.einsum("us,usi,usj->uij", weight, dev, dev) * 1.5**2
        chol = torch.linalg.cholesky(cov + 1e-4 * torch.eye(y.shape[-1]))
        return cls(mean, chol)

    def sample(self, n: int) -> torch.Tensor:
        """``log w`` draws, ``(U, n, K)``."""
        eps = torch.randn(self.mean.shape[0], n, self.mean.shape[1])
        y = self.mean.unsqueeze(1) + torch.einsum("uij,unj->uni", self.chol, eps)
        full = torch.cat([y, torch.zeros_like(y[..., :1])], -1)
        return full - torch.logsumexp(full, -1, keepdim=True)

    def log_prob(self, log_w: torch.Tensor) -> torch.Tensor:
        """Density on the simplex (w.r.t. the first K-1 coordinates) of ``log w (U, S, K)``."""
        y = log_w[..., :-1] - log_w[..., -1:]
        return self.mvn.log_prob(y) - log_w.sum(-1)


class Population:
    """The fixed population a new user is placed in: item (and, PAL-B, prompt) features,
    draws of the population sites (``P`` of them, or their posterior mean), and ``alpha``.

    For an :class:`~bayespal.ensemble.EnsemblePAL` the draws are pooled over the members
    (``num_draws`` split evenly; ``"mean"``: one plug-in per member), and every draw keeps
    its own member's features and ``alpha``: a new user's posterior then averages over
    the members' mappings too."""

    def __init__(self, fit, items: np.ndarray, mode: str = "draws", num_draws: int = 64,
                 seed: int = 0, prompts: np.ndarray | None = None) -> None:
        if mode not in POPULATION_MODES:
            raise ValueError(f"population: got {mode!r}; expected one of {POPULATION_MODES}")
        members = fit.members if isinstance(fit, EnsemblePAL) else [fit]
        if not all(isinstance(m, FittedPAL) for m in members):
            raise ValueError(f"fit: got {type(fit).__name__}; expected a FittedPAL or an "
                             "EnsemblePAL")
        if fit.prompted and prompts is None:
            raise ValueError("prompts: got None; expected a prompt-embedding table (this is a "
                             "PAL-B fit)")
        self.k, self.score = fit.k, fit.config.score
        per_member = max(1, num_draws // len(members))
        parts = []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in members:
                if mode == "mean" or m.guide.map:  # plug-in: posterior means (MAP: estimates)
                    draws = m.guide.point()
                else:
                    draws = m.guide.sample(per_member)
                parts.append((
                    m.features(items).cpu(),  # (M, d)
                    None if not fit.prompted else m.prompt_features(prompts).cpu(),  # (C, q)
                    {k: v.cpu() for k, v in draws.items() if k != "weights"},
                    m.model.concentration.detach().cpu(),
                ))
        self.draws = {k: torch.cat([d[k] for _, _, d, _ in parts]) for k in parts[0][2]}
        self.prototypes, self.sharpness = self.draws["prototypes"], self.draws["sharpness"]
        sizes = torch.tensor([len(d["sharpness"]) for _, _, d, _ in parts])
        self.member = torch.repeat_interleave(torch.arange(len(members)), sizes)  # (P,)
        self.pooled = len(members) > 1
        if not self.pooled:  # one member: shared features and alpha (the fast paths)
            self.features, self.prompt_features, _, self.concentration = parts[0]
        else:  # each draw uses its member's features and alpha
            self.features = torch.stack([f for f, _, _, _ in parts])  # (E, M, d)
            self.prompt_features = (None if not fit.prompted
                                    else torch.stack([c for _, c, _, _ in parts]))
            self.concentration = torch.stack([a for _, _, _, a in parts])[self.member]  # (P, K)
        self.n_items = self.features.shape[-2]
        self.n_prompts = 0 if self.prompt_features is None else self.prompt_features.shape[-2]

    @property
    def size(self) -> int:
        return len(self.sharpness)

    @property
    def prompted(self) -> bool:
        return self.prompt_features is not None

    def _rows(self, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Rows of a feature table: ``(n, .)``, or per draw ``(P, n, .)`` when pooled."""
        if not self.pooled:
            return table[rows]
        return table[self.member[:, None], rows[None, :]]

    def terms(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logit terms (:func:`~bayespal.models.ideal_point.pair_terms`) for item rows ``a, b``
        (and prompt rows ``c``) of any shape ``S``: ``diff (P, *S, K)`` and ``gram``
        ``(P, *S, K, K)`` for the cosine score, else None."""
        fa = self._rows(self.features, a.reshape(-1))
        fb = self._rows(self.features, b.reshape(-1))
        if not self.prompted:
            diff, gram = pair_terms(self.prototypes, self.sharpness, fa, fb)
        else:
            pc = self._rows(self.prompt_features, c.reshape(-1))
            g = prompt_prototypes(self.prototypes, self.draws["loadings"], pc)  # (P, n, K, d)
            diff, gram = pair_terms(g, self.sharpness, fa, fb, self.score, per_comparison=True)
        diff = diff.reshape(self.size, *a.shape, self.k)
        if gram is not None:
            gram = gram.reshape(self.size, *a.shape, self.k, self.k)
        return diff, gram


def _draw_logits(w: torch.Tensor, diff: torch.Tensor, gram: torch.Tensor | None) -> torch.Tensor:
    """Logits of every user's answers for their draws: ``w (U, m, P, K)``, ``diff (P, U, n, K)``
    (``gram (P, U, n, K, K)``) -> ``(U, m, P, n)``; draw ``(i, p)`` uses population ``p``."""
    num = torch.einsum("umpk,punk->umpn", w, diff)
    if gram is None:
        return num
    quad = torch.einsum("umpk,punkl,umpl->umpn", w, gram, w)
    return num / quad.clamp_min(1e-12).sqrt()


class NewUsers:
    """Posteriors of the mixture weights of a set of new users, updated as answers arrive.

    Users are named by ``ids``; comparisons are pairs of rows of ``items`` (default: the
    fit's training item table). All computation is vectorised over users.
    """

    def __init__(
        self,
        fit,
        ids: Sequence = (0,),
        *,
        items: np.ndarray | None = None,
        prompts: np.ndarray | None = None,
        population: str = "draws",
        num_population_draws: int = 64,
        num_samples: int = 4096,
        min_ess: float = 0.25,
        seed: int = 0,
    ) -> None:
        if items is None:
            if fit.train is None:
                raise ValueError("items: got None; expected an item-embedding table")
            items = fit.train.items
        if prompts is None and fit.prompted and fit.train is not None:
            prompts = fit.train.prompts
        self.ids = pd.Index(np.asarray(ids))
        if self.ids.has_duplicates or len(self.ids) == 0:
            raise ValueError(f"ids: got {list(ids)[:5]!r}; expected unique user ids (at least one)")
        self.pop = Population(fit, np.asarray(items), population, num_population_draws, seed,
                              prompts=None if prompts is None else np.asarray(prompts))
        p = self.pop.size
        if num_samples < p or num_samples % p:
            num_samples = p * max(1, -(-num_samples // p))  # a multiple of P
        self.num_samples, self.min_ess, self.seed = num_samples, min_ess, seed
        u = len(self.ids)
        self._a = torch.zeros(u, 0, dtype=torch.long)
        self._b = torch.zeros(u, 0, dtype=torch.long)
        self._c = torch.zeros(u, 0, dtype=torch.long)  # prompt rows (PAL-B)
        self._sign = torch.zeros(u, 0)  # +1: a preferred, -1: b preferred, 0: padding
        self._count = torch.zeros(u, dtype=torch.long)
        self._rounds = 0
        self._stale = True

    # ------------------------------------------------------------------ data
    @property
    def k(self) -> int:
        return self.pop.k

    def n_answers(self) -> np.ndarray:
        return self._count.numpy().copy()

    def _positions(self, user: Sequence) -> np.ndarray:
        pos = self.ids.get_indexer(np.asarray(user).reshape(-1))
        if (pos < 0).any():
            bad = np.asarray(user).reshape(-1)[np.flatnonzero(pos < 0)[0]].item()
            raise ValueError(f"user: got {bad!r}; expected one of this object's ids")
        return pos

    def _rows(self, name: str, rows, n: int | None = None) -> torch.Tensor:
        n = self.pop.n_items if n is None else n
        arr = np.asarray(rows).reshape(-1)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name}: got dtype {arr.dtype}; expected integer rows")
        if len(arr) and (arr.min() < 0 or arr.max() >= n):
            bad = arr[(arr < 0) | (arr >= n)][0]
            raise ValueError(f"{name}: got row {bad}; expected rows in [0, {n})")
        return torch.as_tensor(arr, dtype=torch.long)

    def _prompt_rows(self, prompt, n: int) -> torch.Tensor:
        """Prompt rows for ``n`` comparisons: required for PAL-B, zeros (unused) for PAL-A."""
        if not self.pop.prompted:
            return torch.zeros(n, dtype=torch.long)
        if prompt is None:
            raise ValueError("prompt: got None; expected the comparisons' prompt rows "
                             "(this is a PAL-B fit)")
        c = self._rows("prompt", prompt, self.pop.n_prompts)
        if len(c) != n:
            raise ValueError(f"prompt: got length {len(c)}; expected {n}, one per comparison")
        return c

    def observe(self, user, item_a, item_b, label, prompt=None) -> NewUsers:
        """Add answers (any number per user) and update the posteriors. PAL-B: ``prompt``
        gives each answer's prompt (rows of the prompt table)."""
        pos = self._positions(user)
        a, b = self._rows("item_a", item_a), self._rows("item_b", item_b)
        c = self._prompt_rows(prompt, len(a))
        y = np.asarray(label).reshape(-1)
        if not (len(pos) == len(a) == len(b) == len(y)):
            raise ValueError(f"label: got lengths user={len(pos)}, item_a={len(a)}, "
                             f"item_b={len(b)}, label={len(y)}; expected equal lengths")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"label: got {y[~np.isin(y, (0, 1))][0].item()!r}; expected 0 or 1")
        if (a == b).any():
            raise ValueError(f"item_b: got row {int(b[a == b][0])}; expected a row other than item_a")
        # slot of each new answer: current count + rank among this call's answers of the user
        order = np.argsort(pos, kind="stable")
        ps = pos[order]
        first = np.searchsorted(ps, ps, side="left")
        rank = np.empty_like(pos)
        rank[order] = np.arange(len(ps)) - first
        slot = self._count.numpy()[pos] + rank
        need = int(slot.max()) + 1 if len(slot) else 0
        if need > self._a.shape[1]:
            grow = max(need, 2 * self._a.shape[1]) - self._a.shape[1]
            pad = torch.zeros(len(self.ids), grow, dtype=torch.long)
            self._a, self._b = torch.cat([self._a, pad], 1), torch.cat([self._b, pad], 1)
            self._c = torch.cat([self._c, pad], 1)
            self._sign = torch.cat([self._sign, pad.float()], 1)
        pos_t, slot_t = torch.as_tensor(pos), torch.as_tensor(slot)
        self._a[pos_t, slot_t], self._b[pos_t, slot_t] = a, b
        self._c[pos_t, slot_t] = c
        self._sign[pos_t, slot_t] = torch.as_tensor(2 * y - 1, dtype=torch.float32)
        self._count += torch.bincount(pos_t, minlength=len(self.ids))
        self._stale = True
        return self

    def _state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_w (U, S, K), weight (U, S), ess (U,))``, recomputed if answers arrived."""
        if self._stale:
            self._refresh()
            self._stale = False
        return self._log_w, self._weight, self._ess

    # ------------------------------------------------------------------ inference
    def _log_lik(self, log_w: torch.Tensor) -> torch.Tensor:
        """``log p(answers | w)`` for draws ``log_w (U, S, K)``; draw i uses population i % P."""
        u, s, k = log_w.shape
        p = self.pop.size
        if self._a.shape[1] == 0:
            return log_w.new_zeros(u, s)
        diff, gram = self.pop.terms(self._a, self._b, self._c)  # (P, U, n, K)
        logits = _draw_logits(log_w.exp().reshape(u, s // p, p, k), diff, gram)
        ll = F.logsigmoid(self._sign[:, None, None, :] * logits) * (self._sign != 0)[:, None, None]
        return ll.sum(-1).reshape(u, s)

    def _refresh(self, max_rounds: int = 4) -> None:
        """Recompute every user's importance-weighted draws (see the module docstring)."""
        alpha = self.pop.concentration
        u, s, k = len(self.ids), self.num_samples, self.k
        n_prior = max(1, int(DEFENSIVE * s))
        proposal = getattr(self, "_proposal", None)  # warm start from the last answers
        last_ess = 0.0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + self._rounds)
            self._rounds += 1
            for rnd in range(max_rounds):
                if proposal is None:  # the prior, its draws shared by all users
                    log_w = _prior_draws(alpha, s).expand(u, -1, -1)
                    log_q = log_prior = _log_dirichlet(log_w, _alpha_rows(alpha, s))
                else:
                    prior_part = _prior_draws(alpha, n_prior).expand(u, -1, -1)
                    log_w = torch.cat([prior_part, proposal.sample(s - n_prior)], 1)
                    log_prior = _log_dirichlet(log_w, _alpha_rows(alpha, s))
                    log_q = torch.logaddexp(np.log(DEFENSIVE) + log_prior,
                                            np.log1p(-DEFENSIVE) + proposal.log_prob(log_w))
                weight = torch.softmax(log_prior + self._log_lik(log_w) - log_q, -1)
                ess = 1.0 / weight.pow(2).sum(-1)
                done = k == 1 or bool((ess >= self.min_ess * s).all()) or rnd == max_rounds - 1
                stalled = rnd > 0 and float(ess.mean()) < 1.1 * last_ess  # adapting no longer helps
                if done or stalled:
                    break
                last_ess = float(ess.mean())
                proposal = _LogisticNormal.fit(log_w, weight)
        if k > 1:
            self._proposal = _LogisticNormal.fit(log_w, weight)
        self._log_w, self._weight, self._ess = log_w, weight, ess

    # ------------------------------------------------------------------ results
    @property
    def ess(self) -> np.ndarray:
        """Effective sample size of each user's importance-weighted draws."""
        return self._state()[2].numpy().copy()

    def weights(self, ci: float = 0.9) -> xr.Dataset:
        """Posterior ``mean``, ``sd``, equal-tailed ``ci`` interval (``lower``, ``upper``) and
        ``ess`` of each user's mixture weights, dims ``(user, prototype)``."""
        if not 0 < ci < 1:
            raise ValueError(f"ci: got {ci!r}; expected a number in (0, 1)")
        log_w, wt, _ = self._state()
        w = log_w.exp()
        mean = (wt.unsqueeze(-1) * w).sum(1)
        sd = (wt.unsqueeze(-1) * (w - mean.unsqueeze(1)).pow(2)).sum(1).sqrt()
        lo, hi = _weighted_quantiles(w, wt, ((1 - ci) / 2, (1 + ci) / 2))
        dims = ("user", "prototype")
        return xr.Dataset(
            {
                "mean": (dims, mean.numpy()),
                "sd": (dims, sd.numpy()),
                "lower": (dims, lo.numpy()),
                "upper": (dims, hi.numpy()),
                "ess": (("user",), self.ess),
                "n_answers": (("user",), self.n_answers()),
            },
            coords={"user": np.asarray(self.ids), "prototype": np.arange(self.k)},
            attrs={"ci": ci},
        )

    def draws(self, num: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Equally weighted posterior draws by systematic resampling: ``w (U, num, K)`` and
        the population draw each belongs to, ``(U, num)``."""
        log_w, weight, _ = self._state()
        u, s = weight.shape
        gen = torch.Generator().manual_seed(seed)
        offset = torch.rand(u, 1, generator=gen)
        points = (torch.arange(num).float() + offset) / num
        idx = torch.searchsorted(weight.cumsum(-1), points.contiguous()).clamp(max=s - 1)
        w = log_w.exp().gather(1, idx.unsqueeze(-1).expand(-1, -1, self.k))
        return w, idx % self.pop.size

    def _probs(self, pos: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
               c: torch.Tensor) -> torch.Tensor:
        """Per-draw ``P(a > b)`` for each user's own pairs: ``pos (U',)``, ``a, b, c (U', C)``
        -> ``(U', S, C)``."""
        p = self.pop.size
        diff, gram = self.pop.terms(a, b, c)  # (P, U', C, K)
        w = self._state()[0][pos].exp()
        uu, s, k = w.shape
        logits = _draw_logits(w.reshape(uu, s // p, p, k), diff, gram)
        return torch.sigmoid(logits.reshape(uu, s, -1))

    @torch.no_grad()
    def predict_proba(self, user, item_a, item_b, prompt=None) -> np.ndarray:
        """Posterior predictive ``P(a preferred over b)`` for comparisons of these users
        (PAL-B: with their ``prompt`` rows)."""
        pos = torch.as_tensor(self._positions(user))
        a, b = self._rows("item_a", item_a), self._rows("item_b", item_b)
        c = self._prompt_rows(prompt, len(a))
        if not (len(pos) == len(a) == len(b)):
            raise ValueError(f"item_a: got lengths user={len(pos)}, item_a={len(a)}, "
                             f"item_b={len(b)}; expected equal lengths")
        out = torch.empty(len(pos))
        uniq, inv = torch.unique(pos, return_inverse=True)
        # pad each user's comparisons into rows so all users go through one einsum
        order = torch.argsort(inv, stable=True)
        counts = torch.bincount(inv, minlength=len(uniq))
        starts = torch.cumsum(counts, 0) - counts
        col = torch.arange(len(pos)) - starts[inv[order]]
        width = int(counts.max())
        pa = torch.zeros(len(uniq), width, dtype=torch.long)
        pb = torch.ones(len(uniq), width, dtype=torch.long)
        pc = torch.zeros(len(uniq), width, dtype=torch.long)
        pa[inv[order], col], pb[inv[order], col] = a[order], b[order]
        pc[inv[order], col] = c[order]
        probs = torch.einsum("usc,us->uc", self._probs(uniq, pa, pb, pc), self._state()[1][uniq])
        out[order] = probs[inv[order], col]
        return out.numpy()


def _weighted_quantiles(w: torch.Tensor, weight: torch.Tensor, qs) -> list[torch.Tensor]:
    """Quantiles ``qs`` of each component of weighted draws ``w (U, S, K)``, each ``(U, K)``."""
    vals, order = torch.sort(w, dim=1)
    cw = torch.cumsum(weight.unsqueeze(-1).expand_as(w).gather(1, order), dim=1)
    out = []
    for q in qs:
        idx = (cw < q).sum(1, keepdim=True).clamp(max=w.shape[1] - 1)
        out.append(vals.gather(1, idx).squeeze(1))
    return out


class NewUser(NewUsers):
    """One new user's posterior: ``update`` with each answer, then ``predict_proba``,
    ``weights`` or :func:`bayespal.active.suggest` for the next question."""

    def __init__(self, fit, user_id="new user", **kwargs) -> None:
        super().__init__(fit, [user_id], **kwargs)

    def update(self, item_a, item_b, label, prompt=None) -> NewUser:
        """Add one (or several) answers: rows of the item table and ``label`` (1 = a);
        PAL-B: and the ``prompt`` rows."""
        a = np.atleast_1d(np.asarray(item_a))
        self.observe(np.repeat(self.ids[0], len(a)), a, np.atleast_1d(item_b),
                     np.atleast_1d(label), None if prompt is None else np.atleast_1d(prompt))
        return self

    def predict_proba(self, item_a, item_b, prompt=None) -> np.ndarray:  # type: ignore[override]
        a = np.atleast_1d(np.asarray(item_a))
        return super().predict_proba(np.repeat(self.ids[0], len(a)), a, np.atleast_1d(item_b),
                                     None if prompt is None else np.atleast_1d(prompt))


class PointNewUsers(NewUsers):
    """The reference PAL's few-shot recipe, for comparison: each user's weights by maximum
    likelihood (softmax-parametrised, gradient descent from the simplex centre), the
    population plugged in at its point estimate. No uncertainty (``sd`` is 0)."""

    def __init__(self, fit, ids: Sequence = (0,), *, items: np.ndarray | None = None,
                 prompts: np.ndarray | None = None, steps: int = 200, lr: float = 0.1,
                 seed: int = 0) -> None:
        if isinstance(fit, EnsemblePAL):
            raise ValueError("fit: got EnsemblePAL; expected a FittedPAL (the reference's "
                             "point estimate uses one population: use ens.members[i])")
        self.steps, self.lr = steps, lr
        super().__init__(fit, ids, items=items, prompts=prompts, population="mean",
                         num_samples=1, seed=seed)

    def _refresh(self, max_rounds: int = 0) -> None:
        logits = torch.zeros(len(self.ids), self.k, requires_grad=True)
        with torch.enable_grad():  # may be first asked for inside a no_grad prediction
            self._fit_logits(logits)
        self._log_w = logits.detach().log_softmax(-1).unsqueeze(1)
        self._weight = torch.ones(len(self.ids), 1)
        self._ess = torch.ones(len(self.ids))

    def _fit_logits(self, logits: torch.Tensor) -> None:
        if self._a.shape[1]:
            opt = torch.optim.Adam([logits], lr=self.lr)
            for _ in range(self.steps):
                loss = -self._log_lik(logits.log_softmax(-1).unsqueeze(1)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()


def place_users(fit, data: PreferenceData, method: str = "bayes", **kwargs) -> NewUsers:
    """Posteriors for all users of ``data`` from their comparisons, in one vectorised call
    (the population stays fixed). Items are rows of ``data.items``. ``method="point"``
    gives the reference PAL's maximum-likelihood few-shot estimate instead."""
    if method not in ("bayes", "point"):
        raise ValueError(f"method: got {method!r}; expected 'bayes' or 'point'")
    cls = NewUsers if method == "bayes" else PointNewUsers
    users = cls(fit, data.user_ids, items=data.items, prompts=data.prompts, **kwargs)
    users.observe(data.user_ids[data.user], data.item_a, data.item_b, data.label.astype(int),
                  data.prompt)
    return users
