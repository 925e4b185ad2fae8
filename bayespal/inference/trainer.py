"""The SVI loop: minibatches on the device, the ELBO, optimiser and schedule, plateau
stopping, checkpoint state."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from bayespal import files
from bayespal.data import PreferenceData
from bayespal.inference import distributed as _distributed
from bayespal.inference.callbacks import EpochInfo, epoch_end, fit_end, stop_message
from bayespal.inference.config import TrainConfig
from bayespal.inference.elbo import compile_supported, compiled_loss, site_elbo_loss
from bayespal.inference.guides import PALGuide
from bayespal.model import Batch, PALModel
from bayespal.model.nets import Mapping


@dataclass
class DeviceData:
    """The training comparisons as index tensors on the device (moved once)."""

    items: torch.Tensor
    user: torch.Tensor
    item_a: torch.Tensor
    item_b: torch.Tensor
    label: torch.Tensor
    user_scale: torch.Tensor  # N / (U * n_user) per comparison
    prompts: torch.Tensor | None = None  # (P, Dc) prompt embeddings (PAL-B)
    prompt: torch.Tensor | None = None  # (N,) rows of prompts
    others: torch.Tensor | None = None  # (N, m) further items of choices, -1: none

    @classmethod
    def from_data(cls, data: PreferenceData, device: torch.device) -> DeviceData:
        counts = data.comparisons_per_user()
        scale = data.n_comparisons / (data.n_users * counts[data.user])

        def t(x: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
            return torch.as_tensor(x, dtype=dtype).to(device)

        return cls(
            t(data.items),
            t(data.user, torch.long),
            t(data.item_a, torch.long),
            t(data.item_b, torch.long),
            t(data.label, torch.float32),
            t(scale, torch.float32),
            None if data.prompts is None else t(data.prompts),
            None if data.prompt is None else t(data.prompt, torch.long),
            None if data.others is None else t(data.others, torch.long),
        )

    def __len__(self) -> int:
        return len(self.user)

    def batch(self, index: torch.Tensor | None = None, minibatch: bool = True) -> Batch:
        """A minibatch (per-comparison user terms) or, with ``index=None``, all comparisons
        under the plain generative model.

        Parameters
        ----------
        index:
            Comparison ids of a minibatch (None: all comparisons).
        minibatch:
            Attribute the user terms per comparison (the unbiased minibatch ELBO).
        """
        if index is None:
            return Batch(self.items, self.user, self.item_a, self.item_b, self.label,
                         prompts=self.prompts, prompt=self.prompt, others=self.others)
        return Batch(
            self.items,
            self.user[index],
            self.item_a[index],
            self.item_b[index],
            self.label[index],
            index=index,
            user_scale=self.user_scale[index] if minibatch else None,
            prompts=self.prompts,
            prompt=None if self.prompt is None else self.prompt[index],
            others=None if self.others is None else self.others[index],
        )


PLATEAU_DECAY = 0.3  # the "plateau" schedule's factor on every plateau


def _lr_lambda(schedule: str, total_steps: int, final_factor: float):
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "cosine":
        return lambda step: final_factor + (1 - final_factor) * 0.5 * (
            1 + math.cos(math.pi * min(step, total_steps) / total_steps)
        )
    return lambda step: final_factor ** (min(step, total_steps) / total_steps)


class Trainer:
    """The minibatched SVI loop and all of its state, so it can be checkpointed.

    Stops early when the monitored loss has not improved by ``tol`` (nats per comparison)
    for ``patience`` epochs. The monitored loss is the training loss (-ELBO per
    comparison) or, with ``validate`` (a held-out log-loss), the validation loss; then
    the parameters of the best validation epoch are restored at the end: the last epoch
    that lowered the best loss by at least ``tol`` (keeping the lowest instead, which
    small held-out sets lower by chance, measured a default fit's calibration slope 0.70
    where this rule gives 0.84). The training
    loss is accumulated on the device and read once an epoch.

    Parameters
    ----------
    model, guide:
        The model and guide (on the data's device).
    data:
        The training comparisons on the device (this rank's shard).
    config:
        The optimiser, schedule and stopping settings.
    generator:
        Seeds the batches.
    validate:
        ``() -> held-out log-loss``, monitored instead of the training loss (None: none).
    world_size, n_total, rank:
        Ranks, the comparisons of all ranks together, and this rank. With several ranks
        ``model`` and ``guide`` are this rank's (its users only) and the loss runs under
        ``DistributedDataParallel`` (``bayespal.inference.distributed``).
    replay:
        Per epoch, the learning-rate factor to run at (no stopping).
    callbacks, run_name:
        Called at every epoch's end (``bayespal.inference.callbacks``), with this
        run's name.
    compile:
        Overrides ``config.compile`` (the local refinement runs uncompiled: a short run
        with other trainable parameters would pay for a second compilation).
    """

    def __init__(
        self,
        model: PALModel,
        guide: PALGuide,
        data: DeviceData,
        config: TrainConfig,
        generator: torch.Generator,
        validate: Callable[[], float] | None = None,
        world_size: int = 1,
        n_total: int | None = None,
        replay: list[float] | None = None,
        callbacks: Sequence[Any] = (),
        run_name: str = "fit",
        compile: bool | str | None = None,
        rank: int = 0,
    ) -> None:
        batch_size, epochs, patience, tol = (config.batch_size, config.epochs, config.patience,
                                             config.tol)
        lr, weight_decay = config.lr, config.weight_decay
        self.model, self.guide, self.data = model, guide, data
        self.world_size, self.rank = world_size, rank
        self.n_total = len(data) if n_total is None else n_total  # all ranks together
        self.replay = None if replay is None else [float(x) for x in replay]
        if self.replay is not None:  # a fixed schedule: its epochs, no stopping
            epochs, patience = len(self.replay), 10**9
        self.epochs, self.patience, self.tol = epochs, patience, tol
        self.generator, self.validate = generator, validate
        self.callbacks, self.run_name = tuple(callbacks), run_name
        self.batch_size = min(batch_size, len(data))
        # the same number of steps on every rank, from global sizes only (ranks' shards
        # differ in size)
        per_rank = math.ceil(self.n_total / world_size)
        self.steps_per_epoch = math.ceil(per_rank / min(batch_size, per_rank))
        nets = [p for m in model.modules() if isinstance(m, Mapping) for p in m.parameters()]
        rest = [p for p in model.parameters() if p.requires_grad and not any(p is q for q in nets)]
        groups = [
            # weight decay on the networks only: a Gaussian prior on their weights (MAP)
            {"params": nets, "weight_decay": weight_decay},
            {"params": rest + list(guide.parameters()), "weight_decay": 0.0},
        ]
        self.optim = torch.optim.AdamW(groups, lr=lr)
        self._arange = torch.arange(self.batch_size, device=data.user.device)
        self.plateau = config.lr_schedule == "plateau" or self.replay is not None
        self.lr_factor, self.final_factor = 1.0, config.lr_final_factor
        lam = (self._plateau_factor if self.plateau else
               _lr_lambda(config.lr_schedule, epochs * self.steps_per_epoch,
                          config.lr_final_factor))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, lam)
        # Particles are drawn in a loop: the model's shapes assume no extra particle dim.
        self.num_particles = config.num_particles
        setting = config.compile if compile is None else compile
        if world_size > 1 and setting is True:
            raise ValueError("compile: got True with distributed=True; expected False or "
                             "'auto' (a users-sharded fit runs its DDP step uncompiled)")
        self.compiled = world_size == 1 and _use_compile(setting, data.user.device)
        self.shard_loss: _distributed.ShardLoss | None = None
        if world_size > 1:
            self.shard_loss = _distributed.ShardLoss(model, guide, world_size, len(data),
                                                     self.num_particles)
            self._loss = _distributed.wrap(self.shard_loss)
        elif self.compiled:
            self._loss = compiled_loss(model, guide, self.num_particles)
        else:
            n_local = len(data)  # = model.n_comparisons, except on one rank's share
            self._loss = lambda batch: site_elbo_loss(model, guide, batch, self.num_particles,
                                                      n_comparisons=n_local)
        self.history: list[float] = []
        self.seconds: list[float] = []
        self.val_history: list[float] = []
        self.best, self.stale, self.finished = math.inf, 0, False
        self.stopped = "epochs"  # why the run ended: "epochs", "plateau" or "callback"
        self.best_epoch = 0  # with validation: the epoch whose state is kept (1-based)
        self.lr_history: list[float] = []  # per epoch: the plateau factor it ran at
        self.best_state: tuple[dict, dict] | None = None

    # -- one epoch ---------------------------------------------------------------------
    def _epoch(self) -> float:
        n, device = len(self.data), self.data.user.device
        perm = torch.randperm(n, generator=self.generator, device="cpu")
        perm = perm.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else perm
        total = self._steps(perm)
        if self.world_size > 1:
            total = _distributed.all_sum(total) / self.world_size
        epoch_loss = float(total) / (self.steps_per_epoch * self.n_total)  # one sync an epoch
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"loss: got {epoch_loss} at epoch {len(self.history) + 1}; expected a finite "
                "ELBO (lower lr, or check the embeddings' scale)"
            )
        return epoch_loss

    def _steps(self, perm: torch.Tensor) -> torch.Tensor:
        """One pass of optimiser steps over the permutation ``perm`` (on the device); returns
        the summed loss as a device tensor. Nothing here reads a value back to the host."""
        n, device = len(self.data), self.data.user.device
        total = torch.zeros((), device=device)
        # Distribution argument checks read values back (a sync per site on a GPU); the
        # data were validated once, up front, by PreferenceData.
        with pyro.validation_enabled(False):
            for s in range(self.steps_per_epoch):
                total += self._step(perm, s, n)
        return total

    def _step(self, perm: torch.Tensor, s: int, n: int) -> torch.Tensor:
        """One optimiser step on the ``s``-th batch of ``perm``; the loss as a device tensor."""
        if self.world_size > 1 or self.compiled:
            # full batches (a slice that wraps around): the same on every rank, and one
            # shape for the compiled step
            idx = perm[(s * self.batch_size + self._arange) % n]
        else:
            idx = perm[s * self.batch_size : (s + 1) * self.batch_size]
        loss = self._loss(self.data.batch(idx))
        self.optim.zero_grad(set_to_none=True)
        loss.backward()  # with several ranks, DDP averages the global gradients here
        if self.shard_loss is not None:
            self.shard_loss.scale_local_gradients()
        self.optim.step()
        self.sched.step()
        return loss.detach()

    def run(self, progress: bool = False, checkpoint: Path | None = None,
            checkpoint_every: int = 1, fingerprint: dict | None = None) -> None:
        """Train until the schedule ends or the monitored loss stops improving.

        Parameters
        ----------
        progress:
            Show a progress bar.
        checkpoint:
            A checkpoint file (None: none), written atomically.
        checkpoint_every:
            Epochs between checkpoints (the last epoch is always written).
        fingerprint:
            What the checkpoint must match to be resumed.
        """
        start_epoch = len(self.history)
        bar = tqdm(range(start_epoch, self.epochs), desc="bayespal fit", disable=not progress,
                   leave=False, initial=start_epoch, total=self.epochs)
        with pyro.validation_enabled(False):
            for epoch in bar:
                if self.finished:
                    break
                start = time.perf_counter()
                if self.replay is not None:
                    self.lr_factor = self.replay[epoch]
                if self.plateau:  # this epoch's factor, from its first step
                    for group, base in zip(self.optim.param_groups, self.sched.base_lrs,
                                           strict=True):
                        group["lr"] = base * self.lr_factor
                self.lr_history.append(self.optim.param_groups[0]["lr"] / self.sched.base_lrs[0])
                epoch_loss = self._epoch()
                self.history.append(epoch_loss)
                monitored = epoch_loss
                if self.validate is not None:
                    monitored = self.validate()
                    self.val_history.append(monitored)
                self.seconds.append(time.perf_counter() - start)
                if self.validate is None:
                    bar.set_postfix(loss=f"{epoch_loss:.4f}")
                else:
                    bar.set_postfix(loss=f"{epoch_loss:.4f}", val=f"{monitored:.4f}",
                                    best=self.best_epoch)
                if monitored < self.best - self.tol:
                    self.best, self.stale = monitored, 0
                    if self.validate is not None:
                        self.best_state = copy.deepcopy((self.model.state_dict(),
                                                         self.guide.state_dict()))
                        self.best_epoch = len(self.history)
                else:
                    self.stale += 1
                    if self.stale >= self.patience:
                        self._plateaued()
                last = self.finished or epoch + 1 == self.epochs
                if self.callbacks and epoch_end(self.callbacks,
                                                self._info(self.stopped if last else None)):
                    if not last:
                        self.finished, self.stopped, last = True, "callback", True
                if checkpoint is not None and ((epoch + 1) % checkpoint_every == 0 or last):
                    self._checkpoint(checkpoint, fingerprint or {})
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state[0])
            self.guide.load_state_dict(self.best_state[1])
        if self.history:
            info = self._info(self.stopped)
            if progress and self.stopped != "epochs":
                tqdm.write(f"bayespal fit: {stop_message(info)}")
            fit_end(self.callbacks, info)

    def _info(self, stopped: str | None = None) -> EpochInfo:
        """The last epoch as the callbacks see it."""
        return EpochInfo(
            run=self.run_name, epoch=len(self.history), max_epochs=self.epochs,
            loss=self.history[-1],
            validation_loss=self.val_history[-1] if self.val_history else None,
            best_epoch=self.best_epoch, lr=self.lr_history[-1] * self.sched.base_lrs[0],
            seconds=self.seconds[-1], stopped=stopped)

    def _plateau_factor(self, step: int) -> float:
        return self.lr_factor

    def _plateaued(self) -> None:
        """``patience`` epochs without improvement: stop, or (``"plateau"`` schedule) lower
        the learning rate by ``PLATEAU_DECAY`` and go on while it stays at or above
        ``lr * lr_final_factor``."""
        nxt = self.lr_factor * PLATEAU_DECAY
        if not self.plateau or nxt < self.final_factor * (1 - 1e-9):
            self.finished, self.stopped = True, "plateau"
            return
        self.lr_factor, self.stale = nxt, 0  # the scheduler's lambda reads it

    # -- checkpoints -------------------------------------------------------------------
    def _checkpoint(self, path: Path, fingerprint: dict) -> None:
        """Write the checkpoint; with several ranks each writes its shard's file of this
        epoch, and deletes its older ones once every rank has written
        (``bayespal.inference.distributed.resumable_epoch``)."""
        if self.world_size == 1:
            self.save(path, fingerprint)
            return
        done = len(self.history)
        self.save(_distributed.shard_checkpoint(path, self.rank, self.world_size, done),
                  fingerprint)
        _distributed.barrier()
        _distributed.prune_shards(path, self.rank, self.world_size, keep=done)

    def _state(self) -> dict:
        state = {
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optim": self.optim.state_dict(),
            "sched": self.sched.state_dict(),  # lr_lambdas are plain functions: saved as None
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
            "progress": {"history": self.history, "seconds": self.seconds,
                         "val_history": self.val_history,
                         "best": None if math.isinf(self.best) else self.best,
                         "stale": self.stale, "finished": self.finished,
                         "lr_factor": self.lr_factor, "stopped": self.stopped,
                         "lr_history": self.lr_history, "best_epoch": self.best_epoch},
        }
        if torch.cuda.is_available() and self.data.user.is_cuda:
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.data.user.device)
        if self.best_state is not None:
            state["best_state"] = {"model": self.best_state[0], "guide": self.best_state[1]}
        return state

    def save(self, path: Path, fingerprint: dict) -> None:
        """Write the whole training state to ``path`` atomically.

        Parameters
        ----------
        path:
            The checkpoint file.
        fingerprint:
            The fit's data and configuration hashes.
        """
        tensors: dict[str, torch.Tensor] = {}
        skeleton = files.flatten_state("s", self._state(), tensors)
        meta = {"fingerprint": fingerprint, "state": skeleton, "epochs_done": len(self.history),
                "finished": self.finished}
        files.write_atomic(path, tensors, _json_safe(meta), kind="checkpoint")

    def load(self, path: Path, fingerprint: dict) -> None:
        """Restore the training state from ``path``; refused unless ``fingerprint`` matches.

        Parameters
        ----------
        path:
            The checkpoint file.
        fingerprint:
            The current fit's data and configuration hashes.
        """
        tensors, meta = files.read(path, kind="checkpoint")
        saved = meta["fingerprint"]
        for key in sorted(set(saved) | set(fingerprint)):
            if saved.get(key) != _json_safe(fingerprint).get(key):
                raise files.FileFormatError(
                    f"checkpoint {str(path)!r}: got {key}={saved.get(key)!r}; expected "
                    f"{key}={fingerprint.get(key)!r} (the checkpoint is from another fit; "
                    "delete it or use another path)"
                )
        state = files.unflatten_state(meta["state"], tensors)
        device = self.data.user.device
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        optim = state["optim"]
        optim["state"] = {int(k): v for k, v in optim["state"].items()}
        self.optim.load_state_dict(optim)
        self.sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        progress = state["progress"]
        self.history, self.seconds = list(progress["history"]), list(progress["seconds"])
        self.val_history = list(progress["val_history"])
        self.best = math.inf if progress["best"] is None else float(progress["best"])
        self.stale = int(progress["stale"])
        self.finished = bool(progress["finished"])
        self.lr_factor = float(progress.get("lr_factor", 1.0))
        self.stopped = str(progress.get("stopped", "epochs"))
        self.lr_history = [float(x) for x in progress.get("lr_history", [])]
        self.best_epoch = int(progress.get("best_epoch", 0))
        if "best_state" in state:
            self.best_state = (state["best_state"]["model"], state["best_state"]["guide"])


def _use_compile(setting: bool | str, device: torch.device) -> bool:
    """Resolve ``TrainConfig.compile`` on ``device``: ``"auto"`` compiles on CUDA where
    supported; ``True`` where it is not supported is an error, never a silent fallback."""
    ok, why = compile_supported(device)
    if setting is True and not ok:
        raise ValueError(f"compile: got True on {device}; expected a device where "
                         f"torch.compile runs ({why}); use compile=False or 'auto'")
    if setting == "auto":
        return ok and device.type == "cuda"
    return bool(setting)


def _json_safe(value):
    """Round-trip through JSON (tuples become lists) so comparisons see what the file holds."""
    return json.loads(json.dumps(value))


def data_fingerprint(data: PreferenceData) -> str:
    """SHA-256 of the comparisons and the item table's shape (a resumed fit must see the
    same data).

    Parameters
    ----------
    data:
        The training comparisons.
    """
    h = hashlib.sha256()
    for arr in (data.user, data.item_a, data.item_b, data.label):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(str(data.items.shape).encode())
    if data.others is not None:  # choices from sets: their further items too
        h.update(np.ascontiguousarray(data.others).tobytes())
    if data.question is not None:  # which choices make one answer (the validation split)
        h.update(b"question" + np.ascontiguousarray(data.question).tobytes())
    return h.hexdigest()[:32]


