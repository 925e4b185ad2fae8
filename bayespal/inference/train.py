"""Fitting one model: ``train`` builds the model and guide from the two
configurations, runs the SVI loop (with validation, checkpoints or ranks) and returns the
trained state. It knows nothing of result types: ``bayespal.fit`` wraps the state."""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyro
import torch

from bayespal.data import EmbeddingTable, PreferenceData
from bayespal.device import resolve_device
from bayespal.inference import distributed as _distributed
from bayespal.inference.callbacks import check_callbacks
from bayespal.inference.config import TrainConfig
from bayespal.inference.guides import PALGuide
from bayespal.inference.trainer import DeviceData, Trainer, _json_safe, data_fingerprint
from bayespal.metrics import choice_log_loss, expected_label, log_loss
from bayespal.model import ModelConfig, PALModel

VALIDATION_DRAWS = 32  # posterior draws per validation of held-out comparisons
# The local refinement's learning rate, in the units of the users' own parameters (raw
# concentrations or logits, where Adam's step is about the rate): not the shared lr.
LOCAL_LR = 0.05


@dataclass
class Trained:
    """What ``train`` returns: the fitted model and guide and the fit's history.

    Attributes
    ----------
    model, guide:
        The trained ``PALModel`` and ``PALGuide`` (eval mode).
    loss_history:
        Per epoch: the negative ELBO per comparison (the training loss).
    epoch_seconds:
        Per epoch: wall time.
    validation_history:
        Per epoch: the held-out log-loss, when validation data were given (else empty).
    stopped:
        Why training ended: ``"epochs"`` (the most epochs ran) or ``"plateau"`` (the
        monitored loss stopped improving, at the lowest learning rate of the schedule).
    """

    model: PALModel
    guide: PALGuide
    loss_history: np.ndarray
    epoch_seconds: np.ndarray
    validation_history: np.ndarray
    stopped: str = "epochs"
    lr_history: np.ndarray | None = None  # per epoch: the lr factor it ran at
    best_epoch: int = 0  # with validation: the epoch whose state was kept (1-based)
    local_epochs: int = 0  # epochs of the local refinement run after the main run
    local_seconds: float = 0.0  # its wall time


def build(model_config: ModelConfig, inference: str, embed_dim: int, n_users: int,
          n_comparisons: int, prompt_embed_dim: int | None = None,
          generator: torch.Generator | None = None, n_items: int | None = None
          ) -> tuple[PALModel, PALGuide]:
    """The model and its guide (``inference`` ``"svi"`` or ``"map"``) for data of these sizes.

    Parameters
    ----------
    model_config:
        What is modelled.
    inference:
        'svi' or 'map'.
    embed_dim:
        Width of the item embeddings.
    n_users, n_comparisons:
        Sizes of the plates.
    prompt_embed_dim:
        PAL-B: width of the prompt embeddings.
    generator:
        Seeds the guide's initial values.
    n_items:
        Rows of the training item table (with item effects; ignored without).
    """
    n_items = n_items if model_config.item_effects else None
    model = PALModel(model_config, embed_dim, n_users, n_comparisons, prompt_embed_dim, n_items)
    return model, PALGuide(model_config, n_users, generator, point=inference == "map",
                           n_items=n_items)


@torch.no_grad()
def heldout_probs(model: PALModel, guide: PALGuide, user_ids: np.ndarray,
                  data: PreferenceData, num_samples: int,
                  items: EmbeddingTable | None = None) -> np.ndarray:
    """The posterior predictive ``P(a preferred)`` ``(n,)`` of ``data``'s comparisons under
    the training state (graded answers: every level's probability, ``(n, L)``; choices from
    larger sets: every item's, ``(n, 2 + m)``, see ``PopulationDraws.predict``; users matched
    by id to ``user_ids``; unknown users get the population average): what validation and
    the collapse check score.

    Parameters
    ----------
    model, guide:
        The training state.
    user_ids:
        The training users' ids.
    data:
        Comparisons to predict.
    num_samples:
        Posterior draws.
    items:
        The training item table (required with item effects: their items are matched to
        it, ``EmbeddingTable.match``).
    """
    draws = guide.population_draws(model, num_samples)
    users = pd.Index(user_ids).get_indexer(data.user_ids[data.user])
    emb_a, emb_b = data.items[data.item_a], data.items[data.item_b]
    emb_c = None if data.prompt is None else data.prompts[data.prompt]
    rows_a = rows_b = None
    if draws.has_item_effects:
        if items is None:
            raise ValueError("items: got None; expected the training item table (the model "
                             "has item effects)")
        rows_a = items.match(data.item_ids[data.item_a], emb_a)
        rows_b = items.match(data.item_ids[data.item_b], emb_b)
    choice = {}
    if data.others is not None:  # choices from larger sets: each item's probability
        filled = data.other_rows()
        emb_o = data.items[filled]
        rows_o = None
        if draws.has_item_effects:
            rows_o = items.match(data.item_ids[filled].reshape(-1),
                                 emb_o.reshape(-1, emb_o.shape[-1])).reshape(filled.shape)
        choice = dict(emb_o=emb_o, others=data.others, rows_o=rows_o)
    p = draws.predict(lambda pos: guide.weight_draws(draws.size, pos), users, emb_a, emb_b,
                      emb_c, rows_a=rows_a, rows_b=rows_b,
                      outcomes=draws.levels > 2 or data.others is not None,
                      cutpoint_draws=lambda pos: guide.cutpoint_draws(draws.size, pos), **choice)
    return p.mean(0).cpu().numpy()


