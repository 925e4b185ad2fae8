"""PAL as a Pyro generative model: PAL-A (prototypes shared by all prompts) and PAL-B
(prototypes that are maps of the prompt), one class.

::

    f_theta : R^D -> R^d                 item mapping (MLP, point estimate)
    P_k     ~ Normal(0, s_P^2 I_d)       k = 1..K   prototypes
    w_i     ~ Dirichlet(alpha)           i = 1..U   user mixture weights
    beta    ~ LogNormal(m_b, s_b)        sharpness
    PAL-B:  phi : R^Dc -> R^q (MLP),  L_k ~ Normal(0, s_L^2 / q) (d x q),
            g_k(c) = P_k + L_k phi(c)    prototype k for prompt c (PAL-A: g_k = P_k)
    e_x     ~ Normal(0, tau^2)           optional item effects (x = 1..M), tau learned
    z_i     = sum_k w_ik g_k             ideal point
    logit_n = beta * (||f(x_b) - z_u||^2 - ||f(x_a) - z_u||^2 + e_a - e_b)   (+ position term)
    y_n     ~ Bernoulli(logits=logit_n)  y = 1: item a preferred
    graded answers (levels L > 2: ties, strength): gaps t_h ~ LogNormal(0, 1), h = 1..(L-1)//2,
            symmetric cutpoints c = (-cumsum(t) reversed, [0 if L even], cumsum(t)),
            level_n ~ OrderedOutcome(logit_n, c)  P(level >= j) = sigmoid(logit_n - c_{j-1})
            user_cutpoints: s_i ~ Normal(0, sigma^2) (sigma learned), user i's cutpoints
            c * exp(s_i)

The logit is computed by ``bayespal.model.likelihood`` (the only place it is written).
The weights' population prior, which is also a new user's prior, is fixed
(``concentration``, a float: ``Dirichlet(concentration * 1_K)``) or learned by empirical
Bayes: by default (``weight_prior="dirichlet"``) one ``Dirichlet(alpha)`` with ``alpha``
point-estimated; or (``"mixture"``) a mixture of Dirichlets ``sum_c pi_c Dirichlet(s_c K m)``
over the fixed scales ``s_c`` of ``MIXTURE_SCALES``, with the proportions ``pi`` and the mean
``m`` point-estimated. One learned Dirichlet must choose between single-type users (a small
``alpha``, mass at the simplex's corners) and mixed users (a larger one); where half the
users are single-type it can settle on an ``alpha`` so small that mixed users are pulled
towards the corners (measured, ``benchmarks/weight_prior.py``, seed 0: their 90% intervals
covered 0.785, 0.859 with the mixture). The grid is fixed so that only ``C - 1 + K - 1``
numbers are learned: free per-component concentrations collapse onto one another.

Minibatching. A batch is a subsample of comparisons. The user terms ``log p(w_i) - log
q(w_i)`` are attributed to comparisons: each of user i's ``n_i`` comparisons carries
``1/n_i`` of them, and each comparison gets its own draw of ``w_{u_n}`` from ``q``. With
the comparison subsample scaled by ``N/B`` the estimate is unbiased for the full ELBO
(``tests/inference/test_elbo.py``), needs no ``unique`` (no host sync on a GPU) and touches
only the users in the batch. With ``Batch.user_scale=None`` the model is the plain
generative model: one ``w_i`` per user, all users, for Predictive, NUTS and the exact
full-data ELBO. Sites: ``prototypes``, ``loadings`` (PAL-B), ``sharpness``,
``item_effects`` (with ``ModelConfig.item_effects``), ``cutpoint_gaps`` (levels > 2),
``weights`` (K > 1) and ``cutpoint_log_scale`` (``user_cutpoints``) in the user plate,
``label`` (the label, binary; the level ``label * (L - 1)``, graded;
a categorical over ``(b, a, others)`` for choices from larger sets, ``Batch.others``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from bayespal.model.config import ModelConfig
from bayespal.model.likelihood import (
    choice_logits,
    choice_terms,
    cutpoint_count,
    cutpoints,
    mixture_logits,
    outcome_bounds,
    outcome_log_prob,
    outcome_probs,
    pair_terms,
)
from bayespal.model.nets import Mapping

ITEM_EFFECT_SCALE = 0.3  # the item effects' prior scale tau where its fit starts
CUTPOINT_SPREAD = 0.3  # user_cutpoints: the spread sigma of the users' log factors at the start
WEIGHT_FLOOR = 1e-20  # where SafeDirichlet's log-density stops following a weight to 0
CUTPOINT_PRIOR = (0.0, 1.0)  # graded answers: each cutpoint gap ~ LogNormal(loc, scale)
# the mixture prior's scales s_c: per-prototype concentrations (at a uniform mean) from
# sparse (users at a corner) to dense (users near the mean), a factor 4 apart
MIXTURE_SCALES = (1 / 16, 1 / 4, 1.0, 4.0, 16.0)


class SafeDirichlet(dist.Dirichlet):
    """``Dirichlet`` whose log-density reads each weight as at least ``WEIGHT_FLOOR``.

    A Dirichlet draw with a small concentration can put a weight at ~1e-38 or exactly 0 in
    float32; the log-density's gradient ``(alpha - 1) / w`` then overflows and, through the
    draw's reparameterisation, turns a user's parameters NaN (seen after ~200 epochs on
    single-type users). The floor changes the density only where ``w < 1e-20``.
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value.clamp_min(WEIGHT_FLOOR))


