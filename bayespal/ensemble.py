"""Deep ensembles: several fits from different seeds, averaged as one posterior.

The mapping ``f`` (and PAL-B's prompt map) is a point estimate, so one fit ignores how
uncertain it is, and different seeds land on different, equally good mappings. An
ensemble of ``M`` fits treats the posterior as the equal mixture of the members'
variational posteriors: predictions are the members' posterior predictives averaged
(Bayesian model averaging over the mappings), user weights are summarised over the
pooled draws. Members' prototypes are aligned to the first member's (label switching,
:func:`~bayespal.diagnostics.align_prototypes`) and permuted in place, so prototype ``k``
means the same in every member (matched by the users' weights, which all members share).

``bayespal.fit(data, ..., ensemble=M)`` fits one (member ``m`` with seed ``seed + m``).
On the synthetic benchmark three members take another 0.4 accuracy points over one fit
(``docs/results.md``). New users (:mod:`bayespal.newuser`) and queries pool the members'
population draws, each with its own mapping. The reference's point placement, reward
export, saving and the heterogeneity check need one population: use a member
(``ens.members[i]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayespal.posterior import FittedPAL
from bayespal.rng import keeps_global_rng


def permute_prototypes(fit: FittedPAL, perm: Sequence[int]) -> None:
    """Reorder ``fit``'s prototypes in place: new prototype ``j`` is old prototype
    ``perm[j]`` (prototypes, their loadings, every user's weights and ``alpha``)."""
    perm_t = torch.as_tensor(np.asarray(perm), dtype=torch.long, device=fit.device)
    if sorted(perm_t.tolist()) != list(range(fit.k)):
        raise ValueError(f"perm: got {list(perm)}; expected a permutation of range({fit.k})")
    g, m = fit.guide, fit.model
    with torch.no_grad():
        for name in ("prototypes_loc", "prototypes_raw_scale", "loadings_loc",
                     "loadings_raw_scale"):
            if hasattr(g, name):
                getattr(g, name).copy_(getattr(g, name)[perm_t])
        for name in ("weights_logits", "weights_raw_concentration"):
            if hasattr(g, name):
                getattr(g, name).copy_(getattr(g, name)[:, perm_t])
        m.log_concentration.copy_(m.log_concentration[perm_t])


def _match_by_users(reference: FittedPAL, other: FittedPAL) -> np.ndarray:
    """``perm`` with ``other``'s prototype ``perm[j]`` matching ``reference``'s ``j``."""
    a = reference.user_weights()["mean"].values
    b = other.user_weights()["mean"].values
    a, b = a - a.mean(0), b - b.mean(0)
    corr = (a / np.linalg.norm(a, axis=0).clip(1e-12)).T @ (b / np.linalg.norm(b, axis=0)
                                                            .clip(1e-12))
    rows, cols = linear_sum_assignment(-corr)
    perm = np.empty(reference.k, dtype=np.int64)
    perm[rows] = cols
    return perm


@dataclass(eq=False)
class EnsemblePAL:
    """An equal mixture of fits of one model to one data set (see the module docstring).

    Offers the :class:`~bayespal.posterior.FittedPAL` summaries that average over the
    members: ``predict_proba``, ``predict_population_proba``, ``user_weights``,
    ``prototype_rewards``, ``sharpness``; :func:`bayespal.diagnostics.to_datatree` and
    ``loo`` take it too (one chain per member)."""

    members: list[FittedPAL]

    @classmethod
    def from_members(cls, members: Sequence[FittedPAL]) -> EnsemblePAL:
        """Align the members' prototypes to the first's and wrap them. Members share their
        users, so prototypes are matched by the users' weights (an optimal assignment on
        the correlation of posterior-mean weights over users)."""
        members = list(members)
        if not members:
            raise ValueError("members: got none; expected at least one fit")
        first = members[0]
        for i, fit in enumerate(members[1:], 1):
            if fit.config != first.config or not np.array_equal(fit.user_ids, first.user_ids):
                raise ValueError(f"members[{i}]: got a fit of another configuration or other "
                                 "users; expected fits of one model to one data set")
            if fit.k > 1:
                permute_prototypes(fit, _match_by_users(first, fit))
        return cls(members)

    # -- what every member shares ----------------------------------------------------
    @property
    def config(self):
        return self.members[0].config

    @property
    def k(self) -> int:
        return self.members[0].k

    @property
    def prompted(self) -> bool:
        return self.members[0].prompted

    @property
    def embed_dim(self) -> int:
        return self.members[0].embed_dim

    @property
    def prompt_embed_dim(self) -> int | None:
        return self.members[0].prompt_embed_dim

    @property
    def user_ids(self) -> np.ndarray:
        return self.members[0].user_ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.members[0].item_ids

    @property
    def train(self):
        return self.members[0].train

    @property
    def seed(self) -> int:
        return self.members[0].seed

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    @property
    def elbo_history(self) -> list[np.ndarray]:
        """Each member's -ELBO per comparison, by epoch."""
        return [m.elbo_history for m in self.members]

    @property
    def concentration(self) -> np.ndarray:
        """The members' (aligned) population concentrations, averaged."""
        return np.mean([m.concentration for m in self.members], axis=0)

    def user_index(self, ids: np.ndarray) -> np.ndarray:
        return self.members[0].user_index(ids)

    # -- predictions -------------------------------------------------------------------
    def predict_proba(self, data=None, *, return_draws: bool = False, **kwargs) -> np.ndarray:
        """The mixture's posterior predictive: the members' ``predict_proba`` averaged
        (arguments as :meth:`FittedPAL.predict_proba`; draws are concatenated)."""
        out = [m.predict_proba(data, return_draws=return_draws, **kwargs) for m in self.members]
        return np.concatenate(out, 0) if return_draws else np.mean(out, 0)

    def predict_population_proba(self, item_a, item_b, **kwargs) -> np.ndarray:
        return np.mean([m.predict_population_proba(item_a, item_b, **kwargs)
                        for m in self.members], 0)

    # -- summaries ---------------------------------------------------------------------
    @keeps_global_rng
    def user_weights(self, ci: float = 0.9, num_samples: int = 1000, seed: int | None = None
                     ) -> xr.Dataset:
        """Per-user weights under the mixture: ``mean``, ``sd`` and the equal-tailed ``ci``
        interval (``lower``, ``upper``) of ``num_samples`` pooled draws per member."""
        if not 0 < ci < 1:
            raise ValueError(f"ci: got {ci!r}; expected a number in (0, 1)")
        if self.k == 1:
            return self.members[0].user_weights(ci)
        torch.manual_seed(self.seed if seed is None else seed)
        with torch.no_grad():
            draws = torch.cat([m.guide.weights_dist().sample((num_samples,)) if not m.guide.map
                               else m.guide.weights_mean()[None] for m in self.members])
        w = draws.double().cpu().numpy()  # (S, U, K)
        lo, hi = np.quantile(w, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        dims = ("user", "prototype")
        return xr.Dataset(
            {"mean": (dims, w.mean(0)), "sd": (dims, w.std(0)), "lower": (dims, lo),
             "upper": (dims, hi)},
            coords={"user": self.user_ids, "prototype": np.arange(self.k)},
            attrs={"ci": ci, "inference": self.config.inference, "members": len(self.members)},
        )

    def prototype_rewards(self, embeddings: np.ndarray, num_samples: int = 200,
                          seed: int | None = None, prompt_embedding=None) -> xr.Dataset:
        """Each prototype's reward under the mixture: mean and sd over the members' draws."""
        parts = [m.prototype_rewards(embeddings, num_samples, seed, prompt_embedding)
                 for m in self.members]
        mean = sum(p["mean"] for p in parts) / len(parts)
        second = sum(p["sd"] ** 2 + p["mean"] ** 2 for p in parts) / len(parts)
        return xr.Dataset({"mean": mean, "sd": np.sqrt(np.maximum(second - mean**2, 0))})

    def sharpness(self) -> tuple[float, float]:
        """Mean and sd of the sharpness under the mixture of the members' posteriors."""
        moments = [m.sharpness() for m in self.members]
        mean = float(np.mean([mu for mu, _ in moments]))
        second = float(np.mean([sd**2 + mu**2 for mu, sd in moments]))
        return mean, float(np.sqrt(max(second - mean**2, 0.0)))

    def __repr__(self) -> str:
        return (f"EnsemblePAL(members={len(self.members)}, k={self.k}, "
                f"inference={self.config.inference!r}, users={len(self.user_ids)})")
