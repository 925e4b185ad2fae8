"""The fitted result: posterior predictive, user-weight summaries, draws, rewards."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyro.distributions as dist
import torch
import torch.nn.functional as F
import xarray as xr
from scipy import stats

from bayespal.checks import check_int, check_seed, check_table
from bayespal.data import PreferenceData
from bayespal.models.ideal_point import (
    IdealPointGuide,
    IdealPointModel,
    PALConfig,
    mixture_logits,
    prototype_rewards,
)
from bayespal.models.prompted import prompt_prototypes
from bayespal.rng import keeps_global_rng

CHUNK = 4096  # comparisons per chunk in predictions (bounds memory at S x K x CHUNK)
UNKNOWN_USER_DRAWS = 16  # prior draws of w per posterior draw for users not in training
_NOBODY = object()  # a user id no fit can contain


@dataclass(eq=False)
class FittedPAL:
    """A fitted PAL-A or PAL-B posterior (returned by :func:`bayespal.fit`).

    PAL-B fits need each comparison's prompt wherever comparisons are given: in the
    :class:`PreferenceData`, or as ``prompt`` rows of a ``prompts`` table (default: the
    training prompt table).

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
    def embed_dim(self) -> int:
        """The width of the item embeddings the model was fitted on."""
        return self.model.embed_dim

    @property
    def prompt_embed_dim(self) -> int | None:
        """PAL-B: the width of the prompt embeddings; None for PAL-A."""
        return self.model.prompt_embed_dim

    @property
    def concentration(self) -> np.ndarray:
        """The population's Dirichlet concentration ``alpha`` (fitted or fixed)."""
        return self.model.concentration.detach().cpu().numpy()

    def user_index(self, ids: np.ndarray) -> np.ndarray:
        """Positions of user ids in this fit's user table; -1 for users not seen."""
        return self._user_index.get_indexer(np.asarray(ids))

    # ------------------------------------------------------------------ draws
    def _generator_seed(self, seed: int | None) -> None:
        torch.manual_seed(self.seed if seed is None else check_seed(seed))

    @torch.no_grad()
    def features(self, embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``f(x)`` for item embeddings, shape ``(M, pref_dim)`` on the fit's device."""
        return self.model.mapping(self._tensor(embeddings))

    @property
    def prompted(self) -> bool:
        """PAL-B: prototypes depend on the prompt."""
        return self.config.prompted

    @torch.no_grad()
    def prompt_features(self, embeddings) -> torch.Tensor | None:
        """PAL-B's prompt features ``phi(c)`` ``(C, prompt_dim)``; None for PAL-A."""
        if not self.prompted:
            return None
        return self.model.prompt_features(self._tensor(embeddings))

    def _tensor(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(self.device)

    @torch.no_grad()
    def _terms(self, draws: dict, emb_a, emb_b, emb_c=None):
        """``(diff, gram)`` of :func:`~bayespal.models.ideal_point.pair_terms` for comparisons
        given by their item (and, PAL-B, prompt) embeddings."""
        fa, fb = self.features(emb_a), self.features(emb_b)
        pc = None if emb_c is None else self.prompt_features(emb_c)
        return self.model.terms(draws, fa, fb, pc)

    @keeps_global_rng
    @torch.no_grad()
    def sample_posterior(self, num_samples: int = 500, seed: int | None = None) -> dict:
        """Draws from the (variational) posterior as numpy arrays: ``prototypes (S, K, d)``,
        ``sharpness (S,)``, ``weights (S, U, K)`` and, PAL-B, ``loadings (S, K, d, q)``."""
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
        emb_c: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-draw ``P(a > b)`` for comparisons, ``(S, B)``. For users not seen in
        training (index -1) each draw's probability integrates w over the population
        ``Dirichlet(alpha)`` with ``UNKNOWN_USER_DRAWS`` draws."""
        draws = self.guide.sample(num_samples)
        diff, gram = self._terms(draws, emb_a, emb_b, emb_c)  # (S, B, K), (S, B|1, K, K)
        if self.k == 1:
            return torch.sigmoid(diff[..., 0])
        user_t = torch.as_tensor(user, device=self.device)
        known = user_t >= 0
        w = self.guide.weights_dist(user_t.clamp(min=0)).sample((num_samples,))  # (S, B, K)
        probs = torch.sigmoid(mixture_logits(w, diff, gram))
        if bool((~known).any()):
            prior = dist.Dirichlet(self.model.concentration)
            w0 = prior.sample((UNKNOWN_USER_DRAWS, num_samples, len(user)))  # (Q, S, B, K)
            pop = torch.sigmoid(mixture_logits(w0, diff, gram)).mean(0)
            probs = torch.where(known, probs, pop)
        return probs

    def _resolve(self, data: PreferenceData | None, user, item_a, item_b, items,
                 prompt=None, prompts=None):
        """``(user positions, emb_a, emb_b, emb_c)``; ``emb_c`` is None for PAL-A."""
        if data is not None:
            if not isinstance(data, PreferenceData):
                raise ValueError(f"data: got {type(data).__name__}; expected PreferenceData")
            check_table("data.items", data.items[:1], self.embed_dim, "items")
            emb_c = None
            if self.prompted:
                if data.prompt is None:
                    raise ValueError("data: got comparisons without prompts; expected "
                                     "prompts (this is a PAL-B fit)")
                emb_c = data.prompts[data.prompt]
            return (
                self.user_index(data.user_ids[data.user]),
                data.items[data.item_a],
                data.items[data.item_b],
                emb_c,
            )
        # a table given here is checked; the training tables were checked by PreferenceData
        items = (self._table(None, "items", "items") if items is None
                 else check_table("items", items, self.embed_dim, "items"))
        ia = _rows("item_a", item_a, len(items))
        ib = _rows("item_b", item_b, len(items))
        if len(ia) != len(ib):
            raise ValueError(f"item_b: got length {len(ib)}; expected {len(ia)}, the length "
                             "of item_a")
        users = np.asarray(user, dtype=object).reshape(-1) if user is not None else None
        if users is None or len(users) != len(ia):
            raise ValueError(f"user: got {0 if users is None else len(users)} ids; expected "
                             f"{len(ia)}, one per comparison")
        emb_c = None
        if self.prompted:
            if prompt is None:
                raise ValueError("prompt: got None; expected prompt rows (this is a PAL-B fit)")
            prompts = (self._table(None, "prompts", "prompts") if prompts is None
                       else check_table("prompts", prompts, self.prompt_embed_dim, "prompts"))
            emb_c = prompts[_rows("prompt", prompt, len(prompts))]
            if len(emb_c) != len(ia):
                raise ValueError(f"prompt: got length {len(emb_c)}; expected {len(ia)}, one "
                                 "per comparison")
        return self.user_index(users), items[ia], items[ib], emb_c

    def _table(self, table, name: str, attr: str) -> np.ndarray:
        if table is None:
            table = None if self.train is None else getattr(self.train, attr)
            if table is None:
                raise ValueError(f"{name}: got None; expected an embedding table")
        return np.asarray(table)

    @keeps_global_rng
    @torch.no_grad()
    def predict_proba(
        self,
        data: PreferenceData | None = None,
        *,
        user=None,
        item_a=None,
        item_b=None,
        items=None,
        prompt=None,
        prompts=None,
        num_samples: int = 200,
        seed: int | None = None,
        return_draws: bool = False,
    ) -> np.ndarray:
        """Posterior predictive ``P(a preferred over b)`` for each comparison.

        Give a :class:`PreferenceData` (users matched by id), or ``user`` ids with
        ``item_a``/``item_b`` as rows of ``items`` (default: the training item table) and,
        for PAL-B, ``prompt`` rows of ``prompts`` (default: the training prompt table).
        Averages ``sigmoid(logit)`` over posterior draws (not a plug-in of means). With
        ``return_draws`` the per-draw probabilities ``(S, N)`` are returned instead.
        """
        num_samples = check_int("num_samples", num_samples)
        users, emb_a, emb_b, emb_c = self._resolve(data, user, item_a, item_b, items, prompt,
                                                   prompts)
        self._generator_seed(seed)
        out = []
        for s in range(0, len(users), CHUNK):
            ea = self._tensor(emb_a[s : s + CHUNK])
            eb = self._tensor(emb_b[s : s + CHUNK])
            ec = None if emb_c is None else self._tensor(emb_c[s : s + CHUNK])
            p = self._pair_probs(users[s : s + CHUNK], ea, eb, num_samples, ec)
            out.append(p if return_draws else p.mean(0))
        res = torch.cat(out, dim=-1)
        return res.cpu().numpy()

    def predict_population_proba(self, item_a, item_b, *, items=None, prompt=None,
                                 prompts=None, num_samples: int = 200,
                                 seed: int | None = None) -> np.ndarray:
        """``P(a preferred over b)`` for the population-average user: w integrated over the
        fitted population ``Dirichlet(alpha)`` (what a user not seen in training gets)."""
        n = len(np.asarray(item_a))
        return self.predict_proba(user=np.full(n, _NOBODY, dtype=object), item_a=item_a,
                                  item_b=item_b, items=items, prompt=prompt, prompts=prompts,
                                  num_samples=num_samples, seed=seed)

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

    @keeps_global_rng
    @torch.no_grad()
    def prototype_rewards(
        self, embeddings: np.ndarray, num_samples: int = 200, seed: int | None = None,
        prompt_embedding: np.ndarray | None = None,
    ) -> xr.Dataset:
        """Each prototype's reward ``r_k(x) = 2 P_k . f(x) - ||f(x)||^2`` for items,
        posterior mean and sd over prototype draws, dims ``(prototype, item)``.

        PAL-B: for the prompt ``prompt_embedding (Dc,)``, ``r_k(x | c)`` with the prompt's
        prototypes ``g_k(c)`` (score ``"cosine"``: ``cos(f(x), g_k(c))``, what a user made
        of prototype k alone scores).

        Rewards are defined up to an additive constant per prototype; only differences
        between items are identifiable (and, times ``sharpness``, are logits)."""
        num_samples = check_int("num_samples", num_samples)
        embeddings = check_table("embeddings", embeddings, self.embed_dim, "items")
        if self.prompted and prompt_embedding is not None:
            prompt_embedding = check_table("prompt_embedding",
                                           np.asarray(prompt_embedding).reshape(1, -1),
                                           self.prompt_embed_dim, "prompts")
        self._generator_seed(seed)
        feats = self.features(embeddings)
        draws = self.guide.sample(num_samples)
        protos = draws["prototypes"]
        if self.prompted:
            if prompt_embedding is None:
                raise ValueError("prompt_embedding: got None; expected the embedding of the "
                                 "prompt the rewards are for (this is a PAL-B fit)")
            pc = self.prompt_features(np.asarray(prompt_embedding).reshape(1, -1))
            protos = prompt_prototypes(protos, draws["loadings"], pc)[:, 0]  # (S, K, d)
        if self.config.score == "cosine":
            r = F.normalize(protos, dim=-1) @ F.normalize(feats, dim=-1).T
        else:
            r = prototype_rewards(protos, feats)
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


def _rows(name: str, rows, n: int) -> np.ndarray:
    arr = np.asarray(rows)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: got {arr.dtype} array of shape {arr.shape}; "
                         "expected 1-d integer rows of the table")
    if len(arr) and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise ValueError(f"{name}: got row {bad}; expected rows in [0, {n})")
    return arr
