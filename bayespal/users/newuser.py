"""Few-shot posteriors for new, unseen users, without refitting the population.

The population (mapping ``f``, prototypes ``P``, sharpness ``beta``, the weights' prior)
stays fixed; only a new user's mixture weights ``w`` are inferred. Because the
PAL-A logit is linear in ``w`` (``logit = beta * w . (r(a) - r(b))``), this is a
K-dimensional Bayesian logistic regression on the simplex with the population prior
(``Dirichlet(alpha)`` by default, or with ``weight_prior="mixture"`` a mixture of Dirichlets
``sum_c pi_c Dirichlet(alpha_c)``).
PAL-B is the same with each answer's prompt-dependent rewards (pass its ``prompt``); with
the cosine score the logit is ``w . d / sqrt(w^T G w)`` and the sampler is unchanged.

We compute it by **adaptive importance sampling**, vectorised over users: draws from the
prior (shared by all users), then up to three rounds of a *defensive* proposal (``10%``
prior + ``90%`` a logistic-normal fitted to the current weighted draws, full
covariance, 1.5x wider) until the effective sample size (ESS) is at least ``min_ess``
of the draws (or stops growing). After new answers the last proposal is the first one tried, so an update
usually takes one round. Work is lazy: answers are recorded at once, the posterior is
computed when first asked for. The weights are exact up to Monte Carlo error, which
ESS reports; the posterior agrees with NUTS (``tests/users/test_newuser.py``).

``population="draws"`` (the default) integrates over ``num_population_draws`` posterior
draws of the population (each importance draw is paired with one population draw);
``"mean"`` plugs in the population's posterior mean. ``benchmarks/newuser_calibration.py``
measures both; see ``docs/results.md``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from bayespal.checks import check_int, check_seed
from bayespal.data import (
    PreferenceData,
    check_labels,
    encode_rankings,
    pad_lists,
    ranking_stages,
)
from bayespal.model import BoundPopulation
from bayespal.model.likelihood import (
    choice_logits,
    expected_score,
    mixture_logits,
    outcome_bounds,
    outcome_log_prob,
    outcome_probs,
    outcome_slopes,
)
from bayespal.posterior import Posterior

DEFENSIVE = 0.1  # share of the prior in the proposal mixture
POP_DEFENSIVE = 0.25  # share of draws spread evenly over population draws (rest: by evidence)
# a mixture prior's components that get a Laplace proposal of their own: those with at least
# this share in some population draw (the others are reached by the prior's share)
PROPOSAL_SHARE = 0.05
PROPOSAL_FLOOR = 0.1  # share of the non-prior draws spread evenly over the proposals
T_DF = 5.0  # degrees of freedom of the Student-t proposal at the Laplace mode
POPULATION_ESS_FLOOR = 4  # warn when fewer population draws carry a user's posterior
ESS_FLOOR = 200  # warn when a user's ESS falls below min(ESS_FLOOR, num_samples / 4)
CHUNK_ELEMENTS = 2**24  # numbers per intermediate when work is chunked over users
SET_KINDS = ("best_of", "ranking")  # questions over sets of items (draw_set_probs)
MAX_RANKED = 6  # the largest set whose orders (n!) a ranking question is scored over


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


def _log_prior(log_w: torch.Tensor, log_prop: torch.Tensor, conc: torch.Tensor
               ) -> torch.Tensor:
    """The population prior's log density ``sum_c pi_c Dirichlet(w; alpha_c)`` from ``log w
    (..., K)``; ``log_prop (..., C)``, ``conc (..., C, K)``."""
    return torch.logsumexp(log_prop + _log_dirichlet(log_w.unsqueeze(-2), conc), -1)


def _sample_log_prior(log_prop: torch.Tensor, conc: torch.Tensor) -> torch.Tensor:
    """One draw of ``log w`` ``(B, K)`` from each row's prior (``log_prop (B, C)``, ``conc
    (B, C, K)``): a component, then its Dirichlet (``_sample_log_dirichlet``)."""
    if conc.shape[1] > 1:
        comp = torch.multinomial(log_prop.exp(), 1)[:, 0]
        conc = conc[torch.arange(len(comp)), comp][:, None]
    return _sample_log_dirichlet(conc[:, 0], 1)[:, 0]


def _alr_inverse(y: torch.Tensor) -> torch.Tensor:
    """``log w`` from additive log-ratio coordinates ``y = log(w_k / w_K)``, ``(..., K-1)``."""
    full = torch.cat([y, torch.zeros_like(y[..., :1])], -1)
    return full - torch.logsumexp(full, -1, keepdim=True)


def _chunks(n: int, per_item: int):
    """Slices of ``range(n)`` holding at most ``CHUNK_ELEMENTS`` numbers of ``per_item`` each."""
    step = max(1, CHUNK_ELEMENTS // max(1, per_item))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _chol_pd(a: torch.Tensor, floor: float) -> torch.Tensor:
    """Cholesky factors of symmetric matrices ``(..., J, J)``; the few that are not positive
    definite get their eigenvalues floored at ``floor`` first (eigh only for those)."""
    chol, info = torch.linalg.cholesky_ex(a)
    bad = info != 0
    if bool(bad.any()):
        lam, vec = torch.linalg.eigh(a[bad])
        fixed = (vec * lam.clamp_min(floor).unsqueeze(-2)) @ vec.transpose(-1, -2)
        chol[bad] = torch.linalg.cholesky(fixed + floor * torch.eye(a.shape[-1]))
    return chol


class _DirichletProposal:
    """A Dirichlet proposal in log-ratio coordinates, with ``_StudentT``'s interface: a
    sparse prior component (``alpha (P, K)``, per population draw) or one fitted per user
    (``moments``, ``alpha (U, K)``). Under a sparse
    component (``alpha_k < 1``) the posterior of a user with few answers keeps the prior's
    heavy tails towards the simplex's corners (in ``y``: tails like ``exp(-alpha |y|)``),
    which a Laplace approximation does not reach."""

    def __init__(self, alpha: torch.Tensor, per_user: bool = False) -> None:
        self.alpha, self.per_user = alpha, per_user  # (P, K), or (U, K) per user

    def subset(self, rows: torch.Tensor) -> _DirichletProposal:
        return _DirichletProposal(self.alpha[rows], True) if self.per_user else self

    @classmethod
    def moments(cls, log_w: torch.Tensor, weight: torch.Tensor) -> _DirichletProposal:
        """A Dirichlet per user matched to the mean and (pooled) variance of weighted draws
        ``log_w (U, S, K)``: near a corner its power-law tails follow a sparse prior's,
        where a t in ``y`` cannot (measured, K = 4, 1,000 answers near a corner under the
        mixture prior: ESS 19% of the draws without it, 33% with it)."""
        w = log_w.exp()
        mean = (weight.unsqueeze(-1) * w).sum(1)  # (U, K)
        var = (weight.unsqueeze(-1) * (w - mean.unsqueeze(1)).pow(2)).sum(1)
        total = (mean * (1 - mean)).sum(-1) / var.sum(-1).clamp_min(1e-12) - 1
        return cls((mean * total.clamp_min(1e-3).unsqueeze(-1)).clamp_min(1e-3), True)

    def sample(self, group: torch.Tensor) -> torch.Tensor:
        """One draw ``y (U, S, J)`` for each population draw in ``group (U, S)``."""
        k = self.alpha.shape[-1]
        alpha = self._at(group)
        log_w = _sample_log_dirichlet(alpha.reshape(-1, k), 1).reshape(*group.shape, k)
        return log_w[..., :-1] - log_w[..., -1:]

    def _at(self, group: torch.Tensor) -> torch.Tensor:
        if self.per_user:
            return self.alpha[:, None, :].expand(*group.shape, self.alpha.shape[-1])
        return self.alpha[group]

    def log_prob(self, y: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Log density of ``y (U, S, J)`` (the Dirichlet's, times the Jacobian ``prod w``)."""
        log_w = _alr_inverse(y)
        return _log_dirichlet(log_w, self._at(group)) + log_w.sum(-1)


