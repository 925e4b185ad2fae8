"""PAL-B, the prompt-conditioned ideal-point model, as a Pyro generative model.

The prototypes depend on the prompt ``c`` (DESIGN.md section 2)::

    f_theta  : R^D  -> R^d               item mapping (MLP, point estimate), as in PAL-A
    phi      : R^Dc -> R^q               prompt features (MLP, point estimate)
    P_k      ~ Normal(0, s_P^2 I_d)      k = 1..K   base prototypes
    L_k      ~ Normal(0, s_L^2 / q)      (d x q)    prompt loadings of prototype k
    g_k(c)   = P_k + L_k phi(c)          prototype k for prompt c
    w_i      ~ Dirichlet(alpha),  beta ~ LogNormal(m_b, s_b)      as in PAL-A
    z_i(c)   = sum_k w_ik g_k(c)         user i's ideal point for prompt c
    "distance" (default): logit_n = beta * (||f(x_b) - z||^2 - ||f(x_a) - z||^2)
    "cosine"  (reference): logit_n = beta * (cos(f(x_a), z) - cos(f(x_b), z))

With the squared distance the logit stays linear in ``w``: prototype k's reward for
prompt ``c`` is ``r_k(x | c) = 2 g_k(c) . f(x) - ||f(x)||^2`` and a user's reward is
``sum_k w_ik r_k(x | c)``, exactly a mixture of K prompt-dependent rewards. The cosine
score of the reference implementation (with ``beta`` as its logit scale) is not: the
norm of ``z`` couples the weights. Both share every interface of PAL-A (new users,
queries and diagnostics use :func:`~bayespal.models.ideal_point.pair_terms`).

``L = 0`` is PAL-A: the prior on the loadings shrinks towards it, so PAL-B loses little
where prompts do not matter. Sites: ``prototypes``, ``loadings``, ``sharpness``,
``weights``, ``label``.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from bayespal.models.ideal_point import (
    Batch,
    IdealPointGuide,
    IdealPointModel,
    PALConfig,
    _inv_softplus,
    pair_terms,
)
from bayespal.models.nets import Mapping


def prompt_prototypes(prototypes: torch.Tensor, loadings: torch.Tensor, pc: torch.Tensor
                      ) -> torch.Tensor:
    """``g_k(c) = P_k + L_k phi(c)``: prototypes ``(..., K, d)``, loadings ``(..., K, d, q)``,
    prompt features ``(B, q)`` (or ``(..., B, q)``) -> ``(..., B, K, d)``."""
    return prototypes.unsqueeze(-3) + torch.einsum("...kdq,...bq->...bkd", loadings, pc)


class PromptedModel(IdealPointModel):
    """PAL-B's generative model: PAL-A's, with prototypes that are maps of the prompt."""

    def __init__(self, config: PALConfig, embed_dim: int, n_users: int, n_comparisons: int,
                 prompt_embed_dim: int) -> None:
        if not config.prompted:
            raise ValueError("prompt_dim: got None; expected an integer >= 1 for PAL-B")
        super().__init__(config, embed_dim, n_users, n_comparisons)
        self.prompt_embed_dim = prompt_embed_dim
        self.prompt_map = Mapping(prompt_embed_dim, config.prompt_dim, config.prompt_hidden)
        scale = config.loading_scale / math.sqrt(config.prompt_dim)
        self.register_buffer("_loading_scale", torch.tensor(scale), persistent=False)

    def prompt_features(self, prompt_embeddings: torch.Tensor) -> torch.Tensor:
        return self.prompt_map(prompt_embeddings)

    def _loading_prior(self) -> dist.Distribution:
        cfg = self.config
        zero = self.log_concentration.new_zeros(())
        shape = [cfg.k, cfg.pref_dim, cfg.prompt_dim]
        return dist.Normal(zero, self._loading_scale).expand(shape).to_event(3)

    def model(self, batch: Batch) -> torch.Tensor:
        cfg = self.config
        if batch.prompt is None:
            raise ValueError("prompt: got None; expected the comparisons' prompts (PAL-B)")
        z0 = self.log_concentration.new_zeros(())
        prototypes = pyro.sample(
            "prototypes",
            dist.Normal(z0, self._prior_scale()).expand([cfg.k, cfg.pref_dim]).to_event(2),
        )
        loadings = pyro.sample("loadings", self._loading_prior())
        sharpness = pyro.sample(
            "sharpness", dist.LogNormal(z0 + cfg.sharpness_loc, z0 + cfg.sharpness_scale)
        )
        weights = self._weights(batch)  # (..., B, K)
        fa = self.mapping(batch.items[batch.item_a])
        fb = self.mapping(batch.items[batch.item_b])
        g = prompt_prototypes(prototypes, loadings, self.prompt_map(batch.prompts[batch.prompt]))
        z = (weights.unsqueeze(-1) * g).sum(-2)  # (..., B, d) ideal points
        if cfg.score == "cosine":
            score = F.cosine_similarity(fa, z, dim=-1) - F.cosine_similarity(fb, z, dim=-1)
        else:
            score = (fb - z).pow(2).sum(-1) - (fa - z).pow(2).sum(-1)
        logits = sharpness.unsqueeze(-1) * score + self.position_bias
        with pyro.plate("comparison", self.n_comparisons, subsample=batch.index):
            pyro.sample("label", dist.Bernoulli(logits=logits), obs=batch.label)
        return logits

    def terms(self, draws: dict, fa: torch.Tensor, fb: torch.Tensor,
              pc: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:func:`pair_terms` for posterior ``draws`` and comparisons with prompt features
        ``pc (B, q)``."""
        if pc is None:
            raise ValueError("prompt: got None; expected the comparisons' prompts (PAL-B)")
        g = prompt_prototypes(draws["prototypes"], draws["loadings"], pc)
        diff, gram = pair_terms(g, draws["sharpness"], fa, fb, self.config.score,
                                per_comparison=True)
        return diff + self.position_bias, gram  # (no position term with the cosine score)


class PromptedGuide(IdealPointGuide):
    """PAL-A's guide plus a mean-field Normal (or, for MAP, a point mass) on the loadings."""

    def __init__(self, config: PALConfig, n_users: int, generator: torch.Generator) -> None:
        super().__init__(config, n_users, generator)
        shape = (config.k, config.pref_dim, config.prompt_dim)
        self.loadings_loc = nn.Parameter(0.01 * torch.randn(*shape, generator=generator))
        self.loadings_raw_scale = nn.Parameter(torch.full(shape, _inv_softplus(0.05)))

    def loadings_dist(self) -> dist.Distribution:
        if self.map:
            return dist.Delta(self.loadings_loc, event_dim=3)
        return dist.Normal(self.loadings_loc, F.softplus(self.loadings_raw_scale)).to_event(3)

    def guide(self, batch: Batch) -> None:
        pyro.sample("loadings", self.loadings_dist())
        super().guide(batch)

    @torch.no_grad()
    def sample(self, num_samples: int, users: torch.Tensor | None = None) -> dict:
        out = super().sample(num_samples, users)
        out["loadings"] = self.loadings_dist().sample(torch.Size([num_samples]))
        return out

    def point(self) -> dict:
        out = super().point()
        out["loadings"] = self.loadings_loc.detach()[None]
        return out
