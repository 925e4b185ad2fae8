"""One fitted posterior (SVI or MAP, PAL-A or PAL-B): ``FittedPAL``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from bayespal.data import EmbeddingTable, PreferenceData
from bayespal.inference import PALGuide, Selection, TrainConfig
from bayespal.model import ModelConfig, PALModel, PopulationDraws
from bayespal.posterior import io
from bayespal.posterior.base import Posterior


@dataclass(eq=False, repr=False)
class FittedPAL(Posterior):
    """A fitted PAL posterior, returned by ``bayespal.fit`` (or ``bayespal.load``).

    Attributes
    ----------
    model_config, train_config:
        What was modelled and how it was fitted.
    user_ids:
        The training users' ids (the rows of ``user_weights``).
    items, prompts:
        The training item (and PAL-B prompt) tables: ids and embeddings. Present after
        ``bayespal.load`` when the file was saved with them.
    loss_history:
        Per epoch: the negative ELBO per comparison (MAP: the negative log posterior).
    epoch_seconds:
        Per epoch: wall time.
    validation_history:
        Per epoch: the held-out log-loss, when the fit was validated (else empty).
    training_data:
        The training comparisons; None after ``bayespal.load`` (analyses that need
        them then ask for data).
    embedding:
        The text-embedding configuration of the items, if known.
    selection:
        What the self-tuning fit chose and why (``Selection``;
        see ``summary``).
    k_selection:
        With ``bayespal.fit(data, k="auto")``: the evidence per K
        (``KSelection`` ``.table``); else None.
    """

    model_config: ModelConfig
    train_config: TrainConfig
    model: PALModel
    guide: PALGuide
    user_ids: np.ndarray
    items: EmbeddingTable | None
    loss_history: np.ndarray
    epoch_seconds: np.ndarray
    validation_history: np.ndarray
    prompts: EmbeddingTable | None = None
    training_data: PreferenceData | None = None
    embedding: dict | None = None
    selection: Selection | None = None
    k_selection: pd.DataFrame | None = None

    @property
    def seed(self) -> int:
        """The fit's seed (the default seed of its draws)."""
        return self.train_config.seed

    @property
    def device(self) -> torch.device:
        return self.guide.prototypes_loc.device

    @property
    def embed_dim(self) -> int:
        return self.model.embed_dim

    @property
    def prompt_embed_dim(self) -> int | None:
        return self.model.prompt_embed_dim

    def _prior_components(self) -> tuple[np.ndarray, np.ndarray]:
        log_prop, conc = self.model.prior_components()
        return log_prop.detach().exp().cpu().numpy(), conc.detach().cpu().numpy()

    def _population(self, num_samples: int, mode: str) -> PopulationDraws:
        return self.guide.population_draws(self.model, num_samples, mode)

    def _weight_draws(self, draws: PopulationDraws, users: torch.Tensor) -> torch.Tensor:
        return self.guide.weight_draws(draws.size, users.to(self.device))

    def _cutpoint_draws(self, draws: PopulationDraws, users: torch.Tensor
                        ) -> torch.Tensor | None:
        return self.guide.cutpoint_draws(draws.size, users.to(self.device))

    def user_weights(self, ci: float = 0.9) -> xr.Dataset:
        """Per-user mixture weights: posterior ``mean``, ``sd`` and the equal-tailed ``ci``
        credible interval (``lower``, ``upper``), dims ``(user, prototype)``.

        The Dirichlet variational posterior's marginals are Beta, so the intervals are exact
        quantiles of ``q``, not Monte Carlo. MAP has no uncertainty: ``sd`` is 0 and the
        interval collapses to the estimate.

        Parameters
        ----------
        ci:
            The interval's probability, in (0, 1).
        """
        if not 0 < ci < 1:
            raise ValueError(f"ci: got {ci!r}; expected a number in (0, 1)")
        mean, sd, lo, hi = self.guide.weight_summary(ci)
        dims = ("user", "prototype")
        return xr.Dataset(
            {"mean": (dims, mean), "sd": (dims, sd), "lower": (dims, lo), "upper": (dims, hi)},
            coords={"user": self.user_ids, "prototype": np.arange(self.k)},
            attrs={"ci": ci, "inference": self.train_config.inference},
        )

    def weight_concentration(self, users) -> np.ndarray | None:
        """The Dirichlet ``q`` of users' weights, ``(n, K)``; None for MAP or K = 1.

        Parameters
        ----------
        users:
            Ids of users seen in training.
        """
        conc = self.guide.weight_concentration()
        if conc is None:
            return None
        pos = self.user_index(users)
        if (pos < 0).any():
            raise ValueError(f"users: got {np.asarray(users).reshape(-1)[pos < 0][0]!r}; "
                             "expected users seen in training")
        return conc[pos]

    def sharpness(self) -> tuple[float, float]:
        return self.guide.sharpness_moments()

    def permute_prototypes(self, perm) -> None:
        """Reorder the prototypes in place: new prototype ``j`` is old ``perm[j]`` (with
        their loadings, every user's weights and the population concentration).

        Parameters
        ----------
        perm:
            A permutation of ``range(k)``.
        """
        perm_t = torch.as_tensor(np.asarray(perm), dtype=torch.long, device=self.device)
        if sorted(perm_t.tolist()) != list(range(self.k)):
            raise ValueError(f"perm: got {list(perm)}; expected a permutation of range({self.k})")
        self.guide.permute(self.model, perm_t)

    def save(self, path, include_items: bool = True) -> None:
        """Write the fit to ``path`` atomically: one safetensors file with JSON metadata
        (see ``bayespal.posterior.io``).

        Parameters
        ----------
        path:
            The file to write (replaced atomically; a failure names it and leaves no
            temporary behind).
        include_items:
            Store the item (and prompt) tables too, so the loaded fit can predict, place
            new users and suggest queries without them.
        """
        io.write_model(path, model_config=self.model_config, train_config=self.train_config,
                       model=self.model, guide=self.guide, user_ids=self.user_ids,
                       items=self.items if include_items else None,
                       prompts=self.prompts if include_items else None,
                       item_ids=self.item_ids,
                       histories={"loss_history": self.loss_history,
                                  "epoch_seconds": self.epoch_seconds,
                                  "validation_history": self.validation_history},
                       embedding=self.embedding,
                       selection=None if self.selection is None else self.selection.to_dict(),
                       k_selection=self.k_selection)

    def summary(self) -> str:
        """What was fitted, what the self-tuning fit chose and why, and how training ended.

        Returns
        -------
        str
            A few lines of text: the model, the data sizes, the validation split, one line per
            candidate mapping (validation log-loss, best epoch, epochs, seconds, why it stopped)
            and the sharpness.
        """
        cfg, tc = self.model_config, self.train_config
        lines = [f"{cfg.name}, k={cfg.k}, pref_dim={cfg.pref_dim}, hidden={cfg.hidden}, "
                 f"{tc.inference.upper()}; {len(self.user_ids)} users, "
                 f"{self.model.n_comparisons} comparisons trained on"]
        sel = self.selection
        if sel is not None:
            lines.append(f"chosen: {sel.reason}")
            table = sel.candidates.copy()
            table["hidden"] = table["hidden"].map(str)
            lines.append(table.round(4).to_string(index=False))
        if self.k_selection is not None:
            ks = self.k_selection.drop(columns=["weight_share"])
            lines.append("k chosen from the data (select_k):\n" + ks.round(4).to_string(index=False))
        stop = "" if sel is None else f", stopped: {sel.chosen['stopped']}"
        lines.append(f"schedule: lr {tc.lr:g} ({tc.lr_schedule}), {len(self.loss_history)} "
                     f"epochs{stop}")
        mean, sd = self.sharpness()
        lines.append(f"sharpness: {mean:.3g} (sd {sd:.2g}); final training loss "
                     f"{self.loss_history[-1]:.4f}/comparison")
        return "\n".join(lines)

    def __repr__(self) -> str:
        last = f"{self.loss_history[-1]:.4f}" if len(self.loss_history) else "n/a"
        return (f"FittedPAL({self.model_config.name}, k={self.k}, "
                f"inference={self.train_config.inference!r}, users={len(self.user_ids)}, "
                f"epochs={len(self.loss_history)}, final loss={last}/comparison,\n"
                f"  model={self.model_config},\n  train={self.train_config})")


def load(path, device: str = "cpu") -> FittedPAL:
    """Read a model written by ``FittedPAL.save`` (files of format 1, written before
    0.2, load too).

    Parameters
    ----------
    path:
        The model file. It is never unpickled and runs no code; every size in it is checked
        against its tensors before anything is allocated.
    device:
        Where the loaded model lives (``"cpu"``, ``"cuda[:N]"`` or ``"auto"``).
    """
    parts = io.read_model(path, device)
    return FittedPAL(**parts)
