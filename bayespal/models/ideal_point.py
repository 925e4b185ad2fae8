"""PAL-A, the ideal-point model, as a Pyro generative model (DESIGN.md section 2).

::

    f_theta : R^D -> R^d                 MLP mapping, point estimate
    P_k   ~ Normal(0, s_P^2 I_d)         k = 1..K   prototypes
    w_i   ~ Dirichlet(alpha)             i = 1..U   user mixture weights
    beta  ~ LogNormal(m_b, s_b)          sharpness
    z_i   = sum_k w_ik P_k               ideal point
    logit_n = beta * (||f(x_b) - z_u||^2 - ||f(x_a) - z_u||^2)
    y_n   ~ Bernoulli(logits=logit_n)    y = 1: item a preferred

``alpha`` is either fixed (a float, ``alpha * 1_K`` as in DESIGN.md) or learned by
empirical Bayes (``concentration=None``, the default): a point-estimated vector, so the
population's mixture distribution -- which is also the prior of a new user -- is fitted to
the data instead of assumed uniform.

Minibatching. A batch is a subsample of comparisons. The user terms ``log p(w_i) - log
q(w_i)`` are attributed to comparisons: each of user i's ``n_i`` comparisons carries
``1/n_i`` of them, and each comparison gets its own draw of ``w_{u_n}`` from ``q``. With
the comparison subsample scaled by ``N/B`` the estimate is unbiased for the full ELBO
(tested in ``tests/test_elbo.py``), needs no ``unique`` (no host sync on a GPU) and
touches only the users in the batch. With ``Batch.user_scale=None`` the model is the
plain generative model: one ``w_i`` per user, all users, for prediction, Predictive,
NUTS and the exact full-data ELBO.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from bayespal.checks import check_int, check_real, fail
from bayespal.models.nets import Mapping

INFERENCE_MODES = ("svi", "map")
SCORES = ("distance", "cosine")


@dataclass(frozen=True)
class PALConfig:
    """Model and variational-family configuration (hashable, JSON-serialisable)."""

    k: int = 3
    pref_dim: int = 16
    hidden: tuple[int, ...] = (64,)
    prototype_scale: float = 1.0
    sharpness_loc: float = 0.0
    sharpness_scale: float = 1.0
    concentration: float | None = None  # None: learned by empirical Bayes
    inference: str = "svi"  # "svi": Bayesian (mean-field); "map": point estimates
    # PAL-B (models/prompted.py): prompt_dim = width of the prompt features phi(c);
    # None is PAL-A (prompts, if any, are ignored).
    prompt_dim: int | None = None
    prompt_hidden: tuple[int, ...] = ()
    loading_scale: float = 1.0  # prior sd of the prototypes' prompt loadings
    score: str = "distance"  # PAL-B: "distance" (a mixture of rewards) or "cosine"
    # a learned offset of every logit: how much more often the item shown first (item_a)
    # is chosen whatever it is (presentation order); off by default
    position_bias: bool = False

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("k", check_int("k", self.k))
        put("pref_dim", check_int("pref_dim", self.pref_dim))
        for name in ("hidden", "prompt_hidden"):
            widths = getattr(self, name)
            if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
                raise fail(name, widths, "a sequence of positive layer widths")
            put(name, tuple(check_int(f"{name}[{i}]", h) for i, h in enumerate(widths)))
        for name in ("prototype_scale", "sharpness_scale", "loading_scale"):
            put(name, check_real(name, getattr(self, name), low=0, low_open=True))
        put("sharpness_loc", check_real("sharpness_loc", self.sharpness_loc))
        if self.concentration is not None:
            put("concentration", check_real("concentration", self.concentration, low=0,
                                            low_open=True))
        if self.inference not in INFERENCE_MODES:
            raise fail("inference", self.inference, f"one of {INFERENCE_MODES}")
        if self.prompt_dim is not None:
            put("prompt_dim", check_int("prompt_dim", self.prompt_dim))
        if self.score not in SCORES:
            raise fail("score", self.score, f"one of {SCORES}")
        if self.score == "cosine" and self.prompt_dim is None:
            raise fail("score", self.score, "'distance' for PAL-A (cosine is a PAL-B option; "
                       "set prompt_dim)")
        if not isinstance(self.position_bias, (bool, np.bool_)):
            raise fail("position_bias", self.position_bias, "True or False")
        put("position_bias", bool(self.position_bias))
        if self.position_bias and self.score == "cosine":
            raise fail("position_bias", True, "False with score='cosine' (a position term is "
                       "added to the logit, which the cosine score normalises)")

    @property
    def prompted(self) -> bool:
        """PAL-B: prototypes are functions of the prompt."""
        return self.prompt_dim is not None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["prompt_hidden"] = list(self.prompt_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PALConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", ()))
        d["prompt_hidden"] = tuple(d.get("prompt_hidden", ()))
        return cls(**d)

    def hash(self) -> str:
        d = self.to_dict()
        if not self.prompted:  # PAL-A hashes as before PAL-B existed (old files still load)
            for key in ("prompt_dim", "prompt_hidden", "loading_scale", "score"):
                d.pop(key)
        if not self.position_bias:  # and as before the position term existed
            d.pop("position_bias")
        text = json.dumps(d, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Batch:
    """Tensors for one model call; all on the model's device.

    ``user_scale`` (per comparison) switches on the per-comparison attribution of the
    user terms described in the module docstring; ``None`` means the full user plate.
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