def train(data: PreferenceData, model_config: ModelConfig, train_config: TrainConfig, *,
          validation: PreferenceData | None = None,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
          distributed: bool = False, progress: bool = True,
          replay: list[float] | None = None, callbacks: Sequence[Any] | None = None,
          run_name: str = "fit", refine: bool = True) -> Trained:
    """Fit one model to ``data`` (arguments as ``bayespal.fit``).

    Parameters
    ----------
    data:
        The training comparisons.
    model_config, train_config:
        What is fitted and how.
    validation, checkpoint, checkpoint_every, distributed, progress, callbacks:
        As for bayespal.fit.
    replay:
        Per epoch, the learning-rate factor to run at (a recorded ``Trained.lr_history``):
        that many epochs exactly, no stopping.
    run_name:
        What the callbacks call this run.
    refine:
        Run the local refinement (``train_config.local_epochs``, ``refine_users``) after
        the main run; ``False`` leaves it to the caller (a candidate that may not be kept).
    """
    cfg = train_config
    if model_config.hidden is None:
        raise ValueError("hidden: got None (choose by validation); expected the mapping's "
                         "widths here (bayespal.inference.tuning.tuned_train chooses them)")
    if not isinstance(data, PreferenceData):
        raise ValueError(f"data: got {type(data).__name__}; expected a PreferenceData")
    callbacks = check_callbacks(callbacks)
    for name, flag in (("progress", progress), ("distributed", distributed)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name}: got {flag!r}; expected True or False")
    if validation is not None:
        if not isinstance(validation, PreferenceData):
            raise ValueError(f"validation: got {type(validation).__name__}; expected "
                             "PreferenceData or None")
        if validation.embed_dim != data.embed_dim:
            raise ValueError(f"validation: got items of {validation.embed_dim} dims; expected "
                             f"{data.embed_dim}, the training items' dimension")
    for name, d in (("data", data), ("validation", validation)):
        if d is not None and d.levels != model_config.levels:
            raise ValueError(f"{name}: got answers on {d.levels} levels with levels="
                             f"{model_config.levels}; expected the model's scale to be the "
                             "data's (bayespal.fit takes it from the data)")
    if data.others is not None and model_config.metric != "distance":
        raise ValueError(f"metric: got {model_config.metric!r} with choices from sets "
                         "(data.others); expected 'distance' (a choice is a multinomial logit "
                         "of the prototypes' rewards)")
    if model_config.prompted and data.prompts is None:
        raise ValueError(f"data: got comparisons without prompts and prompt_dim="
                         f"{model_config.prompt_dim}; expected prompts (PreferenceData "
                         "prompt/prompts) for PAL-B")
    dev = resolve_device(cfg.device)
    rank, world_size = 0, 1
    if distributed:
        rank, world_size, dev = _distributed.setup(dev)
    pyro.set_rng_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    prompt_embed_dim = data.prompts.shape[1] if model_config.prompted else None
    model, guide = build(model_config, cfg.inference, data.embed_dim, data.n_users,
                         data.n_comparisons, prompt_embed_dim, generator, len(data.items))
    if cfg.standardize:  # the maps see centred, unit-RMS inputs: the embeddings' scale is moot
        model.mapping.standardize_from(torch.as_tensor(data.items))
        if model_config.prompted:
            model.prompt_map.standardize_from(torch.as_tensor(data.prompts))
    warn_about_data(data, model_config)
    if model_config.position_bias:  # start from the labels' log-odds: the term's empirical value
        share = float(np.clip(data.label.mean(), 1e-3, 1 - 1e-3))
        with torch.no_grad():
            model.position_bias.fill_(math.log(share / (1 - share)))
    model, guide = model.to(dev), guide.to(dev)
    owner, shard = None, data
    if world_size > 1:  # this rank's users, their comparisons and parameters only
        owner, shard, guide = _distributed.take_share(data, guide, rank, world_size)
        generator.manual_seed(cfg.seed + 7919 * rank)  # each rank its own batches and draws
        torch.manual_seed(cfg.seed + 7919 * rank)
    device_data = DeviceData.from_data(shard, dev)
    validate = None
    if validation is not None:
        held = validation
        if world_size > 1:  # each rank scores its users' comparisons (unknown users: rank 0)
            pos = pd.Index(data.user_ids).get_indexer(validation.user_ids[validation.user])
            held_rank = np.where(pos >= 0, owner[np.maximum(pos, 0)], 0)
            held = validation.subset(held_rank == rank) if (held_rank == rank).any() else None

        def validate() -> float:
            total = torch.zeros(2, dtype=torch.float64, device=dev)  # summed loss, count
            if held is not None:
                with torch.random.fork_rng(devices=[]):  # keep the SVI random stream intact
                    torch.manual_seed(cfg.seed)
                    p = heldout_probs(model, guide, shard.user_ids, held, VALIDATION_DRAWS,
                                      data.item_table)
                score = choice_log_loss if held.others is not None else log_loss
                total[0], total[1] = score(p, held.label) * len(held.label), len(held.label)
            if world_size > 1:
                _distributed.all_sum(total)
            return float(total[0] / total[1])

    trainer = Trainer(model, guide, device_data, cfg, generator, validate=validate,
                      world_size=world_size, n_total=data.n_comparisons, replay=replay,
                      callbacks=callbacks, run_name=run_name, rank=rank)
    path, fingerprint = None, {}
    if checkpoint is not None:
        path = Path(checkpoint)
        if not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every: got {checkpoint_every!r}; expected an integer "
                             ">= 1")
        fingerprint = {
            "model_config": model_config.hash(), "train_config": cfg.hash(),
            "data": data_fingerprint(data),
            "validation": None if validation is None else data_fingerprint(validation),
        }
        if world_size > 1:  # each rank its own shard file
            fingerprint.update(world_size=world_size, rank=rank)
            epoch = _distributed.resumable_epoch(path, rank, world_size, dev)
            if epoch:
                trainer.load(_distributed.shard_checkpoint(path, rank, world_size, epoch),
                             _json_safe(fingerprint))
        elif path.exists():
            trainer.load(path, _json_safe(fingerprint))
    trainer.run(progress, path, checkpoint_every, fingerprint)
    state = Trained(model, guide, np.asarray(trainer.history),
                    np.asarray(trainer.seconds), np.asarray(trainer.val_history),
                    trainer.stopped, np.asarray(trainer.lr_history), trainer.best_epoch)
    if refine:  # each rank refines its own users (nothing shared changes)
        _refine(state, device_data, cfg, generator)
    if world_size > 1:  # every rank gathers every user's parameters
        state.guide = _distributed.gather_guide(guide, owner, rank)
    model.eval(), state.guide.eval()
    warn_if_collapsed(state, data, model_config, cfg.lr)
    return state


