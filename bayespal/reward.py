"""Scalar reward models from a fitted PAL, for RLHF.

A user's reward for a response ``x`` is ``beta * sum_k w_k r_k(x)`` with
``r_k(x) = 2 P_k . f(x) - ||f(x)||^2``: differences of it are the model's log-odds that
one response is preferred. :class:`RewardModel` returns its posterior mean and sd over
draws of the population and of ``w``, for one of four sources of ``w``:

- a user seen in training (``user=``), from their variational posterior;
- given mixture ``weights=`` (fixed);
- a new user's posterior (``posterior=``, a single-user :class:`~bayespal.newuser.NewUsers`);
- the population (default): ``w ~ Dirichlet(alpha)``.

Rewards are centred per draw on a reference set of items (default: the fit's training
items), so the sd measures uncertainty about *differences* between responses, the part
that is identifiable. PAL-A's reward does not depend on the prompt; ``score`` accepts
response embeddings only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyro.distributions as dist
import torch

from bayespal.models.ideal_point import prototype_rewards

CHUNK = 8192


class RewardModel:
    """Posterior reward of responses for one user, given weights, a new user or the
    population (see the module docstring)."""

    def __init__(self, fit, *, user=None, weights: Sequence[float] | None = None,
                 posterior=None, num_samples: int = 256, reference: np.ndarray | None = None,
                 seed: int = 0) -> None:
        chosen = [x is not None for x in (user, weights, posterior)]
        if sum(chosen) > 1:
            raise ValueError("user/weights/posterior: got more than one; expected at most one "
                             "source of mixture weights")
        from bayespal.posterior import FittedPAL

        if not isinstance(fit, FittedPAL):
            raise ValueError(f"fit: got {type(fit).__name__}; expected a FittedPAL (export an "
                             "ensemble's members one by one)")
        if fit.prompted:
            raise ValueError("fit: got a PAL-B (prompt-conditioned) fit; expected PAL-A: a "
                             "RewardModel exports a prompt-free reward (use FittedPAL."
                             "prototype_rewards(..., prompt_embedding=...) for PAL-B)")
        self.fit, self.num_samples = fit, num_samples
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            self._draw(user, weights, posterior)
        if reference is None and fit.train is not None:
            reference = fit.train.items
        self._offset = None
        if reference is not None:
            self._offset = self._raw(np.asarray(reference)).mean(1, keepdim=True)  # (S, 1)

    def _draw(self, user, weights, posterior) -> None:
        fit, s = self.fit, self.num_samples
        if posterior is not None:
            if len(posterior.ids) != 1:
                raise ValueError(f"posterior: got {len(posterior.ids)} users; expected one")
            w, pop = posterior.draws(s)
            self.weights, pop = w[0].to(fit.device), pop[0]
            self.prototypes = posterior.pop.prototypes[pop].to(fit.device)
            self.sharpness = posterior.pop.sharpness[pop].to(fit.device)
            return
        draws = fit.guide.sample(s)
        self.prototypes, self.sharpness = draws["prototypes"], draws["sharpness"]
        if fit.k == 1:
            self.weights = torch.ones(s, 1, device=fit.device)
        elif user is not None:
            idx = int(fit.user_index(np.array([user], dtype=object))[0])
            if idx < 0:
                raise ValueError(f"user: got {user!r}; expected a user seen in training "
                                 "(use posterior= for a new user)")
            self.weights = draws["weights"][:, idx]
        elif weights is not None:
            w = torch.as_tensor(np.asarray(weights, dtype=np.float32), device=fit.device)
            if w.shape != (fit.k,) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-4:
                raise ValueError(f"weights: got {np.asarray(weights).tolist()}; expected {fit.k} "
                                 "non-negative numbers summing to 1")
            self.weights = w.expand(s, -1)
        else:
            self.weights = dist.Dirichlet(fit.model.concentration).sample((s,))

    def _raw(self, embeddings: np.ndarray) -> torch.Tensor:
        """Uncentred reward draws ``(S, n)``."""
        out = []
        for i in range(0, len(embeddings), CHUNK):
            f = self.fit.features(embeddings[i : i + CHUNK])
            r = prototype_rewards(self.prototypes, f)  # (S, K, n)
            out.append(self.sharpness[:, None] * torch.einsum("sk,skn->sn", self.weights, r))
        return torch.cat(out, 1)

    @torch.no_grad()
    def score(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of the reward of each response embedding ``(n, D)``."""
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[1] != self.fit.model.mapping.net[0].in_features:
            raise ValueError(f"embeddings: got shape {emb.shape}; expected (n, "
                             f"{self.fit.model.mapping.net[0].in_features})")
        r = self._raw(emb)
        if self._offset is not None:
            r = r - self._offset
        return r.mean(0).cpu().numpy(), r.std(0).cpu().numpy()

    def score_texts(self, texts: Sequence[str], embedder=None) -> tuple[np.ndarray, np.ndarray]:
        """Embed raw texts with the embedding configuration the model was fitted with (or
        ``embedder``) and score them."""
        if embedder is None:
            from bayespal.embed import TextEmbedder

            config = (self.fit.train.meta.get("embedding") if self.fit.train is not None
                      else None) or getattr(self.fit, "embedding", None)
            if not config:
                raise ValueError("embedder: got None and the fit records no embedding "
                                 "configuration; expected a TextEmbedder")
            embedder = TextEmbedder.from_config(config)
        return self.score(embedder(list(texts)))