def weights_distribution(log_proportions: torch.Tensor, concentrations: torch.Tensor
                         ) -> dist.Distribution:
    """The weights' prior ``sum_c pi_c Dirichlet(alpha_c)`` (``SafeDirichlet`` components):
    ``SafeDirichlet(alpha_0)`` itself for one component.

    Parameters
    ----------
    log_proportions:
        ``(..., C)`` the components' log proportions.
    concentrations:
        ``(..., C, K)`` their concentrations.
    """
    if log_proportions.shape[-1] == 1:
        return SafeDirichlet(concentrations[..., 0, :])
    return DirichletMixture(log_proportions, concentrations)


class DirichletMixture(dist.TorchDistribution):
    """``sum_c pi_c Dirichlet(alpha_c)`` on the simplex (each component's log-density as
    ``SafeDirichlet``'s). Unlike ``MixtureSameFamily`` its support is the simplex, so Pyro's
    NUTS can transform it. Not reparameterised (it is a prior, never a guide).

    Parameters
    ----------
    log_proportions:
        ``(..., C)`` log ``pi`` (normalised here).
    concentrations:
        ``(..., C, K)``.
    """

    arg_constraints = {"concentrations": dist.constraints.independent(
        dist.constraints.positive, 1)}
    support = dist.constraints.simplex
    has_rsample = False

    def __init__(self, log_proportions: torch.Tensor, concentrations: torch.Tensor,
                 validate_args=None) -> None:
        batch = torch.broadcast_shapes(log_proportions.shape[:-1], concentrations.shape[:-2])
        self.log_proportions = torch.log_softmax(log_proportions, -1).expand(
            *batch, log_proportions.shape[-1])
        self.concentrations = concentrations.expand(*batch, *concentrations.shape[-2:])
        super().__init__(batch, concentrations.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> DirichletMixture:
        batch_shape = torch.Size(batch_shape)
        return DirichletMixture(
            self.log_proportions.expand(*batch_shape, self.log_proportions.shape[-1]),
            self.concentrations.expand(*batch_shape, *self.concentrations.shape[-2:]))

    @property
    def mean(self) -> torch.Tensor:
        conc = self.concentrations
        return (self.log_proportions.exp().unsqueeze(-1) * conc
                / conc.sum(-1, keepdim=True)).sum(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = SafeDirichlet(self.concentrations).log_prob(value.unsqueeze(-2))
        return torch.logsumexp(lp + self.log_proportions, -1)

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        comp = dist.Categorical(logits=self.log_proportions).sample(torch.Size(sample_shape))
        conc = self.concentrations.expand(*shape, *self.concentrations.shape[-2:])
        alpha = conc.gather(-2, comp[..., None, None].expand(*shape, 1, conc.shape[-1]))
        return dist.Dirichlet(alpha[..., 0, :]).sample()


class OrderedOutcome(dist.TorchDistribution):
    """The level ``0 .. L-1`` of a graded comparison: an ordered logistic of the logit with
    cutpoints ``(..., L - 1)`` (``bayespal.model.likelihood``; stable where the logit is
    large, unlike a difference of probabilities).

    Parameters
    ----------
    logits:
        ``(...)`` the comparisons' logits.
    cuts:
        ``(L - 1,)`` or ``(..., L - 1)`` cutpoints broadcastable with ``logits``.
    """

    arg_constraints = {"logits": dist.constraints.real}
    has_enumerate_support = False

    def __init__(self, logits: torch.Tensor, cuts: torch.Tensor, validate_args=None) -> None:
        self.logits = logits
        self.cuts = cuts.expand(*logits.shape, cuts.shape[-1])
        super().__init__(logits.shape, validate_args=validate_args)

    @property
    def support(self) -> dist.constraints.Constraint:
        return dist.constraints.integer_interval(0, self.cuts.shape[-1])

    def expand(self, batch_shape, _instance=None) -> OrderedOutcome:
        batch_shape = torch.Size(batch_shape)
        return OrderedOutcome(self.logits.expand(batch_shape),
                              self.cuts.expand(*batch_shape, self.cuts.shape[-1]))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lo, hi = outcome_bounds(value.round().long().unsqueeze(-1), self.cuts)
        return outcome_log_prob(self.logits, lo[..., 0], hi[..., 0])

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        probs = outcome_probs(self.logits, self.cuts)
        return dist.Categorical(probs=probs).sample(sample_shape).float()


@dataclass
class Batch:
    """Tensors for one model call, all on the model's device.

    ``user_scale`` (per comparison) switches on the per-comparison attribution of the user
    terms described in the module docstring; ``None`` means the full user plate.
    """

    items: torch.Tensor  # (M, D) the whole item table, never copied
    user: torch.Tensor  # (B,)
    item_a: torch.Tensor
    item_b: torch.Tensor
    label: torch.Tensor | None = None
    index: torch.Tensor | None = None  # (B,) comparison ids, for the subsample
    user_scale: torch.Tensor | None = None  # (B,) = N / (U * n_user) for minibatches
    prompts: torch.Tensor | None = None  # (P, Dc) the prompt table (PAL-B)
    prompt: torch.Tensor | None = None  # (B,) rows of ``prompts``
    others: torch.Tensor | None = None  # (B, m) further items of choices, -1: none


class PALModel(nn.Module):
    """The generative model: holds the point-estimated parts (the mapping, PAL-B's prompt
    map, a learned concentration and position term).

    Parameters
    ----------
    config:
        The model's sizes and priors.
    embed_dim:
        Width ``D`` of the item embeddings.
    n_users, n_comparisons:
        Sizes of the user and comparison plates.
    prompt_embed_dim:
        PAL-B: width of the prompt embeddings (required exactly when ``config.prompted``).
    n_items:
        Rows of the training item table (required exactly when ``config.item_effects``).
    """

    def __init__(self, config: ModelConfig, embed_dim: int, n_users: int, n_comparisons: int,
                 prompt_embed_dim: int | None = None, n_items: int | None = None) -> None:
        super().__init__()
        if config.prompted != (prompt_embed_dim is not None):
            raise ValueError(f"prompts: got prompt_embed_dim={prompt_embed_dim!r} with "
                             f"prompt_dim={config.prompt_dim!r}; expected prompt embeddings "
                             "exactly for PAL-B (PreferenceData with prompt/prompts)")
        if config.item_effects != (n_items is not None):
            raise ValueError(f"n_items: got {n_items!r} with item_effects="
                             f"{config.item_effects}; expected the item table's size exactly "
                             "when the model has item effects")
        if config.user_cutpoints and config.levels <= 2:
            raise ValueError(f"user_cutpoints: got True with levels={config.levels}; expected "
                             "answers on more than two levels (ties or grades), whose "
                             "cutpoints a user can scale")
        self.config = config
        self.n_users, self.n_comparisons, self.n_items = n_users, n_comparisons, n_items
        self.embed_dim, self.prompt_embed_dim = embed_dim, prompt_embed_dim
        self.mapping = Mapping(embed_dim, config.pref_dim, config.hidden)
        if config.prompted:
            self.prompt_map = Mapping(prompt_embed_dim, config.prompt_dim, config.prompt_hidden)
        # K = 1 has no weights: its prior is the trivial Dirichlet whatever weight_prior says
        self.mixture_prior = config.weight_prior == "mixture" and config.k > 1
        if self.mixture_prior:  # proportions pi and mean m, as logits (EB)
            self.register_buffer("_mixture_scales", torch.tensor(MIXTURE_SCALES),
                                 persistent=False)
            self.prior_logits = nn.Parameter(torch.zeros(len(MIXTURE_SCALES)))
            self.prior_mean_logits = nn.Parameter(torch.zeros(config.k))
        elif config.concentration is None:
            self.log_concentration = nn.Parameter(torch.zeros(config.k))
        else:
            self.register_buffer(
                "log_concentration", torch.full((config.k,), float(config.concentration)).log()
            )
        # constants as (non-persistent) buffers: a tensor made from a Python number in
        # every step would be a host-to-device copy on a GPU
        self.register_buffer("_prototype_scale", torch.tensor(float(config.prototype_scale)),
                             persistent=False)
        loading_scale = config.loading_scale / math.sqrt(config.prompt_dim or 1)
        self.register_buffer("_loading_scale", torch.tensor(loading_scale), persistent=False)
        if config.item_effects:  # the effects' prior scale tau, learned (empirical Bayes)
            self.log_item_effect_scale = nn.Parameter(torch.tensor(math.log(ITEM_EFFECT_SCALE)))
        if config.user_cutpoints:  # the spread sigma of the users' log factors (EB)
            self.log_cutpoint_spread = nn.Parameter(torch.tensor(math.log(CUTPOINT_SPREAD)))
        if config.position_bias:  # point-estimated, like the mapping
            self.position_bias = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer("position_bias", torch.zeros(()), persistent=False)

    @property
    def item_effect_scale(self) -> torch.Tensor | None:
        """The item effects' prior scale ``tau`` (None without item effects)."""
        return self.log_item_effect_scale.exp() if self.config.item_effects else None

    @property
    def cutpoint_spread(self) -> torch.Tensor | None:
        """``sigma`` of the users' cutpoint log factors (None without ``user_cutpoints``)."""
        return self.log_cutpoint_spread.exp() if self.config.user_cutpoints else None

    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights' population prior as a mixture of Dirichlets: ``(log_proportions (C,),
        concentrations (C, K))``; one component for a single Dirichlet."""
        if self.mixture_prior:
            mean = torch.softmax(self.prior_mean_logits, -1) * self.config.k
            return (torch.log_softmax(self.prior_logits, -1),
                    self._mixture_scales[:, None] * mean)
        alpha = self.log_concentration.exp()
        return alpha.new_zeros(1), alpha[None]

    def prompt_features(self, prompt_embeddings: torch.Tensor) -> torch.Tensor | None:
        """PAL-B's ``phi(c)``; None for PAL-A.

        Parameters
        ----------
        prompt_embeddings:
            (C, Dc).
        """
        return self.prompt_map(prompt_embeddings) if self.config.prompted else None

    def population_priors(self) -> dict[str, dist.Distribution]:
        """The priors of the population sites, by site name: ``prototypes``, ``loadings``
        (PAL-B), ``sharpness``, ``item_effects`` (with item effects), ``cutpoint_gaps``
        (graded answers). The Pyro model samples them in this order; the site-by-site ELBO
        (``bayespal.inference.elbo``) scores the guide's draws under them."""
        cfg = self.config
        z = self._prototype_scale.new_zeros(())
        priors: dict[str, dist.Distribution] = {
            "prototypes": dist.Normal(z, self._prototype_scale)
            .expand([cfg.k, cfg.pref_dim]).to_event(2)}
        if cfg.prompted:
            priors["loadings"] = (dist.Normal(z, self._loading_scale)
                                  .expand([cfg.k, cfg.pref_dim, cfg.prompt_dim]).to_event(3))
        priors["sharpness"] = dist.LogNormal(z + cfg.sharpness_loc, z + cfg.sharpness_scale)
        if cfg.item_effects:
            priors["item_effects"] = (dist.Normal(z, self.item_effect_scale)
                                      .expand([self.n_items]).to_event(1))
        if cfg.levels > 2:
            priors["cutpoint_gaps"] = (dist.LogNormal(z + CUTPOINT_PRIOR[0],
                                                      z + CUTPOINT_PRIOR[1])
                                       .expand([cutpoint_count(cfg.levels)]).to_event(1))
        return priors

    def weights_prior(self) -> dist.Distribution:
        """The population prior of one user's weights (``weights_distribution``)."""
        return weights_distribution(*self.prior_components())

    def user_priors(self) -> dict[str, dist.Distribution]:
        """The priors of one user's sites, by name, in the order they are drawn:
        ``weights`` (K > 1) and ``cutpoint_log_scale`` (``user_cutpoints``)."""
        priors: dict[str, dist.Distribution] = {}
        if self.config.k > 1:
            priors["weights"] = self.weights_prior()
        if self.config.user_cutpoints:
            priors["cutpoint_log_scale"] = dist.Normal(self.log_cutpoint_spread.new_zeros(()),
                                                       self.cutpoint_spread)
        return priors

    def label_dist(self, batch: Batch, values: dict[str, torch.Tensor], weights: torch.Tensor,
                   cutpoint_log_scale: torch.Tensor | None = None
                   ) -> tuple[dist.Distribution, torch.Tensor | None, torch.Tensor]:
        """The answers' distribution given the population sites' ``values`` and the
        comparisons' ``weights``: Bernoulli (binary), ordered logistic (graded) or
        categorical over ``(b, a, others)`` (choices from larger sets).

        Parameters
        ----------
        batch:
            The comparisons.
        values:
            The population sites' values, by name (``population_priors``).
        weights:
            ``(..., B, K)`` each comparison's user weights.
        cutpoint_log_scale:
            ``(..., B)`` each comparison's user's cutpoint log factor (``user_cutpoints``);
            None: the population's cutpoints.

        Returns
        -------
        tuple
            The distribution (batch shape ``(..., B)``), the observed value of its site
            (None without labels) and the comparisons' logits.
        """
        cfg = self.config
        if cfg.prompted and batch.prompt is None:
            raise ValueError("prompt: got None; expected the comparisons' prompts (PAL-B)")
        prototypes, sharpness = values["prototypes"], values["sharpness"]
        loadings = values.get("loadings")
        pc = self.prompt_map(batch.prompts[batch.prompt]) if cfg.prompted else None
        offset = other_offset = None
        if cfg.item_effects:
            effects = values["item_effects"]
            offset = effects[..., batch.item_a] - effects[..., batch.item_b]
            if batch.others is not None:
                other_offset = (effects[..., batch.others.clamp(min=0)]
                                - effects[..., batch.item_b].unsqueeze(-1))
        fb = self.mapping(batch.items[batch.item_b])
        diff, gram = pair_terms(prototypes, sharpness, self.mapping(batch.items[batch.item_a]),
                                fb, loadings=loadings,
                                pc=pc, metric=cfg.metric, position_bias=self.position_bias,
                                offset=offset)
        logits = mixture_logits(weights, diff, gram)
        if batch.others is not None:  # choices from larger sets (binary labels)
            o_diff, o_gram = choice_terms(
                prototypes, sharpness, self.mapping(batch.items[batch.others.clamp(min=0)]),
                fb, loadings=loadings, pc=pc, metric=cfg.metric, offset=other_offset)
            utilities = choice_logits(weights, logits, o_diff, o_gram, batch.others)
            return dist.Categorical(logits=utilities), batch.label, logits
        if cfg.levels <= 2:
            return dist.Bernoulli(logits=logits), batch.label, logits
        cuts = cutpoints(values["cutpoint_gaps"], cfg.levels).unsqueeze(-2)  # (..., 1, L - 1)
        if cutpoint_log_scale is not None:
            cuts = cuts * cutpoint_log_scale.exp().unsqueeze(-1)  # (..., B, L - 1)
        level = None if batch.label is None else batch.label * (cfg.levels - 1)
        return OrderedOutcome(logits, cuts), level, logits

    def model(self, batch: Batch) -> torch.Tensor:
        """The Pyro model of ``batch``'s labels; returns the logits.

        Parameters
        ----------
        batch:
            The minibatch (or, with user_scale None, all comparisons).
        """
        if self.config.prompted and batch.prompt is None:
            raise ValueError("prompt: got None; expected the comparisons' prompts (PAL-B)")
        values = {name: pyro.sample(name, prior)
                  for name, prior in self.population_priors().items()}
        local = self._user_sites(batch)
        weights = local.get("weights")
        if weights is None:  # one prototype: nothing to infer per user
            weights = batch.user.new_ones((len(batch.user), 1), dtype=torch.float32)
        with pyro.plate("comparison", self.n_comparisons, subsample=batch.index):
            fn, obs, logits = self.label_dist(batch, values, weights,
                                              local.get("cutpoint_log_scale"))
            pyro.sample("label", fn, obs=obs)
        return logits

    def _user_sites(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The user sites (``user_priors``) aligned with the batch's comparisons: weights
        ``(..., B, K)``, cutpoint log factors ``(..., B)``."""
        priors = self.user_priors()
        if not priors:
            return {}
        if batch.user_scale is None:
            with pyro.plate("user", self.n_users):
                drawn = {name: pyro.sample(name, prior) for name, prior in priors.items()}
            return {name: v.index_select(-2 if name == "weights" else -1, batch.user)
                    for name, v in drawn.items()}
        with (
            pyro.plate("user", self.n_users, subsample=batch.user),
            poutine.scale(scale=batch.user_scale),
        ):
            return {name: pyro.sample(name, prior) for name, prior in priors.items()}
