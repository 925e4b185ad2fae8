"""Deep ensembles: several fits from different seeds, one posterior.

The mapping ``f`` (and PAL-B's prompt map) is a point estimate, so one fit ignores how
uncertain it is, and different seeds land on different, equally good mappings. An
ensemble of ``M`` fits treats the posterior as the equal mixture of the members'
variational posteriors: its population draws are the members' draws pooled, each with
its own member's maps, so predictions average over the mappings (Bayesian model
averaging), and so do new users, queries, rewards and diagnostics (one chain per member).
Members' prototypes are aligned to the first member's (label switching), matched by the
users' weights, which all members share.

``bayespal.fit(data, ..., ensemble=M)`` fits one (member ``m`` with seed ``seed + m``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from bayespal.model import PopulationDraws
from bayespal.model.matching import match_prototypes
from bayespal.posterior.base import Posterior
from bayespal.posterior.fitted import FittedPAL


def match_by_users(reference: FittedPAL, other: FittedPAL) -> np.ndarray:
    """``perm`` with ``other``'s prototype ``perm[j]`` matching ``reference``'s ``j``, by the
    users' posterior-mean weights (``match_prototypes``).

    Parameters
    ----------
    reference, other:
        Fits of the same users.
    """
    return match_prototypes(reference.user_weights()["mean"].values.T,
                            other.user_weights()["mean"].values.T)


# what every member shares, read from the first
_SHARED = ("model_config", "train_config", "user_ids", "items", "prompts", "training_data",
           "embedding", "seed", "device")


@dataclass(eq=False, repr=False)
class EnsemblePAL(Posterior):
    """An equal mixture of fits of one model to one data set (see the module docstring).

    Attributes
    ----------
    members:
        The member fits (prototypes aligned to the first's).
    k_selection:
        With ``bayespal.fit(data, k="auto", ensemble=M)``: the evidence per K; else None.
    """

    members: list[FittedPAL]
    k_selection: pd.DataFrame | None = None

    @classmethod
    def from_members(cls, members: Sequence[FittedPAL]) -> EnsemblePAL:
        """Align the members' prototypes to the first's (in place) and wrap them.

        Parameters
        ----------
        members:
            Fits of one configuration to one data set (same users).
        """
        members = list(members)
        if not members:
            raise ValueError("members: got none; expected at least one fit")
        first = members[0]
        for i, fit in enumerate(members[1:], 1):
            if (fit.model_config != first.model_config
                    or not np.array_equal(fit.user_ids, first.user_ids)):
                raise ValueError(f"members[{i}]: got a fit of another configuration or other "
                                 "users; expected fits of one model to one data set")
            if fit.k > 1:
                fit.permute_prototypes(match_by_users(first, fit))
        return cls(members)

    # -- what every member shares ----------------------------------------------------
    def __getattr__(self, name: str):
        if name in _SHARED and "members" in self.__dict__:
            return getattr(self.members[0], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def embed_dim(self) -> int:
        return self.members[0].embed_dim

    @property
    def prompt_embed_dim(self) -> int | None:
        return self.members[0].prompt_embed_dim

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def loss_history(self) -> list[np.ndarray]:
        """Each member's loss (negative ELBO per comparison), by epoch."""
        return [m.loss_history for m in self.members]

    def _prior_components(self) -> tuple[np.ndarray, np.ndarray]:
        """The members' (aligned) priors pooled: each member's components, its proportions
        divided by the number of members (the prior of a user drawn from the pooled
        population draws)."""
        parts = [m._prior_components() for m in self.members]
        return (np.concatenate([p for p, _ in parts]) / len(parts),
                np.concatenate([c for _, c in parts]))

    # -- draws -------------------------------------------------------------------------
    def _population(self, num_samples: int, mode: str) -> PopulationDraws:
        per_member = max(1, num_samples // len(self.members))
        return PopulationDraws.pool([m._population(per_member, mode) for m in self.members])

    def _weight_draws(self, draws: PopulationDraws, users: torch.Tensor) -> torch.Tensor:
        sizes = torch.bincount(draws.member.cpu(), minlength=len(self.members)).tolist()
        return torch.cat([m.guide.weight_draws(s, users.to(m.device)).expand(s, -1, -1)
                          for m, s in zip(self.members, sizes, strict=True)])

    def _cutpoint_draws(self, draws: PopulationDraws, users: torch.Tensor
                        ) -> torch.Tensor | None:
        if not draws.has_user_cutpoints:
            return None
        sizes = torch.bincount(draws.member.cpu(), minlength=len(self.members)).tolist()
        return torch.cat([m.guide.cutpoint_draws(s, users.to(m.device))
                          for m, s in zip(self.members, sizes, strict=True)])

    # -- summaries ---------------------------------------------------------------------
    def user_weights(self, ci: float = 0.9, num_samples: int = 1000, seed: int | None = None
                     ) -> xr.Dataset:
        """Per-user weights under the mixture: ``mean``, ``sd`` and the equal-tailed ``ci``
        interval (``lower``, ``upper``) of ``num_samples`` pooled draws per member.

        Parameters
        ----------
        ci:
            The interval's probability, in (0, 1).
        num_samples, seed:
            Draws per member and their seed (default: the fit's); torch's state is kept.
        """
        if not 0 < ci < 1:
            raise ValueError(f"ci: got {ci!r}; expected a number in (0, 1)")
        w = self.sample_posterior(num_samples * len(self.members), seed)["weights"]
        w = w.astype(np.float64)
        lo, hi = np.quantile(w, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        dims = ("user", "prototype")
        return xr.Dataset(
            {"mean": (dims, w.mean(0)), "sd": (dims, w.std(0)), "lower": (dims, lo),
             "upper": (dims, hi)},
            coords={"user": self.user_ids, "prototype": np.arange(self.k)},
            attrs={"ci": ci, "inference": self.train_config.inference,
                   "members": len(self.members)},
        )

    def sharpness(self) -> tuple[float, float]:
        """Mean and sd of the sharpness under the mixture of the members' posteriors."""
        moments = [m.sharpness() for m in self.members]
        mean = float(np.mean([mu for mu, _ in moments]))
        second = float(np.mean([sd**2 + mu**2 for mu, sd in moments]))
        return mean, float(np.sqrt(max(second - mean**2, 0.0)))

    def __repr__(self) -> str:
        return (f"EnsemblePAL(members={len(self.members)}, {self.model_config.name}, "
                f"k={self.k}, inference={self.train_config.inference!r}, "
                f"users={len(self.user_ids)})")
