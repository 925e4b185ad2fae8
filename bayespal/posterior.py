"""The fitted result: posterior predictive, user-weight summaries, draws, rewards."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyro.distributions as dist
import torch
import xarray as xr
from scipy import stats

from bayespal.data import PreferenceData
from bayespal.models.ideal_point import (
    IdealPointGuide,
    IdealPointModel,
    PALConfig,
    prototype_rewards,
)

CHUNK = 4096  # comparisons per chunk in predictions (bounds memory at S x K x CHUNK)
UNKNOWN_USER_DRAWS = 16  # prior draws of w per posterior draw for users not in training
_NOBODY = object()  # a user id no fit can contain


@dataclass(eq=False)
class FittedPAL:
    """A fitted PAL-A posterior (returned by :func:`bayespal.fit`).

    Users seen in training are predicted from their own weight posterior. A user *not*
    seen in training is predicted from the **population average**: their weights are
    integrated over the fitted population distribution ``Dirichlet(alpha)`` (the prior a
    new user starts from). To *place* a new user from their answers use
    :mod:`bayespal.newuser`.
    """

    config: PALConfig
    model: IdealPointModel
    guide: IdealPointGuide
    user_ids: np.ndarray
    item_ids: np.ndarray
    elbo_history: np.ndarray  # per epoch: negative ELBO per comparison
    epoch_seconds: np.ndarray  # per epoch: wall time
    train: PreferenceData | None = None
    seed: int = 0
    validation_history: np.ndarray | None = None  # per epoch: held-out log-loss, if monitored
    embedding: dict | None = None  # the text-embedding configuration of the items, if known
    _user_index: pd.Index = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._user_index = pd.Index(self.user_ids)

    @property
    def device(self) -> torch.device:
        return self.guide.prototypes_loc.device

    @property
    def k(self) -> int:
        return self.config.k

    @property
    def concentration(self) -> np.ndarray:
        """The population's Dirichlet concentration ``alpha`` (fitted or fixed)."""
        return self.model.concentration.detach().cpu().numpy()

    def user_index(self, ids: np.ndarray) -> np.ndarray:
        """Positions of user ids in this fit's user table; -1 for users not seen."""
        return self._user_index.get_indexer(np.asarray(ids))

    # ------------------------------------------------------------------ draws
    def _generator_seed(self, seed: int | None) -> None:
        torch.manual_seed(self.seed if seed is None else seed)

    @torch.no_grad()
    def features(self, embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``f(x)`` for item embeddings, shape ``(M, pref_dim)`` on the fit's device."""
        x = torch.as_tensor(np.asarray(embeddings) if not torch.is_tensor(embeddings)
                            else embeddings).to(self.device)
        return self.model.mapping(x)

    @torch.no_grad()
    def sample_posterior(self, num_samples: int = 500, seed: int | None = None) -> dict:
        """Draws from the (variational) posterior as numpy arrays: ``prototypes (S, K, d)``,
        ``sharpness (S,)``, ``weights (S, U, K)``."""
        self._generator_seed(seed)
        draws = self.guide.sample(num_samples)
        if "weights" not in draws:
            draws["weights"] = torch.ones(num_samples, len(self.user_ids), 1)
        return {k: v.cpu().numpy() for k, v in draws.items()}

    @torch.no_grad()
    def _pair_probs(
        self,
        user: np.ndarray,
        emb_a: torch.Tensor,
        emb_b: torch.Tensor,
        num_samples: int,
    ) -> torch.Tensor:
        """Per-draw ``P(a > b)`` for comparisons, ``(S, B)``. For users not seen in
        training (index -1) each draw's probability integrates w over the population
        ``Dirichlet(alpha)`` with ``UNKNOWN_USER_DRAWS`` draws."""
        draws = self.guide.sample(num_samples)
        fa, fb = self.model.mapping(emb_a), self.model.mapping(emb_b)
        protos = draws["prototypes"]
        dr = prototype_rewards(protos, fa) - prototype_rewards(protos, fb)  # (S, K, B)
        beta = draws["sharpness"][:, None]
        if self.k == 1:
            return torch.sigmoid(beta * dr[:, 0])
        user_t = torch.as_tensor(user, device=self.device)
        known = user_t >= 0
        w = self.guide.weights_dist(user_t.clamp(min=0)).sample((num_samples,))  # (S, B, K)
        probs = torch.sigmoid(beta * torch.einsum("sbk,skb->sb", w, dr))
        if bool((~known).any()):
            prior = dist.Dirichlet(self.model.concentration)
            w0 = prior.sample((UNKNOWN_USER_DRAWS, num_samples, len(user)))  # (Q, S, B, K)
            pop = torch.sigmoid(beta * torch.einsum("qsbk,skb->qsb", w0, dr)).mean(0)
            probs = torch.where(known, probs, pop)
        return probs

    def _resolve(self, data: PreferenceData | None, user, item_a, item_b, items):
        if data is not None:
            return (
                self.user_index(data.user_ids[data.user]),
                data.items[data.item_a],
                data.items[data.item_b],
            )
        if items is None:
            if self.train is None:
                raise ValueError("items: got None; expected an item-embedding table")
            items = self.train.items
        items = np.asarray(items)
        ia, ib = np.asarray(item_a), np.asarray(item_b)
        for name, arr in (("item_a", ia), ("item_b", ib)):
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name}: got {arr.dtype} array of shape {arr.shape}; "
                                 "expected 1-d integer rows of items")
            if len(arr) and (arr.min() < 0 or arr.max() >= len(items)):
                raise ValueError(f"{name}: got row {arr.max()}; expected rows < {len(items)}")
        return self.user_index(np.asarray(user)), items[ia], items[ib]

    @torch.no_grad()
    def predict_proba(
        self,
        data: PreferenceData | None = None,
        *,
        user=None,
        item_a=None,
        item_b=None,
        items=None,
        num_samples: int = 200,
        seed: int | None = None,
        return_draws: bool = False,
    ) -> np.ndarray:
        """Posterior predictive ``P(a preferred over b)`` for each comparison.

        Give a :class:`PreferenceData` (users matched by id), or ``user`` ids with
        ``item_a``/``item_b`` as rows of ``items`` (default: the training item table).
        Averages ``sigmoid(logit)`` over posterior draws (not a plug-in of means). With
        ``return_draws`` the per-draw probabilities ``(S, N)`` are returned instead.
        """
        users, emb_a, emb_b = self._resolve(data, user, item_a, item_b, items)
        self._generator_seed(seed)
        out = []
        for s in range(0, len(users), CHUNK):
            ea = torch.as_tensor(np.asarray(emb_a[s : s + CHUNK])).to(self.device)
            eb = torch.as_tensor(np.asarray(emb_b[s : s + CHUNK])).to(self.device)
            p = self._pair_probs(users[s : s + CHUNK], ea, eb, num_samples)
            out.append(p if return_draws else p.mean(0))
        res = torch.cat(out, dim=-1)
        return res.cpu().numpy()

    def predict_population_proba(self, item_a, item_b, *, items=None, num_samples: int = 200,
                                 seed: int | None = None) -> np.ndarray:
        """``P(a preferred over b)`` for the population-average user: w integrated over the
        fitted population ``Dirichlet(alpha)`` (what a user not seen in training gets)."""
        n = len(np.asarray(item_a))
        return self.predict_proba(user=np.full(n, _NOBODY, dtype=object), item_a=item_a,
                                  item_b=item_b, items=items, num_samples=num_samples, seed=seed)

    # ------------------------------------------------------------------ summaries
    def user_weights(self, ci: float = 0.9) -> xr.Dataset:
        """Per-user mixture weights: posterior ``mean``, ``sd`` and the equal-tailed
        ``ci`` credible interval (``lower``, ``upper``), dims ``(user, prototype)``.

        For the Dirichlet variational posterior the marginals are Beta, so the
        intervals are exact quantiles of ``q``, not Monte Carlo. Under ``inference="map"``
        there is no uncertainty: ``sd`` is 0 and the interval collapses to the estimate.
        """
        if not 0 < ci < 1:
            raise ValueError(f"ci: got {ci!r}; expected a number in (0, 1)")
        with torch.no_grad():
            if self.config.k == 1 or self.guide.map:
                mean = self.guide.weights_mean().cpu().numpy().astype(np.float64)
                sd, lo, hi = np.zeros_like(mean), mean, mean
            else:
                conc = self.guide.weights_dist().concentration.cpu().numpy().astype(np.float64)
                total = conc.sum(-1, keepdims=True)
                mean = conc / total
                sd = np.sqrt(mean * (1 - mean) / (total + 1))
                a, b = conc, total - conc
                lo = stats.beta.ppf((1 - ci) / 2, a, b)
                hi = stats.beta.ppf((1 + ci) / 2, a, b)
        coords = {"user": self.user_ids, "prototype": np.arange(self.k)}
        dims = ("user", "prototype")
        return xr.Dataset(
            {
                "mean": (dims, mean),
                "sd": (dims, sd),
                "lower": (dims, lo),
                "upper": (dims, hi),
            },
            coords=coords,
            attrs={"ci": ci, "inference": self.config.inference},
        )

    @torch.no_grad()
    def prototype_rewards(
        self, embeddings: np.ndarray, num_samples: int = 200, seed: int | None = None
    ) -> xr.Dataset:
        """Each prototype's reward ``r_k(x) = 2 P_k . f(x) - ||f(x)||^2`` for items,
        posterior mean and sd over prototype draws, dims ``(prototype, item)``.

        Rewards are defined up to an additive constant per prototype; only differences
        between items are identifiable (and, times ``sharpness``, are logits)."""
        self._generator_seed(seed)
        feats = self.features(embeddings)
        r = prototype_rewards(self.guide.sample(num_samples)["prototypes"], feats)
        r = r.cpu().numpy()
        dims = ("prototype", "item")
        return xr.Dataset(
            {"mean": (dims, r.mean(0)), "sd": (dims, r.std(0))},
            coords={"prototype": np.arange(self.k), "item": np.arange(feats.shape[0])},
        )

    def sharpness(self) -> tuple[float, float]:
        """Posterior mean and sd of the sharpness ``beta``."""
        d = self.guide.sharpness_dist()
        with torch.no_grad():
            if self.guide.map:
                return float(d.v), 0.0
            return float(d.mean), float(d.variance.sqrt())

    def save(self, path, include_items: bool = True) -> None:
        """Write the fit to ``path`` atomically (safetensors + JSON; see :mod:`bayespal.io`)."""
        from bayespal.io import save

        save(self, path, include_items=include_items)

    def __repr__(self) -> str:
        return (
            f"FittedPAL(k={self.k}, inference={self.config.inference!r}, "
            f"users={len(self.user_ids)}, epochs={len(self.elbo_history)}, "
            f"final loss={self.elbo_history[-1]:.4f}/comparison)"
        )