def ideal_point_logits(
    prototypes: torch.Tensor,
    sharpness: torch.Tensor,
    weights: torch.Tensor,
    fa: torch.Tensor,
    fb: torch.Tensor,
) -> torch.Tensor:
    """``beta * (||f_b - z||^2 - ||f_a - z||^2)`` with ``z = w @ P``.

    Shapes broadcast over leading sample dims: prototypes ``(..., K, d)``, sharpness
    ``(...)``, weights ``(..., B, K)``, features ``(B, d)``; returns ``(..., B)``.
    """
    z = weights @ prototypes  # (..., B, d)
    diff = (fb - z).pow(2).sum(-1) - (fa - z).pow(2).sum(-1)
    return sharpness.unsqueeze(-1) * diff


def pair_terms(
    prototypes: torch.Tensor,
    sharpness: torch.Tensor,
    fa: torch.Tensor,
    fb: torch.Tensor,
    score: str = "distance",
    per_comparison: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The per-prototype terms of comparisons' logits, from which any weights' logits follow
    (:func:`mixture_logits`). ``prototypes`` are ``(..., K, d)``, shared by all comparisons
    (PAL-A), or with ``per_comparison`` ``(..., B, K, d)``, each comparison's own (PAL-B);
    ``sharpness (...)``; features ``(B, d)``, or ``(..., B, d)`` when each draw has its own.
    Returns ``diff (..., B, K)`` and ``gram``:

    - ``"distance"``: ``diff_k = beta * (r_k(a) - r_k(b))``, ``gram = None``; the logit
      ``w . diff`` is linear in ``w`` (a mixture of rewards).
    - ``"cosine"``: ``diff_k = beta * (a/|a| - b/|b|) . g_k``, ``gram = g g^T`` of shape
      ``(..., B or 1, K, K)``; the logit is ``w . diff / sqrt(w^T gram w)``, i.e.
      ``beta * (cos(f_a, z) - cos(f_b, z))`` with ``z = w g``.
    """
    beta = sharpness[..., None, None]
    if score == "cosine":
        fa, fb = F.normalize(fa, dim=-1), F.normalize(fb, dim=-1)
    delta = fa - fb
    if per_comparison:
        lin = torch.einsum("...bkd,...bd->...bk", prototypes, delta)
    else:
        lin = delta @ prototypes.transpose(-1, -2)  # (..., B, K)
    if score == "cosine":
        gram = prototypes @ prototypes.transpose(-1, -2)
        return beta * lin, gram if per_comparison else gram.unsqueeze(-3)
    norm_diff = (fa.pow(2).sum(-1) - fb.pow(2).sum(-1)).unsqueeze(-1)  # (..., B, 1)
    return beta * (2 * lin - norm_diff), None


def mixture_logits(weights: torch.Tensor, diff: torch.Tensor, gram: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Logits from :func:`pair_terms` for ``weights`` broadcastable to ``diff (..., K)``."""
    num = (weights * diff).sum(-1)
    if gram is None:
        return num
    quad = ((weights.unsqueeze(-1) * gram).sum(-2) * weights).sum(-1)
    return num / quad.clamp_min(1e-12).sqrt()


def prototype_rewards(prototypes: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``r_k(x) = 2 P_k . f(x) - ||f(x)||^2``: prototypes ``(..., K, d)``, features ``(M, d)``
    -> ``(..., K, M)``. A user's reward is ``sum_k w_k r_k``; logits are sharpness times
    reward differences."""
    return 2 * prototypes @ features.T - features.pow(2).sum(-1)


class IdealPointModel(nn.Module):
    """The generative model. Holds the mapping and (if learned) the population concentration."""

    def __init__(
        self,
        config: PALConfig,
        embed_dim: int,
        n_users: int,
        n_comparisons: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_comparisons = n_comparisons
        self.embed_dim = embed_dim
        self.prompt_embed_dim: int | None = None  # PAL-B: the prompt embeddings' width
        self.mapping = Mapping(embed_dim, config.pref_dim, config.hidden)
        if config.concentration is None:
            self.log_concentration = nn.Parameter(torch.zeros(config.k))
        else:
            self.register_buffer(
                "log_concentration", torch.full((config.k,), float(config.concentration)).log()
            )
        # constants as (non-persistent) buffers: a tensor made from a Python number in
        # every step would be a host-to-device copy on a GPU
        self.register_buffer("_prototype_scale", torch.tensor(float(config.prototype_scale)),
                             persistent=False)
        if config.position_bias:  # point-estimated, like the mapping
            self.position_bias = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer("position_bias", torch.zeros(()), persistent=False)

    @property
    def concentration(self) -> torch.Tensor:
        return self.log_concentration.exp()

    def _prior_scale(self) -> torch.Tensor:
        return self._prototype_scale

    def model(self, batch: Batch) -> torch.Tensor:
        cfg = self.config
        z = self.log_concentration.new_zeros(())
        prototypes = pyro.sample(
            "prototypes",
            dist.Normal(z, self._prior_scale()).expand([cfg.k, cfg.pref_dim]).to_event(2),
        )
        sharpness = pyro.sample(
            "sharpness", dist.LogNormal(z + cfg.sharpness_loc, z + cfg.sharpness_scale)
        )
        weights = self._weights(batch)
        fa = self.mapping(batch.items[batch.item_a])
        fb = self.mapping(batch.items[batch.item_b])
        logits = ideal_point_logits(prototypes, sharpness, weights, fa, fb) + self.position_bias
        with pyro.plate("comparison", self.n_comparisons, subsample=batch.index):
            pyro.sample("label", dist.Bernoulli(logits=logits), obs=batch.label)
        return logits

    def terms(self, draws: dict, fa: torch.Tensor, fb: torch.Tensor,
              pc: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:func:`pair_terms` of comparisons for posterior ``draws`` (a dict of sites with a
        leading sample dim); ``pc``, the prompt features, is unused by PAL-A. The position
        term is added to every ``diff_k``: the weights sum to one, so it adds to the logit."""
        diff, gram = pair_terms(draws["prototypes"], draws["sharpness"], fa, fb)
        return diff + self.position_bias, gram

    def prompt_features(self, prompt_embeddings: torch.Tensor) -> torch.Tensor | None:
        return None  # PAL-A has no prompt map

    def _weights(self, batch: Batch) -> torch.Tensor:
        """User weights aligned with the batch's comparisons, shape ``(..., B, K)``."""
        k = self.config.k
        if k == 1:  # Bradley-Terry: one prototype, nothing to infer per user
            return batch.user.new_ones((len(batch.user), 1), dtype=torch.float32)
        prior = dist.Dirichlet(self.concentration)
        if batch.user_scale is None:
            with pyro.plate("user", self.n_users):
                w = pyro.sample("weights", prior)
            return w.index_select(-2, batch.user)
        with (
            pyro.plate("user", self.n_users, subsample=batch.user),
            poutine.scale(scale=batch.user_scale),
        ):
            return pyro.sample("weights", prior)


def _inv_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class IdealPointGuide(nn.Module):
    """Variational family: mean-field Normal prototypes, LogNormal sharpness and a
    Dirichlet per user (``inference="svi"``), or point masses everywhere (``"map"``,
    the reference PAL's estimator). The mapping is a point estimate in both."""

    def __init__(self, config: PALConfig, n_users: int, generator: torch.Generator) -> None:
        super().__init__()
        self.config = config
        self.map = config.inference == "map"
        self.n_users = n_users
        k, d = config.k, config.pref_dim
        init = torch.randn(k, d, generator=generator) * config.prototype_scale
        self.prototypes_loc = nn.Parameter(init)
        self.prototypes_raw_scale = nn.Parameter(torch.full((k, d), _inv_softplus(0.05)))
        self.sharpness_loc = nn.Parameter(torch.tensor(float(config.sharpness_loc)))
        self.sharpness_raw_scale = nn.Parameter(torch.tensor(_inv_softplus(0.05)))
        # Users start near the simplex centre with a small random tilt (breaks symmetry).
        tilt = 0.1 * torch.randn(n_users, k, generator=generator)
        if self.map:
            self.weights_logits = nn.Parameter(tilt)
        else:
            self.weights_raw_concentration = nn.Parameter(_inv_softplus(2.0) + tilt)

    # -- variational distributions --------------------------------------------------
    def prototypes_dist(self) -> dist.Distribution:
        if self.map:
            return dist.Delta(self.prototypes_loc, event_dim=2)
        scale = F.softplus(self.prototypes_raw_scale)
        return dist.Normal(self.prototypes_loc, scale).to_event(2)

    def sharpness_dist(self) -> dist.Distribution:
        if self.map:
            return dist.Delta(self.sharpness_loc.exp())
        return dist.LogNormal(self.sharpness_loc, F.softplus(self.sharpness_raw_scale))

    def weights_dist(self, users: torch.Tensor | None = None) -> dist.Distribution:
        """``q(w)`` for the given user indices (all users if None), batch shape ``(B,)``."""
        if self.map:
            logits = self.weights_logits if users is None else self.weights_logits[users]
            return dist.Delta(logits.softmax(-1), event_dim=1)
        raw = self.weights_raw_concentration
        raw = raw if users is None else raw[users]
        return dist.Dirichlet(F.softplus(raw) + 1e-3)

    # -- the Pyro guide -----------------------------------------------------------------
    def guide(self, batch: Batch) -> None:
        pyro.sample("prototypes", self.prototypes_dist())
        pyro.sample("sharpness", self.sharpness_dist())
        if self.config.k == 1:
            return
        n_users = self.n_users
        if batch.user_scale is None:
            with pyro.plate("user", n_users):
                pyro.sample("weights", self.weights_dist())
            return
        with (
            pyro.plate("user", n_users, subsample=batch.user),
            poutine.scale(scale=batch.user_scale),
        ):
            pyro.sample("weights", self.weights_dist(batch.user))

    # -- summaries ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, num_samples: int, users: torch.Tensor | None = None) -> dict:
        """Independent draws from the variational posterior (uses torch's global RNG)."""
        shape = torch.Size([num_samples])
        out = {
            "prototypes": self.prototypes_dist().sample(shape),
            "sharpness": self.sharpness_dist().sample(shape),
        }
        if self.config.k > 1:
            out["weights"] = self.weights_dist(users).sample(shape)
        return out

    def point(self) -> dict:
        """The population sites at their posterior means (MAP: the estimates), as one draw."""
        return {
            "prototypes": self.prototypes_loc.detach()[None],
            "sharpness": self.sharpness_dist().mean.detach().reshape(1)
            if not self.map else self.sharpness_loc.detach().exp().reshape(1),
        }

    @torch.no_grad()
    def weights_mean(self) -> torch.Tensor:
        if self.config.k == 1:
            return self.prototypes_loc.new_ones(self.n_users, 1)
        d = self.weights_dist()
        return d.mean if not self.map else d.v