def refine_users(state: Trained, data: PreferenceData, train_config: TrainConfig,
                 distributed: bool = False) -> None:
    """The local refinement of a state trained with ``refine=False``, in place: each user's
    own variational parameters optimised for ``train_config.local_epochs`` epochs with the
    shared ones held fixed (see ``TrainConfig.local_epochs``). With ``distributed`` (a
    fit's ranks, the process group joined) each rank refines its own users and all gather
    the result: nothing shared changes, so no rank waits on another until the gather.

    Parameters
    ----------
    state:
        The trained state (``train(..., refine=False)``).
    data:
        The comparisons it was trained on.
    train_config:
        The fit's configuration (seed, batch size, ``local_epochs``).
    distributed:
        Share the work over the ranks of the fit.
    """
    device = state.guide.prototypes_loc.device
    rank, world_size = 0, 1
    if distributed:
        rank, world_size, _ = _distributed.setup(device)
    pyro.set_rng_seed(train_config.seed + 7919 * rank)
    generator = torch.Generator().manual_seed(train_config.seed + 7919 * rank)
    owner = None
    if world_size > 1:
        owner, data, state.guide = _distributed.take_share(data, state.guide, rank, world_size)
    _refine(state, DeviceData.from_data(data, device), train_config, generator)
    if world_size > 1:
        state.guide = _distributed.gather_guide(state.guide, owner, rank)
    state.model.eval(), state.guide.eval()


