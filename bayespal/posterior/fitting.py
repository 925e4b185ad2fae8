"""``bayespal.fit``: the one function that knows which result type a fit returns."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

from bayespal.data import PreferenceData
from bayespal.inference import TrainConfig, tuned_train
from bayespal.model import ModelConfig
from bayespal.posterior.base import Posterior
from bayespal.posterior.ensemble import EnsemblePAL
from bayespal.posterior.fitted import FittedPAL

_MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig))
_TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))


def configs(k: int | None = None, model: ModelConfig | None = None,
            train: TrainConfig | None = None, **options) -> tuple[ModelConfig, TrainConfig]:
    """The two configurations from configuration objects and/or their fields as keywords.

    A keyword may not repeat a field of a configuration object given too (one source for
    each setting); unknown keywords are an error that lists the valid ones.

    Parameters
    ----------
    k:
        Shorthand for the ``k`` field.
    model, train:
        Configuration objects (None: built from the keywords and the defaults).
    **options:
        Fields of either configuration.
    """
    if model is not None and not isinstance(model, ModelConfig):
        raise ValueError(f"model: got {type(model).__name__}; expected a ModelConfig or None")
    if train is not None and not isinstance(train, TrainConfig):
        raise ValueError(f"train: got {type(train).__name__}; expected a TrainConfig or None")
    if k is not None:
        options["k"] = k
    unknown = sorted(set(options) - set(_MODEL_FIELDS) - set(_TRAIN_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: got an unknown setting; expected a field of ModelConfig "
                         f"{_MODEL_FIELDS} or TrainConfig {_TRAIN_FIELDS}")
    model_opts = {n: v for n, v in options.items() if n in _MODEL_FIELDS}
    train_opts = {n: v for n, v in options.items() if n in _TRAIN_FIELDS}
    for cfg, opts, name in ((model, model_opts, "model"), (train, train_opts, "train")):
        if cfg is not None and opts:
            first = sorted(opts)[0]
            raise ValueError(f"{first}: got both {name}= and {first}=; expected the setting in "
                             f"one place (use dataclasses.replace({name}, {first}=...))")
    model_config = model if model is not None else ModelConfig(**model_opts)
    train_config = train if train is not None else TrainConfig(**train_opts)
    if model_config.item_effects and train_config.inference != "svi":
        raise ValueError(f"item_effects: got True with inference={train_config.inference!r}; "
                         "expected inference='svi' (a point estimate of the effects, with "
                         "their scale learned, collapses to zero scale)")
    return model_config, train_config


def fit(data: PreferenceData, k: int | None = None, *, model: ModelConfig | None = None,
        train: TrainConfig | None = None, ensemble: int = 1,
        validation: PreferenceData | None = None, checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1, distributed: bool = False, progress: bool = True,
        callbacks: Sequence[Any] | None = None, **options) -> Posterior:
    """Fit PAL to preference data and return its posterior.

    The model (``ModelConfig``: K prototypes in a ``pref_dim``-dimensional
    preference space reached by an MLP over the item embeddings, Dirichlet user weights,
    PAL-A or, with ``prompt_dim``, prompt-conditioned PAL-B) is fitted
    (``TrainConfig``) by minibatched stochastic variational inference: the
    ELBO of a mean-field posterior over prototypes, loadings, sharpness and every user's
    weights, with the maps (and the learned population prior of the weights) as point
    estimates, optimised by AdamW; ``inference="map"`` gives point estimates everywhere
    instead (the reference PAL).

    By default the fit tunes itself (``bayespal.inference.tuning``): 10% of every user's
    comparisons are held out, their log-loss lowers the learning rate on each plateau
    and stops the fit, it chooses the mapping's size among candidates (``hidden=None``),
    and the best epoch of the chosen one is kept (``refit=True`` refits it on all
    comparisons for that many epochs instead). ``fit.summary()`` says what was chosen and
    why; any setting given explicitly is used as given.

    Parameters
    ----------
    data:
        The training comparisons.
    k:
        The number of prototypes (shorthand for ``ModelConfig(k=...)``).
    model, train:
        The configurations; any of their fields may be given as keywords instead
        (``fit(data, 3, pref_dim=8, epochs=50)``), but not both for one setting.
    ensemble:
        ``M > 1`` fits ``M`` members with seeds ``seed, seed + 1, ...`` and returns an
        ``EnsemblePAL`` (a deep ensemble over the point-estimated maps);
        sizes left to choose are chosen by the first member, and the rest use them.
    validation:
        Held-out comparisons of the training users: the monitored loss becomes their
        posterior-predictive log-loss and the best epoch's parameters are kept (early
        stopping regularises the point-estimated mapping, which otherwise overfits).
    checkpoint, checkpoint_every:
        A file written atomically every ``checkpoint_every`` epochs and at the end. If it
        exists when ``fit`` starts, the fit resumes from it (it must come from the same
        data and configurations, else it is refused) and ends exactly where an
        uninterrupted fit ends on the CPU.
    distributed:
        SVI over the ranks of a ``torchrun`` launch with the users sharded: each rank
        trains its own users' posteriors on their comparisons, the global parameters are
        synchronised by ``DistributedDataParallel`` (``bayespal.inference.distributed``);
        ``batch_size`` is per rank. Validation and checkpoints (one file per rank) work as
        in one process; every rank returns the same, whole fit.
    progress:
        Show a progress bar (the loss, and the validation log-loss and best epoch when
        validated); an early stop is reported with its reason.
    callbacks:
        Called at the end of every epoch with an
        ``EpochInfo`` (losses, learning rate, seconds,
        why it stopped); see ``bayespal.inference.callbacks``, e.g.
        ``callbacks=[bayespal.inference.callbacks.TensorBoard("runs/fit")]``.
    **options:
        Fields of ``ModelConfig`` and ``TrainConfig``.

    Returns
    -------
    FittedPAL or EnsemblePAL
        ``FittedPAL``, or ``EnsemblePAL`` for ``ensemble > 1``.
    """
    model_config, train_config = configs(k, model, train, **options)
    if isinstance(data, PreferenceData) and model_config.levels != data.levels:
        if model_config.levels != 2:  # 2 is the default: the data's scale is taken
            raise ValueError(f"levels: got {model_config.levels}; expected the data's "
                             f"{data.levels} (PreferenceData.levels), or leave it out")
        model_config = replace(model_config, levels=data.levels)
    if not isinstance(ensemble, int) or isinstance(ensemble, bool) or ensemble < 1:
        raise ValueError(f"ensemble: got {ensemble!r}; expected an integer >= 1")
    if ensemble > 1 and (checkpoint is not None or distributed):
        raise ValueError(f"ensemble: got {ensemble} with checkpoint or distributed; expected "
                         "ensemble=1 (fit and checkpoint members one by one)")
    members = []
    for m in range(ensemble):
        cfg = replace(train_config, seed=train_config.seed + m) if m else train_config
        state, chosen, selection = tuned_train(
            data, model_config, cfg, validation=validation, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every, distributed=distributed, progress=progress,
            callbacks=callbacks)
        model_config = chosen  # an ensemble's members share the first member's choice
        members.append(FittedPAL(
            model_config=chosen, train_config=cfg, selection=selection, model=state.model, guide=state.guide,
            user_ids=data.user_ids, items=data.item_table, prompts=data.prompt_table,
            loss_history=state.loss_history, epoch_seconds=state.epoch_seconds,
            validation_history=state.validation_history, training_data=data,
            embedding=data.meta.get("embedding")))
    return members[0] if ensemble == 1 else EnsemblePAL.from_members(members)
