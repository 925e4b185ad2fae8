"""The variational families (guides) and what they hand out: population draws and user
weights.

SVI: mean-field Normal prototypes (and PAL-B loadings, and item effects), LogNormal
sharpness (and cutpoint gaps of graded answers), a Dirichlet per user (and, with
``user_cutpoints``, a Normal of each user's cutpoint log factor). MAP (the
reference PAL's estimator): point masses everywhere. The maps ``f`` and ``phi`` are point
estimates in both (they live in the model).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from scipy import stats
from torch import nn

from bayespal.model import Batch, ModelConfig, PALModel, PopulationDraws
from bayespal.model.likelihood import cutpoint_count, cutpoints
from bayespal.model.pal import CUTPOINT_PRIOR, SafeDirichlet

POPULATION_MODES = ("draws", "mean")


def _inv_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class PALGuide(nn.Module):
    """The guide of ``PALModel``.

    Parameters
    ----------
    config:
        The model configuration.
    n_users:
        Users in the weight plate.
    generator:
        Seeds the initial values (prototypes, and a small tilt of every user's weights
        off the simplex centre to break the prototypes' symmetry).
    point:
        Point masses (MAP) instead of the mean-field posterior (SVI).
    n_items:
        Rows of the training item table (with ``config.item_effects``).
    """

    def __init__(self, config: ModelConfig, n_users: int, generator: torch.Generator | None,
                 point: bool = False, n_items: int | None = None) -> None:
        super().__init__()
        if config.item_effects and point:
            raise ValueError("inference: got 'map' with item_effects=True; expected 'svi' (a "
                             "point estimate of the effects with their scale learned collapses "
                             "to zero scale)")
        if config.user_cutpoints and point:
            raise ValueError("inference: got 'map' with user_cutpoints=True; expected 'svi' "
                             "(point estimates of the users' factors with their spread learned "
                             "collapse to zero spread)")
        if config.item_effects != (n_items is not None):
            raise ValueError(f"n_items: got {n_items!r} with item_effects="
                             f"{config.item_effects}; expected the item table's size exactly "
                             "when the model has item effects")
        self.config, self.n_users, self.point = config, n_users, point
        k, d = config.k, config.pref_dim
        init = torch.randn(k, d, generator=generator) * config.prototype_scale
        self.prototypes_loc = nn.Parameter(init)
        self.prototypes_raw_scale = nn.Parameter(torch.full((k, d), _inv_softplus(0.05)))
        self.sharpness_loc = nn.Parameter(torch.tensor(float(config.sharpness_loc)))
        self.sharpness_raw_scale = nn.Parameter(torch.tensor(_inv_softplus(0.05)))
        if config.levels > 2:
            h = cutpoint_count(config.levels)
            self.cutpoint_gaps_loc = nn.Parameter(torch.full((h,), CUTPOINT_PRIOR[0]))
            self.cutpoint_gaps_raw_scale = nn.Parameter(torch.full((h,), _inv_softplus(0.05)))
        if config.prompted:
            shape = (k, d, config.prompt_dim)
            self.loadings_loc = nn.Parameter(0.01 * torch.randn(*shape, generator=generator))
            self.loadings_raw_scale = nn.Parameter(torch.full(shape, _inv_softplus(0.05)))
        if config.item_effects:
            self.item_effects_loc = nn.Parameter(torch.zeros(n_items))
            self.item_effects_raw_scale = nn.Parameter(torch.full((n_items,), _inv_softplus(0.1)))
        tilt = 0.1 * torch.randn(n_users, k, generator=generator)
        if point:
            self.weights_logits = nn.Parameter(tilt)
        else:
            self.weights_raw_concentration = nn.Parameter(_inv_softplus(2.0) + tilt)
        if config.user_cutpoints:
            self.cutpoint_log_scale_loc = nn.Parameter(torch.zeros(n_users))
            self.cutpoint_log_scale_raw_scale = nn.Parameter(
                torch.full((n_users,), _inv_softplus(0.1)))

    def local_parameters(self) -> list[nn.Parameter]:
        """Each user's own variational parameters (SVI: their weights' raw Dirichlet
        concentrations, and their cutpoint factors' location and scale; MAP: their weights'
        logits): what the local refinement after a fit optimises with everything else held
        fixed."""
        return [getattr(self, n) for n in self.local_names()]

    def local_names(self) -> list[str]:
        """The names of ``local_parameters()``, in that order."""
        names = ["weights_logits" if self.point else "weights_raw_concentration"]
        if self.config.user_cutpoints:
            names += ["cutpoint_log_scale_loc", "cutpoint_log_scale_raw_scale"]
        return names

    def unused_parameter_names(self) -> list[str]:
        """Parameters this guide never reads: MAP's variational scales (a point mass has
        none), and every user's weights when ``K = 1`` (one prototype: weight 1)."""
        unused = []
        if self.point:
            unused = [n for n, _ in self.named_parameters() if n.endswith("raw_scale")]
        if self.config.k == 1:
            unused.append(self.local_names()[0])
        return unused

    def restricted(self, users: torch.Tensor | np.ndarray) -> PALGuide:
        """A copy holding only the users at positions ``users`` (in that order) and every
        global parameter as it is: one rank's share in a users-sharded fit.

        Parameters
        ----------
        users:
            User positions.
        """
        users = torch.as_tensor(np.asarray(users), dtype=torch.long,
                                device=self.prototypes_loc.device)
        return self.with_users({n: getattr(self, n).detach()[users]
                                for n in self.local_names()})

    def with_users(self, local: dict[str, torch.Tensor]) -> PALGuide:
        """A copy whose users' parameters are ``local`` (by name, ``local_names()``; any
        number of users) and whose global parameters are this guide's.

        Parameters
        ----------
        local:
            Every user parameter's new values, rows = users.
        """
        names = self.local_names()
        if sorted(local) != sorted(names):
            raise ValueError(f"local: got {sorted(local)}; expected {sorted(names)}")
        sizes = {len(v) for v in local.values()}
        if len(sizes) != 1:
            raise ValueError(f"local: got rows {sorted(sizes)}; expected one number of users")
        saved = {n: self._parameters.pop(n) for n in names}
        try:
            new = copy.deepcopy(self)  # the global parameters only
        finally:
            self._parameters.update(saved)
        for n in names:
            new.register_parameter(n, nn.Parameter(local[n].detach().clone(),
                                                   requires_grad=saved[n].requires_grad))
        new._parameters = {**{k: new._parameters[k] for k in self._parameters}}
        new.n_users = sizes.pop()
        return new

    # -- variational distributions -----------------------------------------------------
    def prototypes_dist(self) -> dist.Distribution:
        """``q`` of the prototypes (MAP: a point mass)."""
        if self.point:
            return dist.Delta(self.prototypes_loc, event_dim=2)
        return dist.Normal(self.prototypes_loc, F.softplus(self.prototypes_raw_scale)).to_event(2)

    def loadings_dist(self) -> dist.Distribution:
        """``q`` of PAL-B's loadings (MAP: a point mass)."""
        if self.point:
            return dist.Delta(self.loadings_loc, event_dim=3)
        return dist.Normal(self.loadings_loc, F.softplus(self.loadings_raw_scale)).to_event(3)

    def sharpness_dist(self) -> dist.Distribution:
        """``q`` of the sharpness (MAP: a point mass)."""
        if self.point:
            return dist.Delta(self.sharpness_loc.exp())
        return dist.LogNormal(self.sharpness_loc, F.softplus(self.sharpness_raw_scale))

    def cutpoint_gaps_dist(self) -> dist.Distribution:
        """``q`` of the cutpoint gaps of graded answers ``(H,)`` (MAP: a point mass)."""
        if self.point:
            return dist.Delta(self.cutpoint_gaps_loc.exp(), event_dim=1)
        return dist.LogNormal(self.cutpoint_gaps_loc,
                              F.softplus(self.cutpoint_gaps_raw_scale)).to_event(1)

    def item_effects_dist(self) -> dist.Distribution:
        """``q`` of the item effects ``(M,)`` (mean-field Normal)."""
        return dist.Normal(self.item_effects_loc,
                           F.softplus(self.item_effects_raw_scale)).to_event(1)

    def weights_dist(self, users: torch.Tensor | None = None) -> dist.Distribution:
        """``q(w)`` of the given user positions (all users if None), batch shape ``(B,)``.

        Parameters
        ----------
        users:
            User positions (None: all users).
        """
        if self.point:
            logits = self.weights_logits if users is None else self.weights_logits[users]
            return dist.Delta(logits.softmax(-1), event_dim=1)
        raw = self.weights_raw_concentration
        raw = raw if users is None else raw[users]
        return SafeDirichlet(F.softplus(raw) + 1e-3)

    def cutpoint_log_scale_dist(self, users: torch.Tensor | None = None) -> dist.Distribution:
        """``q`` of users' cutpoint log factors (``user_cutpoints``), batch shape ``(B,)``.

        Parameters
        ----------
        users:
            User positions (None: all users).
        """
        loc, raw = self.cutpoint_log_scale_loc, self.cutpoint_log_scale_raw_scale
        if users is not None:
            loc, raw = loc[users], raw[users]
        return dist.Normal(loc, F.softplus(raw))

    def user_dists(self, users: torch.Tensor | None = None) -> dict[str, dist.Distribution]:
        """``q`` of the user sites of positions ``users`` (all if None), by name, in the order
        the guide draws them (``PALModel.user_priors``).

        Parameters
        ----------
        users:
            User positions (None: all users).
        """
        dists: dict[str, dist.Distribution] = {}
        if self.config.k > 1:
            dists["weights"] = self.weights_dist(users)
        if self.config.user_cutpoints:
            dists["cutpoint_log_scale"] = self.cutpoint_log_scale_dist(users)
        return dists

    def population_dists(self) -> dict[str, dist.Distribution]:
        """``q`` of every population site, by site name, in the order the guide draws them
        (the order the random stream is read in): ``loadings`` (PAL-B), ``prototypes``,
        ``sharpness``, ``item_effects``, ``cutpoint_gaps``."""
        dists: dict[str, dist.Distribution] = {}
        if self.config.prompted:
            dists["loadings"] = self.loadings_dist()
        dists["prototypes"] = self.prototypes_dist()
        dists["sharpness"] = self.sharpness_dist()
        if self.config.item_effects:
            dists["item_effects"] = self.item_effects_dist()
        if self.config.levels > 2:
            dists["cutpoint_gaps"] = self.cutpoint_gaps_dist()
        return dists

    # -- the Pyro guide ----------------------------------------------------------------
    def guide(self, batch: Batch) -> None:
        """The Pyro guide (same sites and plates as the model).

        Parameters
        ----------
        batch:
            The minibatch (or, with user_scale None, all comparisons).
        """
        for name, q in self.population_dists().items():
            pyro.sample(name, q)
        if self.config.k == 1 and not self.config.user_cutpoints:
            return
        if batch.user_scale is None:
            with pyro.plate("user", self.n_users):
                for name, q in self.user_dists().items():
                    pyro.sample(name, q)
            return
        with (
            pyro.plate("user", self.n_users, subsample=batch.user),
            poutine.scale(scale=batch.user_scale),
        ):
            for name, q in self.user_dists(batch.user).items():
                pyro.sample(name, q)

    # -- what the fit hands out ----------------------------------------------------------
    @torch.no_grad()
    def population_draws(self, model: PALModel, num_samples: int, mode: str = "draws"
                         ) -> PopulationDraws:
        """``num_samples`` independent draws of the population from ``q`` (torch's global
        random stream), or (``mode="mean"``, and always for MAP) one draw at the posterior
        mean / the point estimates.

        Parameters
        ----------
        model:
            The model holding the maps and the population prior.
        num_samples:
            Draws (ignored for MAP and mode='mean').
        mode:
            'draws' or 'mean'.
        """
        if mode not in POPULATION_MODES:
            raise ValueError(f"population: got {mode!r}; expected one of {POPULATION_MODES}")
        if self.point or mode == "mean":
            protos = self.prototypes_loc[None]
            sharp = (self.sharpness_dist().mean if not self.point
                     else self.sharpness_loc.exp()).reshape(1)
            loadings = self.loadings_loc[None] if self.config.prompted else None
            effects = self.item_effects_loc[None] if self.config.item_effects else None
            gaps = None
            if self.config.levels > 2:
                gaps = (self.cutpoint_gaps_dist().mean if not self.point
                        else self.cutpoint_gaps_loc.exp())[None]
        else:
            shape = torch.Size([num_samples])
            protos = self.prototypes_dist().sample(shape)
            sharp = self.sharpness_dist().sample(shape)
            loadings = self.loadings_dist().sample(shape) if self.config.prompted else None
            effects = (self.item_effects_dist().sample(shape) if self.config.item_effects
                       else None)
            gaps = (self.cutpoint_gaps_dist().sample(shape) if self.config.levels > 2
                    else None)
        n = len(sharp)
        cuts = None if gaps is None else cutpoints(gaps, self.config.levels)
        scale, spread = model.item_effect_scale, model.cutpoint_spread
        log_prop, conc = (t.detach() for t in model.prior_components())
        return PopulationDraws(
            prototypes=protos.detach(), sharpness=sharp.detach(),
            prior_log_proportions=log_prop.expand(n, -1).clone(),
            prior_concentrations=conc.expand(n, -1, -1).clone(),
            position_bias=model.position_bias.detach().expand(n).clone(),
            member=torch.zeros(n, dtype=torch.long, device=protos.device),
            mappings=(model.mapping,),
            prompt_maps=(model.prompt_map,) if self.config.prompted else None,
            metric=self.config.metric, loadings=None if loadings is None else loadings.detach(),
            item_effects=None if effects is None else effects.detach(),
            item_effect_scale=None if scale is None else scale.detach().expand(n).clone(),
            cutpoints=None if cuts is None else cuts.detach(),
            cutpoint_spread=None if spread is None else spread.detach().expand(n).clone())

    @torch.no_grad()
    def weight_draws(self, num_samples: int, users: torch.Tensor | None = None) -> torch.Tensor:
        """Draws of users' weights ``(S, B, K)`` for positions ``users`` (all if None);
        ``S`` is 1 for MAP (use with ``population_draws``).

        Parameters
        ----------
        num_samples:
            Draws (MAP: one).
        users:
            User positions (None: all).
        """
        b = self.n_users if users is None else len(users)
        if self.config.k == 1:
            return self.prototypes_loc.new_ones(1 if self.point else num_samples, b, 1)
        d = self.weights_dist(users)
        return d.v[None] if self.point else d.sample((num_samples,))

    @torch.no_grad()
    def cutpoint_draws(self, num_samples: int, users: torch.Tensor | None = None
                       ) -> torch.Tensor | None:
        """Draws of users' cutpoint log factors ``(S, B)`` for positions ``users`` (all if
        None); None without ``user_cutpoints``.

        Parameters
        ----------
        num_samples:
            Draws.
        users:
            User positions (None: all).
        """
        if not self.config.user_cutpoints:
            return None
        return self.cutpoint_log_scale_dist(users).sample((num_samples,))

    @torch.no_grad()
    def weight_summary(self, ci: float) -> tuple[np.ndarray, ...]:
        """Every user's posterior ``mean``, ``sd`` and equal-tailed ``ci`` interval
        ``(lower, upper)`` of each weight, ``(U, K)`` each: the Beta marginals of the
        Dirichlet ``q`` (exact quantiles); for MAP the estimate with sd 0.

        Parameters
        ----------
        ci:
            The interval's probability.
        """
        if self.config.k == 1 or self.point:
            mean = self.weight_draws(1)[0].cpu().numpy().astype(np.float64)
            return mean, np.zeros_like(mean), mean, mean
        conc = self.weights_dist().concentration.cpu().numpy().astype(np.float64)
        total = conc.sum(-1, keepdims=True)
        mean = conc / total
        sd = np.sqrt(mean * (1 - mean) / (total + 1))
        lo = stats.beta.ppf((1 - ci) / 2, conc, total - conc)
        hi = stats.beta.ppf((1 + ci) / 2, conc, total - conc)
        return mean, sd, lo, hi

    @torch.no_grad()
    def weight_concentration(self) -> np.ndarray | None:
        """The users' Dirichlet concentrations ``(U, K)``; None for MAP or K = 1."""
        if self.point or self.config.k == 1:
            return None
        return self.weights_dist().concentration.cpu().numpy()

    @torch.no_grad()
    def sharpness_moments(self) -> tuple[float, float]:
        """The posterior mean and sd of the sharpness (MAP: the estimate and 0)."""
        d = self.sharpness_dist()
        if self.point:
            return float(d.v), 0.0
        return float(d.mean), float(d.variance.sqrt())

    @torch.no_grad()
    def permute(self, model: PALModel, perm: torch.Tensor) -> None:
        """Reorder the prototypes in place: new prototype ``j`` is old ``perm[j]`` (their
        loadings, every user's weights and the population prior's concentrations with them).

        Parameters
        ----------
        model:
            The model whose population prior is permuted too.
        perm:
            A permutation tensor of range(K).
        """
        for name in ("prototypes_loc", "prototypes_raw_scale", "loadings_loc",
                     "loadings_raw_scale"):
            if hasattr(self, name):
                getattr(self, name).copy_(getattr(self, name)[perm])
        for name in ("weights_logits", "weights_raw_concentration"):
            if hasattr(self, name):
                getattr(self, name).copy_(getattr(self, name)[:, perm])
        name = "prior_mean_logits" if model.mixture_prior else "log_concentration"
        getattr(model, name).copy_(getattr(model, name)[perm])