class _StudentT:
    """Multivariate Student-t proposals in log-ratio coordinates ``y = log(w_k / w_K)``, one
    per user and group (a population draw, or one per user): location ``(U, G, J)``, a
    square root ``root`` of the scale matrix (``root root^T``) and its inverse ``whiten``."""

    def __init__(self, loc: torch.Tensor, root: torch.Tensor, whiten: torch.Tensor,
                 log_det: torch.Tensor) -> None:
        self.loc, self.root, self.whiten, self.log_det = loc, root, whiten, log_det

    @classmethod
    def from_precision(cls, loc: torch.Tensor, precision: torch.Tensor) -> _StudentT:
        """From a precision matrix (e.g. ``-H`` at a mode; flat directions floored): with
        ``precision = L L^T`` the scale root is ``L^-T`` and the whitening map ``L^T``."""
        chol = _chol_pd(precision, 1e-6)
        eye = torch.eye(loc.shape[-1]).expand_as(chol)
        root = torch.linalg.solve_triangular(chol, eye, upper=False).transpose(-1, -2)
        log_det = -torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
        return cls(loc, root, chol.transpose(-1, -2), log_det)

    @classmethod
    def from_covariance(cls, loc: torch.Tensor, cov: torch.Tensor) -> _StudentT:
        """From a scale (covariance) matrix ``C C^T``: root ``C``, whitening map ``C^-1``."""
        chol = _chol_pd(cov, 1e-6)
        eye = torch.eye(loc.shape[-1]).expand_as(chol)
        whiten = torch.linalg.solve_triangular(chol, eye, upper=False)
        return cls(loc, chol, whiten, torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1))

    def subset(self, rows: torch.Tensor) -> _StudentT:
        return _StudentT(self.loc[rows], self.root[rows], self.whiten[rows], self.log_det[rows])

    def _at(self, group: torch.Tensor, what: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(group.shape[0])[:, None]
        return what[rows, group.clamp(max=self.loc.shape[1] - 1)]  # one group: all use it

    def sample(self, group: torch.Tensor) -> torch.Tensor:
        """One draw ``y (U, S, J)`` for each group index in ``group (U, S)``. Neighbouring
        draws are antithetic (``eps`` and ``-eps``): each is still a draw of the t, and the
        pairs cancel much of the Monte Carlo error of symmetric posteriors."""
        u, s = group.shape
        j = self.loc.shape[-1]
        half = (s + 1) // 2
        eps = torch.randn(u, half, j)
        eps = torch.stack([eps, -eps], 2).reshape(u, 2 * half, j)[:, :s]
        chi = torch.distributions.Chi2(torch.tensor(T_DF)).sample((u, half))
        chi = chi.repeat_interleave(2, 1)[:, :s] / T_DF
        step = torch.einsum("usij,usj->usi", self._at(group, self.root), eps)
        return self._at(group, self.loc) + step / chi.sqrt().unsqueeze(-1)

    def log_prob(self, y: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Log density of ``y (U, S, J)`` under each draw's group's proposal."""
        z = torch.einsum("usij,usj->usi", self._at(group, self.whiten),
                         y - self._at(group, self.loc))
        j, nu = y.shape[-1], T_DF
        return (math.lgamma((nu + j) / 2) - math.lgamma(nu / 2) - 0.5 * j * math.log(nu * math.pi)
                - self._at(group, self.log_det) - 0.5 * (nu + j) * torch.log1p(z.pow(2).sum(-1) / nu))

    @classmethod
    def moments(cls, y: torch.Tensor, weight: torch.Tensor, widen: float = 1.5) -> _StudentT:
        """Fitted to weighted draws ``y (U, S, J)``, one per user, ``widen`` times wider."""
        mean = (weight.unsqueeze(-1) * y).sum(1)
        dev = y - mean.unsqueeze(1)
        cov = torch.einsum("us,usi,usj->uij", weight, dev, dev) * widen**2
        cov = cov + 1e-4 * torch.eye(y.shape[-1])
        return cls.from_covariance(mean.unsqueeze(1), cov.unsqueeze(1))


def _laplace(y0: torch.Tensor, alpha: torch.Tensor, diff: torch.Tensor, gram: torch.Tensor | None,
             level: torch.Tensor, cuts: torch.Tensor, max_iter: int = 50,
             choice: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Laplace approximations of the posterior in log-ratio coordinates, one per user and
    population draw: ``(mode, curvature, log evidence)``, shapes ``(U, P, J)``,
    ``(U, P, J, J)`` and ``(U, P)``; ``alpha (P, K)``, ``diff (P, U, n, K)`` (``gram (P, U,
    n, K, K)``), ``level (U, n)`` (-1: padding), ``cuts (P, L - 1)``.

    The log target in ``y`` is ``sum_k alpha_k log w_k + log Gamma(A) - sum_k log Gamma(alpha_k)
    + sum_n log P(level_n | logit_n(w))``: the Dirichlet prior pushed to ``y`` (its Jacobian
    is ``prod_k w_k``) times the likelihood (``likelihood.outcome_log_prob``; binary:
    ``log sigmoid(+-logit)``; choices from sets, ``choice = (diff_o (P, U, n, m, K), o (U,
    n, m))``: the log-softmax of ``likelihood.choice_logits``). Damped Newton ascent from
    ``y0`` (curvature
    floored where the target is not concave, steps capped and line-searched), each of the
    ``U * P`` problems until its gradient is below ``1e-3``; the importance weights correct
    what an approximate mode leaves."""
    u, p, j = y0.shape
    k = j + 1
    # one flat batch of U * P problems, (user, population draw) in row-major order
    d = diff.permute(1, 0, 2, 3).reshape(u * p, -1, k)
    gm = None if gram is None else gram.permute(1, 0, 2, 3, 4).reshape(u * p, -1, k, k)
    a = alpha.expand(u, p, k).reshape(u * p, k)
    lo, hi = (t.reshape(u * p, -1) for t in outcome_bounds(level[:, None, :], cuts[None]))
    ch = None
    if choice is not None:  # (diff_o, o, level) flattened like d
        od, o = choice
        n, m = o.shape[1], o.shape[2]
        ch = (od.permute(1, 0, 2, 3, 4).reshape(u * p, n, m, k),
              o[:, None].expand(u, p, n, m).reshape(u * p, n, m),
              level[:, None].expand(u, p, n).reshape(u * p, n))
    y = y0.reshape(u * p, j).clone()
    active = torch.arange(u * p)
    for _ in range(max_iter):
        args = (a[active], d[active], None if gm is None else gm[active], lo[active],
                hi[active], None if ch is None else tuple(t[active] for t in ch))
        ya = y[active]
        f, g, h = _derivatives(ya, *args)
        step = torch.cholesky_solve(g.unsqueeze(-1), _chol_pd(-h, 1e-3)).squeeze(-1)
        norm = step.norm(dim=-1, keepdim=True)
        step = step * (4.0 / norm.clamp_min(1e-12)).clamp(max=1.0)  # a trust region
        best_f, best_t = f, torch.zeros_like(f)
        for t in (1.0, 0.5, 0.25, 0.1, 0.02):  # backtracking, while any point fails
            ft = _log_target(ya + t * step, *args)
            better = (ft > best_f) & (best_t == 0)
            best_f, best_t = torch.where(better, ft, best_f), torch.where(better, t, best_t)
            if bool((best_t > 0).all()):
                break
        moved = best_t.unsqueeze(-1) * step
        y[active] = ya + moved
        going = (g.abs().amax(-1) >= 1e-3) & (moved.abs().amax(-1) >= 1e-5)
        active = active[going]
        if len(active) == 0:
            break
    f, _, h = _derivatives(y, a, d, gm, lo, hi, ch)
    half_log_det = torch.diagonal(_chol_pd(-h, 1e-6), dim1=-2, dim2=-1).log().sum(-1)
    log_evidence = f + 0.5 * j * math.log(2 * math.pi) - half_log_det
    return y.reshape(u, p, j), (-h).reshape(u, p, j, j), log_evidence.reshape(u, p)


def _choice_log_lik(w: torch.Tensor, logits: torch.Tensor, choice) -> torch.Tensor:
    """``log P(chosen)`` ``(B, n)`` of choices (0 for padding answers, level -1) for weights
    ``w (B, K)``, the pairs' ``logits (B, n)`` and ``choice = (diff_o (B, n, m, K), o (B, n,
    m), level (B, n))``."""
    od, o, level = choice
    z = choice_logits(w[:, None, :], logits, od, None, o)
    ll = torch.log_softmax(z, -1).gather(-1, level.clamp(min=0).unsqueeze(-1))[..., 0]
    return torch.where(level >= 0, ll, 0.0)


def _log_target(y, alpha, diff, gram, lo, hi, choice=None) -> torch.Tensor:
    """The log posterior density of ``y (B, J)`` (see ``_laplace``); ``alpha (B, K)``,
    ``lo, hi (B, n)`` the answers' ``outcome_bounds``, ``choice`` as for
    ``_choice_log_lik`` (None: no choices from sets) -> ``(B,)``."""
    log_w = _alr_inverse(y)
    logits = mixture_logits(log_w.exp().unsqueeze(-2), diff, gram)
    if choice is None:
        ll = outcome_log_prob(logits, lo, hi)
    else:
        ll = _choice_log_lik(log_w.exp(), logits, choice)
    norm = torch.lgamma(alpha.sum(-1)) - torch.lgamma(alpha).sum(-1)
    return (alpha * log_w).sum(-1) + norm + ll.sum(-1)


def _derivatives(y, alpha, diff, gram, lo, hi, choice=None):
    """``(f, grad, hessian)`` of ``_log_target`` at ``y (B, J)``.

    The likelihood's part is ``sum_n sum_j c_nj z_nj`` to first order in the utilities
    ``z_nj = w . D_nj`` of each answer's outcomes (binary and graded answers: the logit;
    choices: ``likelihood.choice_logits``), each linear in ``w``, so with ``e_nj = d z_nj /
    d y = w * (D_nj - z_nj)`` (``dw/dy = diag(w) - w w^T``) the gradient is ``G = sum c e``
    and the Hessian ``-sum_n Cov_n(e) + diag(G) - w G^T - G w^T``: the outcome model enters
    through ``c`` (observed minus expected) and the covariance of ``e`` under its
    probabilities."""
    if gram is not None:  # the cosine score: autograd (one backward pass per coordinate)
        with torch.enable_grad():
            yy = y.detach().requires_grad_(True)
            f = _log_target(yy, alpha, diff, gram, lo, hi, choice)
            (g,) = torch.autograd.grad(f.sum(), yy, create_graph=True)
            rows = [torch.autograd.grad(g[..., i].sum(), yy, retain_graph=True)[0]
                    for i in range(y.shape[-1])]
        return f.detach(), g.detach(), torch.stack(rows, -2).detach()
    # squared distance: logit = w . d is linear in w, and dw/dy = diag(w) - w w^T
    j = y.shape[-1]
    log_w = _alr_inverse(y)
    w = log_w.exp()  # (B, K)
    logit = mixture_logits(w.unsqueeze(-2), diff)
    if choice is None:
        g1, h1 = outcome_slopes(logit, lo, hi)  # d loglik / d logit, -d2 loglik / d logit2
        e = w.unsqueeze(-2) * (diff - logit.unsqueeze(-1))  # d logit / d y_full, (B, n, K)
        gl = torch.einsum("bn,bnk->bk", g1, e)
        curvature = torch.einsum("bn,bnk,bnl->bkl", h1, e, e)
        ll = outcome_log_prob(logit, lo, hi).sum(-1)
    else:  # choices: outcomes (b, a, others) with utilities z = w . D, D = (0, diff, diff_o)
        od, o, level = choice
        valid = (level >= 0).to(w.dtype)
        z = choice_logits(w[:, None, :], logit, od, None, o)  # (B, n, 2 + m)
        prob = torch.softmax(z, -1) * valid.unsqueeze(-1)
        big_d = torch.cat([torch.zeros_like(diff).unsqueeze(-2), diff.unsqueeze(-2), od], -2)
        e = w[:, None, None, :] * (big_d - torch.where(torch.isfinite(z), z, 0).unsqueeze(-1))
        hit = torch.nn.functional.one_hot(level.clamp(min=0), z.shape[-1]) * valid.unsqueeze(-1)
        gl = torch.einsum("bnj,bnjk->bk", hit - prob, e)
        mean_e = torch.einsum("bnj,bnjk->bnk", prob, e)
        curvature = (torch.einsum("bnj,bnjk,bnjl->bkl", prob, e, e)
                     - torch.einsum("bnk,bnl->bkl", mean_e, mean_e))
        ll = _choice_log_lik(w, logit, choice).sum(-1)
    a_sum = alpha.sum(-1, keepdim=True)  # (B, 1)
    grad = gl + alpha - a_sum * w
    outer_w = w.unsqueeze(-1) * w.unsqueeze(-2)
    hess = (-curvature + torch.diag_embed(gl)
            - w.unsqueeze(-1) * gl.unsqueeze(-2) - gl.unsqueeze(-1) * w.unsqueeze(-2)
            - a_sum.unsqueeze(-1) * (torch.diag_embed(w) - outer_w))
    norm = torch.lgamma(alpha.sum(-1)) - torch.lgamma(alpha).sum(-1)
    f = (alpha * log_w).sum(-1) + norm + ll
    return f, grad[..., :j], hess[..., :j, :j]


def _systematic(prob: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` indices per row of ``prob (U, P)`` by systematic sampling, ``(U, n)`` sorted."""
    points = (torch.arange(n).float() + torch.rand(prob.shape[0], 1)) / n
    cum = prob.cumsum(-1)
    return torch.searchsorted(cum / cum[:, -1:], points.contiguous()).clamp(max=prob.shape[1] - 1)


class NewUserPosteriors:
    """Posteriors of the mixture weights of a set of new users, updated as answers arrive.

    Users are named by ``ids``; comparisons name their items by the ids of ``items``
    (default: the fit's training items), or by row number where a method is given
    ``rows=True``. All computation is vectorised over users and chunked so that no
    intermediate holds more than ``CHUNK_ELEMENTS`` numbers.

    Parameters
    ----------
    posterior:
        A fitted posterior (``FittedPAL``, ``EnsemblePAL``):
        its population draws (``population_draws``) are
        the fixed population.
    ids:
        The new users' ids (unique).
    items, prompts:
        The item (and, PAL-B, prompt) tables that ids name: an
        ``EmbeddingTable``, a DataFrame of embeddings indexed by id, or a bare
        ``(M, D)`` array (its ids are its row numbers); default: the fit's own.
    population:
        ``"draws"`` integrates over ``num_population_draws`` posterior draws of the
        population; ``"mean"`` plugs in its posterior mean.
    num_samples:
        Importance draws per user (rounded up to a multiple of the population draws).
    min_ess:
        After new answers, the existing draws are reweighted by the new answers' likelihood
        while each user's effective sample size stays above ``min_ess * num_samples``;
        below it that user's sampler is rebuilt around the new posterior mode.
    seed:
        Seeds the importance sampler (predictions never touch torch's global random state).
    population_seed:
        Seeds the population draws (default: the fit's seed), so that two samplers of one
        fit share one population. With many answers a user's evidence picks out a few of
        the ``num_population_draws`` draws (``weights()["population_ess"]``); a warning
        says when fewer than ``POPULATION_ESS_FLOOR`` carry the posterior.
    """

    _incremental = True  # reweight existing draws by new answers (see ``min_ess``)

    def __init__(
        self,
        posterior: Posterior,
        ids: Sequence = (0,),
        *,
        items=None,
        prompts=None,
        population: str = "draws",
        num_population_draws: int = 64,
        num_samples: int = 2048,
        min_ess: float = 0.25,
        seed: int = 0,
        population_seed: int | None = None,
    ) -> None:
        if not isinstance(posterior, Posterior):
            raise ValueError(f"posterior: got {type(posterior).__name__}; expected a fitted "
                             "posterior (FittedPAL or EnsemblePAL)")
        num_samples = check_int("num_samples", num_samples)
        num_population_draws = check_int("num_population_draws", num_population_draws)
        if not (isinstance(min_ess, (int, float, np.number)) and 0 < float(min_ess) <= 1):
            raise ValueError(f"min_ess: got {min_ess!r}; expected a number in (0, 1]")
        seed = check_seed(seed)
        population_seed = check_seed(posterior.seed if population_seed is None
                                     else population_seed)
        self.items = posterior.item_table(items)
        self.prompts = None
        if prompts is not None or posterior.prompts is not None:
            self.prompts = posterior.prompt_table(prompts)
        self.ids = pd.Index(np.asarray(ids))
        if self.ids.has_duplicates or len(self.ids) == 0:
            raise ValueError(f"ids: got {list(ids)[:5]!r}; expected unique user ids (at least one)")
        self.pop: BoundPopulation = posterior.population_draws(
            num_population_draws, population, population_seed).bind(
                self.items.embeddings, None if self.prompts is None else self.prompts.embeddings,
                rows=posterior.training_rows(self.items.ids, self.items.embeddings))
        p = self.pop.size
        if num_samples < p or num_samples % p:
            num_samples = p * max(1, -(-num_samples // p))  # a multiple of P
        self.num_samples, self.min_ess, self.seed = num_samples, float(min_ess), seed
        u = len(self.ids)
        self._a = torch.zeros(u, 0, dtype=torch.long)
        self._b = torch.zeros(u, 0, dtype=torch.long)
        self._c = torch.zeros(u, 0, dtype=torch.long)  # prompt rows (PAL-B)
        self._level = torch.zeros(u, 0, dtype=torch.long)  # the answers' levels, -1: padding
        self._o = torch.zeros(u, 0, 0, dtype=torch.long)  # choices' further items, -1: none
        self._cuts = self.pop.draws.cuts().cpu()  # (P, L - 1)
        # user_cutpoints: each draw carries the user's own cutpoint log factor s, proposed
        # from the prior Normal(0, sigma^2) of its population draw (and, where that leaves
        # too few effective draws, from a normal fitted to the weighted draws)
        spread = self.pop.draws.cutpoint_spread
        self._spread = None if spread is None else spread.cpu()  # (P,)
        self._s: torch.Tensor | None = None  # (U, S) each draw's log factor
        self._count = torch.zeros(u, dtype=torch.long)
        self._used = torch.zeros(u, dtype=torch.long)  # answers the draws already reflect
        self._rounds = 0
        self._log_w: torch.Tensor | None = None  # (U, S, K) draws of log w
        self._stale = True
    # ------------------------------------------------------------------ data
    @property
    def k(self) -> int:
        return self.pop.k

    def n_answers(self) -> np.ndarray:
        """How many answers each user has given, in the order of ``ids``."""
        return self._count.numpy().copy()

    def _positions(self, user: Sequence) -> np.ndarray:
        pos = self.ids.get_indexer(np.asarray(user).reshape(-1))
        if (pos < 0).any():
            bad = np.asarray(user).reshape(-1)[np.flatnonzero(pos < 0)[0]].item()
            raise ValueError(f"user: got {bad!r}; expected one of this object's ids")
        return pos

    def _items(self, name: str, values, rows: bool) -> torch.Tensor:
        """Rows of the item table of items named by id (or, with ``rows``, by row)."""
        return torch.as_tensor(self.items.locate(values, name, rows))

    def _prompt_rows(self, prompt, n: int, rows: bool) -> torch.Tensor:
        """Prompt rows for ``n`` comparisons: required for PAL-B, zeros (unused) for PAL-A."""
        if not self.pop.takes_prompts:  # PAL-A: prompts play no part
            return torch.zeros(n, dtype=torch.long)
        if prompt is None:
            raise ValueError("prompt: got None; expected the comparisons' prompt ids "
                             "(this is a PAL-B fit)")
        if self.prompts is None:
            raise ValueError("prompts: got None; expected the prompt table the prompt ids "
                             "name (this fit holds none: pass prompts=)")
        c = torch.as_tensor(self.prompts.locate(prompt, "prompt", rows))
        if len(c) != n:
            raise ValueError(f"prompt: got length {len(c)}; expected {n}, one per comparison")
        return c

    def _others(self, others, a: torch.Tensor, b: torch.Tensor, rows: bool, n_levels: int
                ) -> torch.Tensor:
        """The further items of choices as item rows ``(n, m)`` (-1: none), checked. With
        ``rows`` a padded ``(n, m)`` integer array (-1: none, as ``PreferenceData.others``)
        is taken as it is; otherwise one list of ids per answer."""
        n = len(a)
        if others is None:
            return torch.full((n, 0), -1, dtype=torch.long)
        if rows and isinstance(others, (np.ndarray, torch.Tensor)) and others.ndim == 2:
            out = torch.as_tensor(np.asarray(others), dtype=torch.long)
            if len(out) != n:
                raise ValueError(f"others: got {len(out)} rows; expected {n}, one per answer")
            if bool(((out < -1) | (out >= len(self.items))).any()):
                raise ValueError(f"others: got rows outside [-1, {len(self.items) - 1}]; "
                                 "expected item rows (-1: none)")
        else:
            lists = [list(x) for x in others]
            if len(lists) != n:
                raise ValueError(f"others: got length {len(lists)}; expected {n}, one list per "
                                 "answer")
            values, valid = pad_lists(lists)
            out = torch.full(values.shape, -1, dtype=torch.long)
            if valid.any():
                flat = values[valid]
                out[torch.as_tensor(valid)] = torch.as_tensor(self.items.locate(
                    flat if not rows else flat.astype(np.int64), "others", rows))
        if out.shape[1] == 0 or not bool((out >= 0).any()):
            return torch.full((n, 0), -1, dtype=torch.long)
        if n_levels != 2:
            raise ValueError(f"others: got further items with a fit of {n_levels} levels; "
                             "expected binary answers (a choice from a set)")
        if self.pop.metric != "distance":
            raise ValueError("others: got choices from sets with the cosine metric; expected "
                             "a fit with the distance metric")
        full = torch.cat([a[:, None], b[:, None], out], 1)
        srt = full.sort(1).values
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if bool(dup.any()):
            i = int(torch.nonzero(dup.any(1))[0, 0])
            shown = out[i][out[i] >= 0].tolist() if rows else [
                self.items.ids[x].item() for x in out[i][out[i] >= 0].tolist()]
            raise ValueError(f"others[{i}]: got {shown!r}; expected items other than "
                             "item_a, item_b and each other")
        return out

    def observe(self, user, item_a, item_b, label, prompt=None, *, others=None,
                rows: bool = False) -> NewUserPosteriors:
        """Add answers (any number per user); the posteriors are updated when next asked for.
        Invalid input is refused before anything is recorded.

        Parameters
        ----------
        user:
            Each answer's user (one of ``ids``).
        item_a, item_b:
            Each answer's items, ids of the item table (two different items).
        label:
            1 where ``item_a`` was preferred, else 0; for a fit of graded answers
            (``levels > 2``) the grade divided by ``levels - 1`` (0.5: a tie).
        prompt:
            PAL-B: each answer's prompt id (ignored for PAL-A).
        others:
            Choices from larger sets: per answer, a list of the further items shown (ids,
            possibly none; with ``rows`` also a padded ``(n, m)`` array of rows, -1: none,
            as ``PreferenceData.others``); the label then says which of item_a (1) and
            item_b (0) was chosen over all of them. A ranking is its choices
            (``bayespal.data.ranking_stages``).
        rows:
            ``item_a``, ``item_b``, ``others`` and ``prompt`` are row numbers of the tables,
            not ids.
        """
        pos = self._positions(user)
        a, b = self._items("item_a", item_a, rows), self._items("item_b", item_b, rows)
        c = self._prompt_rows(prompt, len(a), rows)
        y = np.asarray(label).reshape(-1)
        if not (len(pos) == len(a) == len(b) == len(y)):
            raise ValueError(f"label: got lengths user={len(pos)}, item_a={len(a)}, "
                             f"item_b={len(b)}, label={len(y)}; expected equal lengths")
        n_levels = self.pop.draws.levels
        level = np.rint(check_labels(y, len(y), n_levels) * (n_levels - 1)).astype(np.int64)
        if (a == b).any():
            same = self.items.ids[int(b[a == b][0])].item()
            raise ValueError(f"item_b: got {same!r}, the same item as item_a; expected two "
                             "different items")
        more = self._others(others, a, b, rows, n_levels)
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
            self._level = torch.cat([self._level, pad - 1], 1)
            self._o = torch.cat([self._o, torch.full((len(self.ids), grow, self._o.shape[2]),
                                                     -1, dtype=torch.long)], 1)
        if more.shape[1] > self._o.shape[2]:
            self._o = torch.cat([self._o, torch.full(
                (*self._o.shape[:2], more.shape[1] - self._o.shape[2]), -1, dtype=torch.long)],
                2)
        more = torch.cat([more, torch.full((len(more), self._o.shape[2] - more.shape[1]), -1,
                                           dtype=torch.long)], 1)
        pos_t, slot_t = torch.as_tensor(pos), torch.as_tensor(slot)
        self._o[pos_t, slot_t] = more
        self._a[pos_t, slot_t], self._b[pos_t, slot_t] = a, b
        self._c[pos_t, slot_t] = c
        self._level[pos_t, slot_t] = torch.as_tensor(level)
        self._count += torch.bincount(pos_t, minlength=len(self.ids))
        self._stale = True
        return self

    def observe_rankings(self, user, sets, ranks=None, prompt=None, *, rows: bool = False,
                         seed: int = 0) -> NewUserPosteriors:
        """Add rankings (or, with one rank each, best-of-n choices): ``user[r]`` ranked the
        items ``sets[r]`` as ``ranks[r]`` (1 = best; equal ranks tie; None: not ranked;
        ``ranks=None``: each set is listed best first). Each ranking is observed as the
        choices that make it (``bayespal.data.ranking_stages``: Plackett-Luce).

        Parameters
        ----------
        user:
            ``(R,)`` each ranking's user.
        sets:
            ``R`` lists of item ids (rows, with ``rows``).
        ranks:
            ``R`` lists of ranks, or None.
        prompt:
            PAL-B: each ranking's prompt id.
        rows:
            Items and prompts are given as row numbers, not ids.
        seed:
            Seeds the layout of each choice (which alternative is item_b; the likelihood
            does not depend on it).
        """
        user = np.asarray(user, dtype=object).reshape(-1)
        ids = np.arange(len(self.items)) if rows else self.items.ids
        codes, rank = encode_rankings(sets, ranks, ids)
        if len(user) != len(codes):
            raise ValueError(f"user: got length {len(user)}; expected {len(codes)}, one per "
                             "ranking")
        answer, a, b, label, more = ranking_stages(codes, rank, np.random.default_rng(seed))
        c = None
        if prompt is not None and self.pop.takes_prompts:
            c = self._prompt_rows(prompt, len(codes), rows).numpy()[answer]
        return NewUserPosteriors.observe(self, user[answer], a, b, label, c, others=more,
                                         rows=True)

    # ------------------------------------------------------------------ inference
    def _answers(self, pos: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
        """Users ``pos``' answers in slots ``[lo, hi)``, padded: ``((a, b, c, o), level)``,
        item and prompt rows ``(u, n)``, the choices' further items ``(u, n, m)`` (-1: none)
        and the answers' levels ``(u, n)`` (-1: padding)."""
        width = int((hi - lo).max()) if len(pos) else 0
        slot = lo[:, None] + torch.arange(width)
        valid = slot < hi[:, None]
        slot = slot.clamp(max=max(0, self._a.shape[1] - 1))
        rows = pos[:, None]
        if width == 0:
            a = b = c = torch.zeros(len(pos), 0, dtype=torch.long)
            o = torch.zeros(len(pos), 0, self._o.shape[2], dtype=torch.long)
            level = torch.zeros(len(pos), 0, dtype=torch.long)
        else:
            a, b, c = self._a[rows, slot], self._b[rows, slot], self._c[rows, slot]
            o = self._o[rows, slot]
            level = torch.where(valid, self._level[rows, slot], -1)
        return (a, b, c, o), level

    def _user_cuts(self, pop: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """Cutpoints ``(u, S, L - 1)`` of draws of population draws ``pop (u, S)``, scaled by
        the draws' cutpoint log factors ``s (u, S)`` (``user_cutpoints``; None: none)."""
        cuts = self._cuts[pop]
        return cuts if s is None else cuts * s.exp().unsqueeze(-1)

    def _draw_factors(self, pop: torch.Tensor, fitted=None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cutpoint log factors ``s (u, S)`` for draws of population draws ``pop (u, S)``:
        from each draw's prior ``Normal(0, sigma^2)`` or, with ``fitted = (loc (u,), scale
        (u,))``, half of them from that normal. Returns ``(s, log prior, log proposal)``."""
        sigma = self._spread[pop]
        s = torch.randn(pop.shape) * sigma
        if fitted is not None:
            loc, scale = fitted
            near = loc[:, None] + scale[:, None] * torch.randn(pop.shape)
            s = torch.where(torch.rand(pop.shape) < 0.5, near, s)
        log_prior = torch.distributions.Normal(0.0, sigma).log_prob(s)
        if fitted is None:
            return s, log_prior, log_prior
        log_near = torch.distributions.Normal(fitted[0][:, None], fitted[1][:, None]).log_prob(s)
        return s, log_prior, torch.logaddexp(log_prior, log_near) - math.log(2)

    def _loglik(self, log_w: torch.Tensor, pop: torch.Tensor, rows, level,
                s: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(answers | w)`` of draws ``log_w (u, S, K)`` of population draws ``pop``
        (and cutpoint log factors ``s (u, S)``, ``user_cutpoints``; None: the draws' own
        cutpoints) for the answers ``rows = (a, b, c)`` with ``level`` of ``_answers``."""
        if level.shape[1] == 0:
            return log_w.new_zeros(log_w.shape[:2])
        a, b, c, o = rows
        if o.shape[-1]:  # choices from sets: a categorical over (b, a, others)
            z = self.pop.choice_logits(log_w.exp(), pop, a, b, c, o)
            ll = torch.log_softmax(z, -1).gather(
                -1, level.clamp(min=0)[:, None, :, None].expand(*z.shape[:3], 1))[..., 0]
            return torch.where(level[:, None, :] >= 0, ll, 0.0).sum(-1)
        logits = self.pop.logits(log_w.exp(), pop, a, b, c)
        lo, hi = outcome_bounds(level[:, None, :], self._user_cuts(pop, s))
        return outcome_log_prob(logits, lo, hi).sum(-1)

    def _per_user(self, width: int) -> int:
        """Numbers per user in the largest intermediate of a likelihood pass."""
        k = self.k
        return (self.num_samples * max(1, width) * k * (k if self.pop.metric == "cosine" else 1)
                * (2 + self._o.shape[2]))

    def _state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_w (U, S, K), weight (U, S), ess (U,))``, brought up to date with every
        answer: new answers reweight the existing draws; a user whose ESS then falls below
        ``min_ess`` gets new draws around the new posterior mode."""
        if not self._stale:
            return self._log_w, self._weight, self._ess
        u = len(self.ids)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + self._rounds)
            self._rounds += 1
            if self._log_w is None or not self._incremental:
                self._refresh(torch.arange(u))
            else:
                changed = torch.nonzero(self._count > self._used).reshape(-1)
                width = int((self._count - self._used)[changed].max()) if len(changed) else 0
                for part in _chunks(len(changed), self._per_user(width)):
                    pos = changed[part]
                    rows, level = self._answers(pos, self._used[pos], self._count[pos])
                    self._log_weight[pos] += self._loglik(
                        self._log_w[pos], self._pop[pos], rows, level,
                        None if self._s is None else self._s[pos])
                ess = _kish(torch.softmax(self._log_weight[changed], -1))
                redo = changed[ess < self.min_ess * self.num_samples]
                if len(redo):
                    self._refresh(redo)
            self._used = self._count.clone()
            self._weight = torch.softmax(self._log_weight, -1)
            self._ess = _kish(self._weight)
            pop_w = torch.zeros(u, self.pop.size).scatter_add_(1, self._pop, self._weight)
            self._population_ess = _kish(pop_w)
        few = self._population_ess < min(POPULATION_ESS_FLOOR, self.pop.size / 2)
        if bool(few.any()):
            warnings.warn(
                f"new-user posterior: the answers of {int(few.sum())} of {u} users single out "
                f"fewer than {min(POPULATION_ESS_FLOOR, self.pop.size / 2):g} of the "
                f"{self.pop.size} population draws (lowest "
                f"{float(self._population_ess.min()):.1f}); raise num_population_draws for "
                "an accurate account of the population's uncertainty", RuntimeWarning,
                stacklevel=3)
        floor = min(ESS_FLOOR, self.num_samples / 4)
        low = self._ess < floor
        if bool(low.any()) and self.k > 1:
            warnings.warn(
                f"new-user posterior: effective sample size below {floor:g} for "
                f"{int(low.sum())} of {u} users (lowest {float(self._ess.min()):.1f} of "
                f"{self.num_samples} draws); raise num_samples for accurate intervals",
                RuntimeWarning, stacklevel=3)
        self._stale = False
        return self._log_w, self._weight, self._ess

    def _refresh(self, users: torch.Tensor) -> None:
        """New importance draws for ``users`` from all their answers: for each population draw
        a Laplace approximation (mode and curvature in log-ratio coordinates, warm-started at
        the last mode); draws allocated among population draws by their Laplace evidence
        (``1 - POP_DEFENSIVE``) and uniformly (``POP_DEFENSIVE``); each draw from a Student-t
        at its population draw's mode (``1 - DEFENSIVE``) or the prior (``DEFENSIVE``), and
        weighted by target / proposal (the mixture densities, so the estimate is exact up to
        Monte Carlo error). With a mixture prior, each of its components with a share of
        at least ``PROPOSAL_SHARE`` gets its own Laplace approximations, the evidence summed
        over them, and a sparse one (``alpha_k < 1`` on average) also itself as a proposal
        (``_DirichletProposal``); the non-prior draws are shared among the proposals by each
        component's Laplace posterior probability (``PROPOSAL_FLOOR`` of them evenly), and
        the adaptive pass shares them by where the weighted draws came from. The target is
        the whole prior."""
        u_all, s, k, p = len(self.ids), self.num_samples, self.k, self.pop.size
        draws = self.pop.draws
        log_prop = draws.prior_log_proportions  # (P, C)
        order = torch.argsort(log_prop.exp().amax(0), descending=True)
        # the largest component always qualifies (its share is at least 1 / C)
        comps = [int(c) for c in order if float(log_prop[:, c].exp().max()) >= PROPOSAL_SHARE]
        alphas = [draws.prior_concentrations[:, c] for c in comps]  # each (P, K)
        mixture = log_prop.shape[1] > 1
        if self._log_w is None:
            self._log_w = torch.zeros(u_all, s, k)
            self._log_weight = torch.zeros(u_all, s)
            self._pop = torch.zeros(u_all, s, dtype=torch.long)
            if self._spread is not None:
                self._s = torch.zeros(u_all, s)
            mean = draws.prior_mean_weights()
            y0 = (mean[:, :-1].log() - mean[:, -1:].log()).expand(u_all, p, k - 1)
            self._mode = y0.clone()
        width = int(self._count[users].max()) if len(users) else 0
        per_user = max(self._per_user(width), p * max(1, width) * k * k)
        for part in _chunks(len(users), per_user):
            pos = users[part]
            uu = len(pos)
            rows, level = self._answers(pos, torch.zeros_like(pos), self._count[pos])
            if k == 1:
                log_w = torch.zeros(uu, s, 1)
                log_ev = self._loglik(log_w[:, :p], torch.arange(p).expand(uu, p), rows,
                                      level)  # (uu, P): the log evidence of each draw
                q_pop = (1 - POP_DEFENSIVE) * torch.softmax(log_ev, -1) + POP_DEFENSIVE / p
                pop = _systematic(q_pop, s)
                log_q = q_pop.gather(1, pop).log()
                factors = None
                if self._spread is not None:  # from the prior: its density cancels
                    factors = self._draw_factors(pop)[0]
                log_target = self._loglik(log_w, pop, rows, level, factors) - math.log(p)
            else:
                diff, gram = self.pop.terms(*rows[:3])  # (P, uu, n, K)
                choice = None
                if rows[3].shape[-1]:  # choices from sets: their further items' terms
                    choice = (self.pop.other_terms(rows[3], rows[1], rows[2])[0], rows[3])
                laplaces, log_evs, sparse = [], [], []
                for c, alpha in zip(comps, alphas, strict=True):
                    start = self._mode[pos]
                    if p > 1:  # start every population draw at the averaged problem's mode
                        start = _laplace(start[:, :1], alpha.mean(0, keepdim=True),
                                         diff.mean(0, keepdim=True),
                                         None if gram is None else gram.mean(0, keepdim=True),
                                         level, self._cuts.mean(0, keepdim=True),
                                         choice=None if choice is None else (
                                             choice[0].mean(0, keepdim=True), choice[1])
                                         )[0].expand_as(start)
                    mode, curvature, log_ev = _laplace(start, alpha, diff, gram, level,
                                                       self._cuts, choice=choice)
                    if not laplaces:  # the largest component's modes: the next warm start
                        new_mode = mode
                    laplaces.append(_StudentT.from_precision(mode, curvature))
                    log_evs.append(log_ev + log_prop[:, c])
                    # one Dirichlet (C = 1): the prior's share (DEFENSIVE) is its proposal
                    sparse.append(mixture and float(alpha.mean()) < 1)
                self._mode[pos] = new_mode
                per_comp = torch.stack(log_evs, -1)  # (uu, P, C')
                log_ev = torch.logsumexp(per_comp, -1)  # (uu, P)
                q_pop = (1 - POP_DEFENSIVE) * torch.softmax(log_ev, -1) + POP_DEFENSIVE / p
                # each component's proposals get its share of the (Laplace) posterior; a
                # sparse one's is split between its Laplace and its own Dirichlet
                resp = torch.softmax(torch.logsumexp(per_comp, 1), -1)  # (uu, C')
                half = torch.tensor([0.5 if sp else 1.0 for sp in sparse])
                shares = torch.cat([resp * half, resp[:, half < 1] * 0.5], -1)
                shares = (1 - PROPOSAL_FLOOR) * shares + PROPOSAL_FLOOR / shares.shape[-1]
                laplaces += [_DirichletProposal(alpha) for alpha, sp in zip(alphas, sparse,
                                                                             strict=True) if sp]
                log_w, pop, log_target, log_q, factors, owner = self._importance(
                    rows, level, q_pop, laplaces, shares if mixture else None)
                ess = _kish(torch.softmax(log_target - log_q, -1))
                low = torch.nonzero(ess < self.min_ess * s).reshape(-1)
                if len(low):  # adapt: add a t fitted to the weighted draws, sample again
                    wt = torch.softmax((log_target - log_q)[low], -1)
                    y = log_w[low, :, :-1] - log_w[low, :, -1:]
                    pop_w = torch.zeros(len(low), p).scatter_add_(1, pop[low], wt)
                    q_low = (1 - POP_DEFENSIVE) * pop_w + POP_DEFENSIVE / p
                    sub = [*(t.subset(low) for t in laplaces), _StudentT.moments(y, wt)]
                    if mixture:  # a sparse component's corners: a Dirichlet fitted too
                        sub.append(_DirichletProposal.moments(log_w[low], wt))
                    # the proposals' shares of the weighted draws (population Monte Carlo),
                    # beside the fitted t and Dirichlet
                    found = torch.einsum("us,usi->ui", wt, owner[low])
                    fitted_n = len(sub) - len(laplaces)
                    sub_shares = torch.cat([found * 0.5,
                                            torch.full((len(low), fitted_n), 0.5 / fitted_n)], -1)
                    if mixture:
                        sub_shares = ((1 - PROPOSAL_FLOOR) * sub_shares
                                      + PROPOSAL_FLOOR / sub_shares.shape[-1])
                    sub_rows = tuple(r[low] for r in rows)
                    fitted = None
                    if factors is not None:  # and a normal fitted to the factors' draws
                        mean = (wt * factors[low]).sum(1)
                        sd = (wt * (factors[low] - mean[:, None]).pow(2)).sum(1).sqrt()
                        fitted = (mean, 1.5 * sd + 1e-3)
                    redo = self._importance(sub_rows, level[low], q_low, sub,
                                            sub_shares if mixture else None, fitted)
                    better = _kish(torch.softmax(redo[2] - redo[3], -1)) > ess[low]
                    keep = low[better]
                    for old, new in zip((log_w, pop, log_target, log_q, factors), redo[:5],
                                        strict=True):
                        if old is not None:
                            old[keep] = new[better]
            self._log_w[pos], self._pop[pos] = log_w, pop
            if factors is not None:
                self._s[pos] = factors
            self._log_weight[pos] = log_target - log_q

    def _importance(self, rows, level, q_pop, proposals, shares, fitted_factors=None):
        """One importance-sampling pass for a chunk of users: population draws allocated by
        ``q_pop (u, P)`` (systematic sampling), each weight draw from the prior
        (``DEFENSIVE``) or one of the ``proposals`` (each user's ``shares (u, proposals)``;
        None: equal shares),
        and the mixture's density; with ``user_cutpoints`` each draw's cutpoint log factor
        too (``_draw_factors``, ``fitted_factors``). Returns ``(log_w, pop, log_target,
        log_q, factors, owner)``: ``factors`` None without ``user_cutpoints``; ``owner (u,
        S, proposals)`` each draw's chance of having come from each proposal."""
        uu, s, p = q_pop.shape[0], self.num_samples, self.pop.size
        pop = _systematic(q_pop, s)
        draws = self.pop.draws
        log_prop, conc = draws.prior_log_proportions[pop], draws.prior_concentrations[pop]
        if shares is None:  # equal shares
            which = torch.randint(len(proposals), (uu, s))
            shares = torch.full((uu, len(proposals)), 1 / len(proposals))
        else:
            which = torch.multinomial(shares, s, replacement=True)  # each draw's proposal
        y = torch.zeros(uu, s, self.k - 1)
        for i, prop in enumerate(proposals):
            y = torch.where((which == i)[..., None], prop.sample(pop), y)
        log_w = _alr_inverse(y)
        prior = torch.rand(uu, s) < DEFENSIVE  # each draw's component, independently
        log_w[prior] = _sample_log_prior(log_prop[prior], conc[prior])
        log_prior = _log_prior(log_w, log_prop, conc)
        y = log_w[..., :-1] - log_w[..., -1:]
        per_prop = (torch.stack([prop.log_prob(y, pop) for prop in proposals], -1)
                    + shares.log()[:, None, :])  # (uu, S, proposals)
        log_t = torch.logsumexp(per_prop, -1) - log_w.sum(-1)  # a density on the simplex
        log_q = q_pop.gather(1, pop).log() + torch.logaddexp(
            math.log(DEFENSIVE) + log_prior, math.log1p(-DEFENSIVE) + log_t)
        factors = None
        if self._spread is not None:
            factors, f_prior, f_q = self._draw_factors(pop, fitted_factors)
            log_prior, log_q = log_prior + f_prior, log_q + f_q
        log_target = log_prior + self._loglik(log_w, pop, rows, level, factors) - math.log(p)
        return log_w, pop, log_target, log_q, factors, torch.softmax(per_prop, -1)

    def _log_lik(self, log_w: torch.Tensor) -> torch.Tensor:
        """``log p(answers | w)`` of every user's answers for draws ``log_w (U, S, K)`` of
        the first population draw (the point recipe's objective)."""
        u = len(self.ids)
        rows, level = self._answers(torch.arange(u), torch.zeros(u, dtype=torch.long),
                                   self._count)
        return self._loglik(log_w, torch.zeros(log_w.shape[:2], dtype=torch.long), rows, level)

    # ------------------------------------------------------------------ results
    @property
    def ess(self) -> np.ndarray:
        """Effective sample size of each user's importance-weighted draws."""
        return self._state()[2].numpy().copy()

    def weights(self, ci: float = 0.9) -> xr.Dataset:
        """Posterior summaries of each user's mixture weights, dims ``(user, prototype)``.

        Parameters
        ----------
        ci:
            Mass of the equal-tailed credible interval (``lower``, ``upper``).

        Returns
        -------
        xarray.Dataset
            ``mean``, ``sd``, ``lower``, ``upper``, ``ess`` (the importance sampler's
            effective sample size), ``population_ess`` (how many population draws carry
            the posterior, effectively) and ``n_answers``.
        """
        if not (isinstance(ci, (float, int, np.number)) and 0 < ci < 1):
            raise ValueError(f"ci: got {ci!r}; expected a number in (0, 1)")
        log_w, wt, ess = self._state()
        u = len(self.ids)
        mean, sd = torch.empty(u, self.k), torch.empty(u, self.k)
        lo, hi = torch.empty(u, self.k), torch.empty(u, self.k)
        for part in _chunks(u, 4 * self.num_samples * self.k):
            w = log_w[part].exp()
            m = (wt[part].unsqueeze(-1) * w).sum(1)
            mean[part] = m
            sd[part] = (wt[part].unsqueeze(-1) * (w - m.unsqueeze(1)).pow(2)).sum(1).sqrt()
            lo[part], hi[part] = _weighted_quantiles(w, wt[part], ((1 - ci) / 2, (1 + ci) / 2))
        dims = ("user", "prototype")
        return xr.Dataset(
            {
                "mean": (dims, mean.numpy()),
                "sd": (dims, sd.numpy()),
                "lower": (dims, lo.numpy()),
                "upper": (dims, hi.numpy()),
                "ess": (("user",), ess.numpy().copy()),
                "population_ess": (("user",), self._population_ess.numpy().copy()),
                "n_answers": (("user",), self.n_answers()),
            },
            coords={"user": np.asarray(self.ids), "prototype": np.arange(self.k)},
            attrs={"ci": ci},
        )

    def cutpoint_scales(self, ci: float = 0.9) -> xr.Dataset:
        """Each user's posterior cutpoint factor ``exp(s)`` (``user_cutpoints``: how much
        more readily than the population they tie or grade weakly), dim ``user``: ``mean``,
        ``sd`` and the equal-tailed ``ci`` interval (``lower``, ``upper``) of the weighted
        draws.

        Parameters
        ----------
        ci:
            Mass of the equal-tailed credible interval, in (0, 1).
        """
        if not (isinstance(ci, (float, int, np.number)) and 0 < ci < 1):
            raise ValueError(f"ci: got {ci!r}; expected a number in (0, 1)")
        if self._spread is None:
            raise ValueError("user_cutpoints: got a fit without them; expected a fit with "
                             "user_cutpoints=True (graded answers, each user's own factor)")
        _, wt, _ = self._state()
        f = self._s.exp()  # (U, S)
        mean = (wt * f).sum(1)
        sd = (wt * (f - mean[:, None]).pow(2)).sum(1).sqrt()
        lo, hi = (q[:, 0] for q in _weighted_quantiles(f.unsqueeze(-1), wt,
                                                       ((1 - ci) / 2, (1 + ci) / 2)))
        return xr.Dataset({"mean": ("user", mean.numpy()), "sd": ("user", sd.numpy()),
                           "lower": ("user", lo.numpy()), "upper": ("user", hi.numpy())},
                          coords={"user": np.asarray(self.ids)}, attrs={"ci": ci})

    def draws(self, num: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Equally weighted posterior draws by systematic resampling.

        Parameters
        ----------
        num:
            Draws per user.
        seed:
            Seeds the resampling (a local generator).

        Returns
        -------
        tuple
            ``w (U, num, K)`` and the population draw each belongs to, ``(U, num)``.
        """
        w, pop, _ = self._resample(num, seed)
        return w, pop

    def _resample(self, num: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``draws`` and the importance draw each came from, ``(U, num)``."""
        num = check_int("num", num)
        log_w, weight, _ = self._state()
        u, s = weight.shape
        gen = torch.Generator().manual_seed(check_seed(seed))
        offset = torch.rand(u, 1, generator=gen)
        points = (torch.arange(num).float() + offset) / num
        idx = torch.searchsorted(weight.cumsum(-1), points.contiguous()).clamp(max=s - 1)
        w = log_w.exp().gather(1, idx.unsqueeze(-1).expand(-1, -1, self.k))
        return w, self._pop.gather(1, idx), idx

    @torch.no_grad()
    def draw_set_probs(self, user, sets, kind: str = "best_of", num_draws: int = 512,
                       seed: int | None = None, *, prompt=None, rows: bool = False
                       ) -> torch.Tensor:
        """The probability of every answer to showing one user a set of items, under equally
        weighted draws of their posterior: ``kind="best_of"``, which item is chosen, ``(J, C,
        n)``; ``"ranking"``, each order of the ``n`` items, ``(J, C, n!)`` in the order of
        ``itertools.permutations(range(n))`` (Plackett-Luce). What set questions are scored
        by (``bayespal.users.active``).

        Parameters
        ----------
        user:
            One of this object's user ids.
        sets:
            ``(C, n)`` item ids (rows, with ``rows``), ``n >= 2`` distinct items each;
            ``n <= 6`` for rankings.
        kind:
            ``"best_of"`` or ``"ranking"``.
        num_draws, seed:
            As for ``draw_probs``.
        prompt:
            PAL-B: each set's prompt id ``(C,)`` (a question is a prompt and the answers
            shown for it); ignored for PAL-A.
        rows:
            Items and prompts are given as row numbers, not ids.
        """
        if kind not in SET_KINDS:
            raise ValueError(f"kind: got {kind!r}; expected one of {SET_KINDS}")
        if self.pop.draws.levels != 2:
            raise ValueError(f"sets: got a fit of {self.pop.draws.levels} levels; expected "
                             "binary answers (a choice from a set)")
        arr = np.asarray(sets, dtype=object if not rows else None)
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise ValueError(f"sets: got shape {arr.shape}; expected (C, n) items, n >= 2")
        n = arr.shape[1]
        if kind == "ranking" and n > MAX_RANKED:
            raise ValueError(f"sets: got sets of {n} items for rankings; expected at most "
                             f"{MAX_RANKED} ({MAX_RANKED}! orders are scored)")
        found = torch.as_tensor(self.items.locate(arr.reshape(-1), "sets", rows)).reshape(
            arr.shape)
        srt = found.sort(1).values
        if bool((srt[:, 1:] == srt[:, :-1]).any()):
            row = int(torch.nonzero((srt[:, 1:] == srt[:, :-1]).any(1))[0, 0])
            raise ValueError(f"sets[{row}]: got {arr[row].tolist()!r}; expected distinct items")
        c = self._prompt_rows(None if prompt is None else np.atleast_1d(prompt), len(found),
                              rows)
        pos = self._positions([user])[0]
        w, pop = self.draws(num_draws, seed=int(self._count[pos]) if seed is None else seed)
        w, pop = w[pos], pop[pos]  # (J, K), (J,)
        diff, _ = self.pop.other_terms(found[:, 1:], found[:, 0], c)  # (P, C, n - 1, K)
        u = torch.einsum("jcmk,jk->jcm", diff[pop], w)
        u = torch.cat([torch.zeros_like(u[..., :1]), u], -1)  # (J, C, n) utilities - u(item 0)
        if kind == "best_of":
            return torch.softmax(u, -1)
        perms = torch.as_tensor(list(itertools.permutations(range(n))))  # (n!, n)
        ordered = u[..., perms]  # (J, C, n!, n)
        rest = torch.logcumsumexp(ordered.flip(-1), -1).flip(-1)  # log sum over the items left
        return (ordered - rest).sum(-1).exp()

    def _answer_probs(self, logits: torch.Tensor, pop: torch.Tensor, outcomes: bool = False,
                      factors: torch.Tensor | None = None) -> torch.Tensor:
        """Per draw, ``P(a > b)`` (graded answers: the expected label) of logits ``(U, S,
        C)`` whose population draws are ``pop (U, S)`` (and cutpoint log factors ``factors
        (U, S)``, ``user_cutpoints``); with ``outcomes`` every level's probability ``(U,
        S, C, L)``."""
        if not outcomes and self.pop.draws.levels == 2:
            return torch.sigmoid(logits)
        cuts = self._user_cuts(pop, factors).unsqueeze(-2)  # (U, S, 1, L - 1)
        return outcome_probs(logits, cuts) if outcomes else expected_score(logits, cuts)

    def _probs(self, pos: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
               c: torch.Tensor, outcomes: bool = False, o: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Posterior predictive ``P(a > b)`` for each user's own pairs: ``pos (U',)``,
        ``a, b, c (U', C)`` -> ``(U', C)`` (``outcomes``: ``(U', C, L)``; choices with
        further items ``o (U', C, m)``: each item's probability ``(U', C, 2 + m)``)."""
        log_w, weight, _ = self._state()
        shape = ((2 + o.shape[-1],) if o is not None
                 else (self.pop.draws.levels,) if outcomes else ())
        out = torch.empty(*a.shape, *shape)
        per_user = self._per_user(a.shape[1]) * (1 if o is None else 2 + o.shape[-1])
        for part in _chunks(len(pos), per_user):
            pp = pos[part]
            if o is not None:  # a categorical over (b, a, others), padding at probability 0
                probs = torch.softmax(self.pop.choice_logits(
                    log_w[pp].exp(), self._pop[pp], a[part], b[part], c[part], o[part]), -1)
            else:
                probs = self._answer_probs(self.pop.logits(
                    log_w[pp].exp(), self._pop[pp], a[part], b[part], c[part]), self._pop[pp],
                    outcomes, None if self._s is None else self._s[pp])
            out[part] = torch.einsum("usc...,us->uc...", probs, weight[pp])
        return out

    @torch.no_grad()
    def draw_probs(self, user, item_a, item_b, prompt=None, num_draws: int = 512,
                   seed: int | None = None, *, rows: bool = False,
                   outcomes: bool = False) -> torch.Tensor:
        """``P(a preferred over b)`` of candidate pairs under equally weighted draws of one
        user's posterior, ``(num_draws, C)`` (graded answers: the expected label;
        ``outcomes``: every level's probability, ``(num_draws, C, L)``): what query
        selection scores.

        Parameters
        ----------
        user:
            One of this object's user ids.
        item_a, item_b:
            ``(C,)`` item ids of the candidates (two different items each).
        prompt:
            PAL-B: each candidate's prompt id.
        num_draws:
            Posterior draws (resampled from the importance draws).
        seed:
            Seeds the resampling (default: the user's number of answers, so a new answer
            gives new draws and the same state the same ones).
        rows:
            Items and prompts are given as row numbers, not ids.
        outcomes:
            Every level's probability instead of ``P(a preferred)``.
        """
        pos = self._positions([user])[0]
        a, b = self._items("item_a", item_a, rows), self._items("item_b", item_b, rows)
        if len(a) != len(b):
            raise ValueError(f"item_b: got length {len(b)}; expected {len(a)}, the length of "
                             "item_a")
        if (a == b).any():
            row = int(torch.nonzero(a == b)[0, 0])
            same = self.items.ids[int(a[row])].item()
            raise ValueError(f"candidates: got the pair ({same!r}, {same!r}) at position "
                             f"{row}; expected two different items (a user cannot compare an "
                             "item with itself)")
        c = self._prompt_rows(prompt, len(a), rows)
        w, pop, idx = self._resample(num_draws,
                                     seed=int(self._count[pos]) if seed is None else seed)
        w, pop = w[pos : pos + 1], pop[pos : pos + 1]  # (1, J, K), (1, J)
        factors = None if self._s is None else self._s[pos : pos + 1].gather(
            1, idx[pos : pos + 1])
        return self._answer_probs(self.pop.logits(w, pop, a[None], b[None], c[None]), pop,
                                  outcomes, factors)[0]

    def predict_proba(self, user, item_a, item_b, prompt=None, *,
                      rows: bool = False) -> np.ndarray:
        """Posterior predictive ``P(a preferred over b)`` for comparisons of these users (for
        a fit of graded answers the expected label, a tie counting half).

        Parameters
        ----------
        user:
            Each comparison's user id (one per comparison).
        item_a, item_b:
            Item ids of the item table.
        prompt:
            PAL-B: each comparison's prompt id.
        rows:
            Items and prompts are given as row numbers, not ids.
        """
        return self._predict(user, item_a, item_b, prompt, rows, outcomes=False)

    @torch.no_grad()
    def predict_outcomes(self, user, item_a, item_b, prompt=None, *, others=None,
                         rows: bool = False) -> np.ndarray:
        """Posterior predictive probability of every outcome of each answer: the levels of
        a comparison ``(n, L)`` (level 0: b preferred; with ties the columns are ``P(b),
        P(tie), P(a)``), or, for choices from sets (``others``), each item's probability of
        being chosen ``(n, 2 + m)`` in the order ``(item_b, item_a, others)`` (0 for
        padding), as ``Posterior.predict_outcomes``.

        Parameters
        ----------
        user, item_a, item_b, prompt, rows:
            As for ``predict_proba``.
        others:
            Choices: the further items of each, as for ``observe``.
        """
        return self._predict(user, item_a, item_b, prompt, rows, outcomes=True, others=others)

    @torch.no_grad()
    def _predict(self, user, item_a, item_b, prompt, rows: bool, outcomes: bool,
                 others=None) -> np.ndarray:
        pos = torch.as_tensor(self._positions(user))
        a, b = self._items("item_a", item_a, rows), self._items("item_b", item_b, rows)
        c = self._prompt_rows(prompt, len(a), rows)
        if not (len(pos) == len(a) == len(b)):
            raise ValueError(f"item_a: got lengths user={len(pos)}, item_a={len(a)}, "
                             f"item_b={len(b)}; expected equal lengths")
        o = self._others(others, a, b, rows, self.pop.draws.levels)
        width_o = o.shape[1]
        shape = (2 + width_o,) if width_o else (self.pop.draws.levels,) if outcomes else ()
        out = torch.empty(len(pos), *shape)
        if len(pos) == 0:
            return out.numpy()
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
        po = torch.full((len(uniq), width, width_o), -1, dtype=torch.long)
        pa[inv[order], col], pb[inv[order], col] = a[order], b[order]
        pc[inv[order], col], po[inv[order], col] = c[order], o[order]
        probs = self._probs(uniq, pa, pb, pc, outcomes, po if width_o else None)
        out[order] = probs[inv[order], col]
        return out.numpy()


def _kish(weight: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size of normalised weights ``(..., S)``."""
    return 1.0 / weight.pow(2).sum(-1)


def _weighted_quantiles(w: torch.Tensor, weight: torch.Tensor, qs) -> list[torch.Tensor]:
    """Quantiles ``qs`` of each component of weighted draws ``w (U, S, K)``, each ``(U, K)``."""
    vals, order = torch.sort(w, dim=1)
    cw = torch.cumsum(weight.unsqueeze(-1).expand_as(w).gather(1, order), dim=1)
    out = []
    for q in qs:
        idx = (cw < q).sum(1, keepdim=True).clamp(max=w.shape[1] - 1)
        out.append(vals.gather(1, idx).squeeze(1))
    return out


class NewUser(NewUserPosteriors):
    """One new user's posterior: ``observe`` each answer, then ``predict_proba``,
    ``weights()`` or ``bayespal.users.suggest`` for the next question.

    Parameters
    ----------
    posterior:
        The fitted population (as for ``NewUserPosteriors``).
    user_id:
        The user's id (used in ``weights()``).
    **kwargs:
        Sampler options of ``NewUserPosteriors``.
    """

    def __init__(self, posterior: Posterior, user_id="new user", **kwargs) -> None:
        super().__init__(posterior, [user_id], **kwargs)

    def observe(self, item_a, item_b, label, prompt=None, *,  # type: ignore[override]
                others=None, rows: bool = False) -> NewUser:
        """Add one (or several) answers and update the posterior.

        Parameters
        ----------
        item_a, item_b:
            Item ids of the item table (scalars or arrays).
        label:
            1 where ``item_a`` was preferred, else 0; for a fit of graded answers
            (``levels > 2``) the grade divided by ``levels - 1`` (0.5: a tie).
        prompt:
            PAL-B: each answer's prompt id.
        others:
            Choices from larger sets: per answer the further items shown (see
            ``NewUserPosteriors.observe``).
        rows:
            Items and prompts are given as row numbers, not ids.
        """
        a = np.atleast_1d(np.asarray(item_a))
        NewUserPosteriors.observe(self, np.repeat(self.ids[0], len(a)), a, np.atleast_1d(item_b),
                                  np.atleast_1d(label),
                                  None if prompt is None else np.atleast_1d(prompt),
                                  others=others, rows=rows)
        return self

    def observe_ranking(self, items, ranks=None, prompt=None, *, rows: bool = False,
                        seed: int = 0) -> NewUser:
        """Add one ranking of ``items`` (``ranks`` as for
        ``NewUserPosteriors.observe_rankings``; None: ``items`` listed best first).

        Parameters
        ----------
        items:
            The item ids shown.
        ranks:
            One rank per item (1 = best; None: not ranked), or None.
        prompt:
            PAL-B: the prompt id.
        rows, seed:
            As for ``NewUserPosteriors.observe_rankings``.
        """
        NewUserPosteriors.observe_rankings(
            self, [self.ids[0]], [list(items)], None if ranks is None else [list(ranks)],
            None if prompt is None else [prompt], rows=rows, seed=seed)
        return self

    def predict_proba(self, item_a, item_b, prompt=None, *,  # type: ignore[override]
                      rows: bool = False) -> np.ndarray:
        """This user's posterior predictive ``P(a preferred over b)``.

        Parameters
        ----------
        item_a, item_b:
            Item ids (scalars or arrays).
        prompt:
            PAL-B: each comparison's prompt id.
        rows:
            Items and prompts are given as row numbers, not ids.
        """
        a = np.atleast_1d(np.asarray(item_a))
        return super().predict_proba(np.repeat(self.ids[0], len(a)), a, np.atleast_1d(item_b),
                                     None if prompt is None else np.atleast_1d(prompt),
                                     rows=rows)


class PointPlacement(NewUserPosteriors):
    """The reference PAL's few-shot recipe, for comparison: each user's weights by maximum
    likelihood (softmax-parametrised, gradient descent from the simplex centre), the
    population plugged in at its point estimate. No uncertainty (``sd`` is 0).

    Parameters
    ----------
    posterior:
        A fit with one population (not an ensemble).
    ids, items, prompts:
        As for ``NewUserPosteriors``.
    steps, lr:
        Adam steps and learning rate of the maximum-likelihood fit.
    seed:
        Unused randomness seed, kept for the common interface.
    """

    def __init__(self, posterior: Posterior, ids: Sequence = (0,), *,
                 items=None, prompts=None, steps: int = 200, lr: float = 0.1, seed: int = 0) -> None:
        self.steps, self.lr = steps, lr
        super().__init__(posterior, ids, items=items, prompts=prompts, population="mean",
                         num_samples=1, seed=seed)
        if self.pop.size != 1:
            raise ValueError(f"posterior: got a population of {self.pop.size} point estimates "
                             "(an ensemble); expected one (the reference's point estimate "
                             "uses one population: use ens.members[i])")

    _incremental = False  # every answer refits the point estimates

    def _refresh(self, users: torch.Tensor) -> None:
        u = len(self.ids)
        logits = torch.zeros(u, self.k, requires_grad=True)
        with torch.enable_grad():  # may be first asked for inside a no_grad prediction
            self._fit_logits(logits)
        self._log_w = logits.detach().log_softmax(-1).unsqueeze(1)
        self._log_weight = torch.zeros(u, 1)
        self._pop = torch.zeros(u, 1, dtype=torch.long)

    def _fit_logits(self, logits: torch.Tensor) -> None:
        if self._a.shape[1]:
            opt = torch.optim.Adam([logits], lr=self.lr)
            for _ in range(self.steps):
                loss = -self._log_lik(logits.log_softmax(-1).unsqueeze(1)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()


def place_users(posterior: Posterior, data: PreferenceData, method: str = "bayes",
                **kwargs) -> NewUserPosteriors:
    """Posteriors for all users of ``data`` from their comparisons, in one vectorised call
    (the population stays fixed). Items are those of ``data`` (its item table).
    ``method="point"``
    gives the reference PAL's maximum-likelihood few-shot estimate instead.

    Parameters
    ----------
    posterior:
        The fitted population.
    data:
        The users' answers.
    method:
        ``"bayes"`` (``NewUserPosteriors``) or ``"point"`` (``PointPlacement``).
    **kwargs:
        Options of the chosen class.
    """
    if method not in ("bayes", "point"):
        raise ValueError(f"method: got {method!r}; expected 'bayes' or 'point'")
    cls = NewUserPosteriors if method == "bayes" else PointPlacement
    users = cls(posterior, data.user_ids, items=data.item_table, prompts=data.prompt_table,
                **kwargs)
    users.observe(data.user_ids[data.user], data.item_a, data.item_b, data.label, data.prompt,
                  others=data.others, rows=True)
    return users
