"""The self-tuning fit: an internal validation split of every user's comparisons, early
stopping and the learning-rate schedule driven by it, and the mapping's size chosen by it.

A point-estimated mapping is the part of PAL that over- or under-fits: a wide one memorises
the items of a small data set, a narrow one cannot follow a rich embedding. No rule from
the data's sizes tells the two apart (two data sets of the same sizes can want either), so
``tuned_train`` asks the data: it holds out ``validation_fraction`` of each user's
comparisons, fits each candidate size (``ModelConfig(hidden=None)``: ``AUTO_HIDDEN``)
with the validation log-loss monitored (the learning rate lowered on its plateaus, the best
epoch kept), and keeps the candidate with the lowest validation log-loss. What it chose,
and why, is a ``Selection``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayespal.data import PreferenceData
from bayespal.inference.config import TrainConfig
from bayespal.inference.train import Trained, refine_users, train
from bayespal.model import ModelConfig

AUTO_HIDDEN: tuple[tuple[int, ...], ...] = ((16,), (64,))
"""The mapping sizes a self-tuning fit compares (``ModelConfig(hidden=None)``)."""

MIN_VALIDATION = 200
"""Fewest held-out comparisons a validation split must have to steer a fit."""


COLUMNS = ("hidden", "validation_log_loss", "best_epoch", "epochs", "seconds", "stopped",
           "chosen")


@dataclass(frozen=True)
class Selection:
    """What a self-tuning fit chose and why.

    Attributes
    ----------
    candidates:
        One row per candidate: ``hidden``, ``validation_log_loss`` (its best epoch's; NaN
        without validation), ``best_epoch``, ``epochs`` run, ``seconds``, ``stopped`` (why
        it stopped) and ``chosen``.
    n_train, n_validation:
        Comparisons the fit was trained on and held out for validation.
    reason:
        One sentence: how the choice was made.
    """

    candidates: pd.DataFrame
    n_train: int
    n_validation: int
    reason: str

    @property
    def chosen(self) -> pd.Series:
        """The chosen candidate's row."""
        return self.candidates[self.candidates["chosen"]].iloc[0]

    def to_dict(self) -> dict:
        """JSON types (for model files)."""
        frame = self.candidates.copy()
        frame["hidden"] = [list(h) for h in frame["hidden"]]
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        return {"candidates": records, "n_train": self.n_train,
                "n_validation": self.n_validation, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> Selection:
        """The selection from ``to_dict``'s output.

        Parameters
        ----------
        d:
            As written by to_dict.
        """
        frame = pd.DataFrame(d["candidates"], columns=COLUMNS)
        frame["hidden"] = [tuple(int(x) for x in h) for h in frame["hidden"]]
        frame["validation_log_loss"] = frame["validation_log_loss"].astype(float)
        frame["chosen"] = frame["chosen"].astype(bool)
        return cls(frame, int(d["n_train"]), int(d["n_validation"]), str(d["reason"]))


def validation_split(data: PreferenceData, fraction: float, seed: int
                     ) -> tuple[PreferenceData, PreferenceData | None]:
    """Hold out about ``fraction`` of every user's answers: ``(train, validation)``.

    Each user holds out ``floor(n_i * fraction + u)`` of their ``n_i`` answers (``u ~ U(0,
    1)``: the expected share is exactly ``fraction`` for every ``n_i``; a ranking's choices
    stay together, ``PreferenceData.question``) and keeps at least one for training, so
    every user stays in the fit. ``validation`` is None when ``fraction`` is 0
    or fewer than ``MIN_VALIDATION`` answers would be held out.

    Parameters
    ----------
    data:
        The comparisons.
    fraction:
        The share to hold out, in [0, 0.5].
    seed:
        Seeds the choice.
    """
    if fraction == 0:
        return data, None
    rng = np.random.default_rng(seed)
    counts = data.answers_per_user()
    n_val = np.minimum(np.floor(counts * fraction + rng.random(data.n_users)), counts - 1)
    n_val = n_val.astype(np.int64)
    if n_val.sum() < MIN_VALIDATION:
        return data, None
    held = data.rank_within_users(rng) < n_val[data.user]
    return data.subset(~held), data.subset(held)


def candidates(config: ModelConfig) -> list[ModelConfig]:
    """The concrete configurations a fit of ``config`` compares (one if its sizes are given).

    Parameters
    ----------
    config:
        The requested configuration (``hidden=None``: choose).
    """
    if config.hidden is not None:
        return [config]
    return [replace(config, hidden=h) for h in AUTO_HIDDEN]


def _checkpoint_for(path: str | os.PathLike | None, i: int, own: bool) -> Path | None:
    """Candidate ``i``'s checkpoint: ``path`` itself when its state is the fit's (``own``),
    else ``<stem>.candidate<i><suffix>`` beside it."""
    if path is None:
        return None
    path = Path(path)
    return path if own else path.with_name(f"{path.stem}.candidate{i}{path.suffix}")


def tuned_train(data: PreferenceData, model_config: ModelConfig, train_config: TrainConfig, *,
                validation: PreferenceData | None = None,
                checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
                distributed: bool = False, progress: bool = True,
                callbacks: Sequence[Any] | None = None
                ) -> tuple[Trained, ModelConfig, Selection]:
    """Fit ``data`` as ``train`` does, with validation and the
    choice of sizes added: returns the chosen candidate's trained state, its concrete
    configuration and the ``Selection``.

    ``validation`` given: it steers every candidate. Otherwise
    ``train_config.validation_fraction`` of every user's comparisons are held out
    (``validation_split``) and, with ``train_config.refit``, the chosen candidate is
    refitted on all comparisons for as many epochs as its best epoch, replaying its
    learning-rate schedule. Without validation (fraction 0, or too little data)
    the training loss steers the schedule and, if sizes are to be chosen, the smallest
    candidate is taken (a warning says so unless validation was switched off).
    With ``checkpoint`` and several candidates, each candidate has its own file
    (``<stem>.candidate<i><suffix>``) and a refit uses ``checkpoint`` itself.

    Parameters
    ----------
    data:
        The training comparisons.
    model_config, train_config:
        What is fitted and how.
    validation, checkpoint, checkpoint_every, distributed, progress, callbacks:
        As for bayespal.fit (each candidate's run is named ``"hidden=<widths>"``, a refit
        ``"refit"``).
    """
    if not isinstance(data, PreferenceData):
        raise ValueError(f"data: got {type(data).__name__}; expected a PreferenceData")
    configs = candidates(model_config)
    fit_data, held = data, validation
    if held is None:
        fit_data, held = validation_split(data, train_config.validation_fraction,
                                          train_config.seed)
        if held is None and train_config.validation_fraction > 0:
            warnings.warn(
                f"validation_fraction: {train_config.validation_fraction} of "
                f"{int(data.answers_per_user().sum())} answers is fewer than {MIN_VALIDATION};"
                " the fit is not validated (the "
                "training loss steers it" + (", and the smallest mapping is taken)"
                                             if len(configs) > 1 else ")"),
                UserWarning, stacklevel=3)
    refit = held is not None and validation is None and train_config.refit
    rows, states = [], []
    for i, cfg in enumerate(configs):
        if held is None and i > 0:
            break  # nothing to compare candidates by: the smallest is taken
        state = train(fit_data, cfg, train_config, validation=held,
                      checkpoint=_checkpoint_for(checkpoint, i, len(configs) == 1 and not refit),
                      checkpoint_every=checkpoint_every, distributed=distributed,
                      progress=progress, callbacks=callbacks, run_name=f"hidden={cfg.hidden}",
                      refine=len(configs) == 1 and not refit)  # else: the kept one, below
        val, best_epoch = state.validation_history, state.best_epoch
        rows.append({"hidden": cfg.hidden,  # the kept epoch's validation log-loss
                     "validation_log_loss": float(val[best_epoch - 1]) if len(val) else math.nan,
                     "best_epoch": best_epoch if len(val) else len(state.loss_history),
                     "epochs": len(state.loss_history),
                     "seconds": float(state.epoch_seconds.sum()), "stopped": state.stopped})
        states.append(state)
    frame = pd.DataFrame(rows, columns=COLUMNS[:-1])
    best = int(np.nanargmin(frame["validation_log_loss"])) if held is not None else 0
    frame["chosen"] = np.arange(len(frame)) == best
    state = states[best]
    if refit:  # all comparisons, the chosen candidate's schedule up to its best epoch
        replay = state.lr_history[: int(frame["best_epoch"][best])].tolist()
        state = train(data, configs[best], train_config, checkpoint=checkpoint,
                      checkpoint_every=checkpoint_every, distributed=distributed,
                      progress=progress, replay=replay, callbacks=callbacks, run_name="refit")
    elif len(configs) > 1:
        refine_users(state, fit_data, train_config, distributed=distributed)
    if len(configs) == 1:
        reason = f"hidden={configs[0].hidden} as given"
    elif held is None:
        reason = (f"hidden={configs[0].hidden}: the smallest candidate, since there was no "
                  "validation split to compare candidates by")
    else:
        reason = (f"hidden={configs[best].hidden}: the lowest validation log-loss of "
                  f"{len(configs)} candidates")
    if held is not None:
        src = "given" if validation is not None else (
            f"{held.n_comparisons} comparisons ({train_config.validation_fraction:.0%} of each "
            "user's) held out")
        reason += f"; validation: {src}, " + (
            f"then refitted on all {data.n_comparisons} comparisons for the best epoch's "
            f"{len(state.loss_history)} epochs of its schedule" if refit
            else "best epoch kept")
    if state.local_epochs:
        reason += (f"; then each user's weights refined alone for {state.local_epochs} epochs "
                   f"({state.local_seconds:.1f} s)")
    selection = Selection(frame, data.n_comparisons if refit else fit_data.n_comparisons,
                          0 if held is None else held.n_comparisons, reason)
    return state, configs[best], selection