def _refine(state: Trained, device_data: DeviceData, cfg: TrainConfig,
            generator: torch.Generator) -> None:
    """Optimise only ``state.guide.local_parameters()`` for ``cfg.local_epochs`` epochs
    (AdamW at ``LOCAL_LR``, cosine), every other parameter frozen, then unfreeze; records
    the epochs and seconds on ``state``. Nothing to do with ``k=1`` or ``local_epochs=0``."""
    if cfg.local_epochs == 0 or state.model.config.k == 1:
        return
    start = time.perf_counter()
    model, guide = state.model.train(), state.guide.train()
    params = list(model.parameters()) + list(guide.parameters())
    flags = [p.requires_grad for p in params]
    local = guide.local_parameters()
    try:
        for p in params:
            p.requires_grad_(any(p is q for q in local))
        local_cfg = dataclasses.replace(cfg, epochs=cfg.local_epochs, lr=LOCAL_LR,
                                        lr_schedule="cosine", patience=10**9)
        Trainer(model, guide, device_data, local_cfg, generator, run_name="local",
                compile=False).run(False)
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    state.local_epochs = cfg.local_epochs
    state.local_seconds = time.perf_counter() - start


def warn_about_data(data: PreferenceData, config: ModelConfig) -> None:
    """Warn when the labels depend on the position of the items (item_a vs item_b): PAL
    scores items, not positions, unless ``position_bias=True``.

    Parameters
    ----------
    data:
        The training comparisons.
    config:
        The model configuration.
    """
    n = data.n_comparisons
    share = float(data.label.mean())
    z = abs(share - 0.5) * 2 * math.sqrt(n)  # binomial test against 1/2
    if not config.position_bias and z > 5 and abs(share - 0.5) > 0.05:
        warnings.warn(
            f"label: {share:.1%} of {n} comparisons prefer item_a (z = {z:.1f} against 50%); "
            "PAL has no term for an item's position, so if the order of presentation carries "
            "information, fit with position_bias=True (or randomise which item is item_a)",
            UserWarning, stacklevel=4)


def warn_if_collapsed(state: Trained, data: PreferenceData, config: ModelConfig, lr: float,
                      n_check: int = 2048) -> None:
    """Warn when a fit learned nothing: on its own training comparisons its predictions all
    lie within 0.02 of 1/2, or their log-loss is no better than a coin's (log 2); or when the
    sharpness left its prior by more than 4 sds (under a too large ``lr`` it falls to ~0 while
    the mapping grows to compensate).

    Parameters
    ----------
    state:
        The trained state.
    data:
        The training comparisons.
    config:
        The model configuration.
    lr:
        The learning rate (named in the advice).
    n_check:
        Training comparisons scored.
    """
    rows = np.linspace(0, data.n_comparisons - 1, min(n_check, data.n_comparisons)).astype(int)
    sub = data.subset(rows)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        p = heldout_probs(state.model, state.guide, data.user_ids, sub, 16, data.item_table)
    if sub.others is not None:  # choices from sets: a coin is uniform over each set
        spread = float(np.abs(p[:, 1] - p[:, 0]).mean() / 2)
        loss = choice_log_loss(p, sub.label)
        coin = float(np.mean(np.log(2 + (sub.others >= 0).sum(1))))
    else:
        spread = float(np.abs(expected_label(p) - 0.5).mean())
        loss = log_loss(p, sub.label)
        coin = math.log(data.levels)
    beta = state.guide.sharpness_moments()[0]
    z = (math.log(max(beta, 1e-300)) - config.sharpness_loc) / config.sharpness_scale
    if abs(z) > 4:
        warnings.warn(
            f"fit: the sharpness went to {beta:.3g}, {abs(z):.1f} prior sds from its prior "
            f"median {math.exp(config.sharpness_loc):.3g}: the optimiser diverged and the "
            f"mapping absorbed the scale; the fit collapsed: try a smaller lr (got {lr:g})",
            RuntimeWarning, stacklevel=4)
    elif spread < 0.02 or loss > coin - 0.005:
        warnings.warn(
            f"fit: predictions on training comparisons are no better than a coin (mean "
            f"|p - 1/2| {spread:.3f}, log-loss {loss:.4f} vs a coin's {coin:.4f}; "
            f"sharpness {beta:.3g}, final loss {state.loss_history[-1]:.4f} per comparison): "
            "the fit collapsed or found no signal; try a smaller "
            f"lr (got {lr:g}) or check the data", RuntimeWarning, stacklevel=4)
