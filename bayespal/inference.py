"""The SVI loop: device placement, minibatching, optimiser and schedule, plateau stopping."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.subsample_messenger import _Subsample
from tqdm.auto import tqdm

from bayespal import checkpoint
from bayespal import distributed as _distributed
from bayespal.checks import check_int, check_real, check_seed
from bayespal.data import PreferenceData
from bayespal.metrics import log_loss
from bayespal.models import build
from bayespal.models.ideal_point import Batch, IdealPointGuide, IdealPointModel, PALConfig
from bayespal.models.nets import Mapping

LR_SCHEDULES = ("constant", "cosine", "exponential")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; asking for an absent CUDA is an error."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device: got {device!r}; expected 'auto', 'cpu' or 'cuda[:N]'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: got {device!r}; expected 'cpu' or 'auto' (no CUDA device here)")
    return torch.device(device)


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
        )

    def __len__(self) -> int:
        return len(self.user)

    def shard(self, rank: int, world_size: int) -> DeviceData:
        """This rank's comparisons (``rank::world_size``); user scales stay global."""
        sel = slice(rank, None, world_size)
        return DeviceData(self.items, self.user[sel], self.item_a[sel], self.item_b[sel],
                          self.label[sel], self.user_scale[sel], self.prompts,
                          None if self.prompt is None else self.prompt[sel])

    def batch(self, index: torch.Tensor | None = None, minibatch: bool = True) -> Batch:
        """A minibatch (per-comparison user terms) or, with ``index=None``, all comparisons
        under the plain generative model."""
        if index is None:
            return Batch(self.items, self.user, self.item_a, self.item_b, self.label,
                         prompts=self.prompts, prompt=self.prompt)
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
        )


def elbo_loss(model, guide, batch: Batch, num_particles: int = 1) -> torch.Tensor:
    """Negative ELBO estimate (differentiable) for a fully reparameterised guide.

    The same quantity as ``pyro.infer.Trace_ELBO().differentiable_loss`` (checked in
    ``tests/test_elbo.py``), built from Pyro's own ``poutine.trace``/``replay`` and
    ``Trace.log_prob_sum``, but without its per-step ``.item()`` and NaN check, which
    force a host round trip every step on a GPU. Every guide site here (Normal,
    LogNormal, Dirichlet, Delta) is reparameterised, so no score-function term is needed.
    """
    total = 0.0
    for _ in range(num_particles):
        guide_tr = poutine.trace(guide).get_trace(batch)
        model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(batch)
        total = total + (guide_tr.log_prob_sum(_scored) - model_tr.log_prob_sum(_scored))
    return total / num_particles


def _scored(name: str, site: dict) -> bool:
    """Skip the plates' subsample sites: their log-probability is a constant 0 that Pyro
    builds with ``torch.tensor(0.0, device=...)``, a host-to-device copy every step."""
    return not isinstance(site["fn"], _Subsample)


def _check_positive_int(name: str, value: object) -> int:
    return check_int(name, value, 1)


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
    the parameters of the best validation epoch are restored at the end. The training
    loss is accumulated on the device and read once an epoch.
    """

    def __init__(
        self,
        model: IdealPointModel,
        guide: IdealPointGuide,
        data: DeviceData,
        *,
        batch_size: int,
        epochs: int,
        lr: float,
        lr_schedule: str,
        lr_final_factor: float,
        num_particles: int,
        weight_decay: float,
        patience: int,
        tol: float,
        generator: torch.Generator,
        validate: Callable[[], float] | None = None,
        world_size: int = 1,
        n_total: int | None = None,
    ) -> None:
        self.model, self.guide, self.data = model, guide, data
        self.world_size = world_size
        self.n_total = len(data) if n_total is None else n_total  # all ranks together
        self.epochs, self.patience, self.tol = epochs, patience, tol
        self.generator, self.validate = generator, validate
        self.batch_size = min(batch_size, len(data))
        # the same number of steps on every rank (shards differ in size by at most one)
        self.steps_per_epoch = math.ceil(math.ceil(self.n_total / world_size) / self.batch_size)
        nets = [p for m in model.modules() if isinstance(m, Mapping) for p in m.parameters()]
        rest = [p for p in model.parameters() if p.requires_grad and not any(p is q for q in nets)]
        groups = [
            # weight decay on the networks only: a Gaussian prior on their weights (MAP)
            {"params": nets, "weight_decay": weight_decay},
            {"params": rest + list(guide.parameters()), "weight_decay": 0.0},
        ]
        self.optim = torch.optim.AdamW(groups, lr=lr)
        self._params = [p for g in groups for p in g["params"]]
        self._arange = torch.arange(self.batch_size, device=data.user.device)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optim, _lr_lambda(lr_schedule, epochs * self.steps_per_epoch, lr_final_factor)
        )
        # Particles are drawn in a loop: the model's shapes assume no extra particle dim.
        self.num_particles = num_particles
        self.history: list[float] = []
        self.seconds: list[float] = []
        self.val_history: list[float] = []
        self.best, self.stale, self.finished = math.inf, 0, False
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
        if self.world_size > 1:  # full batches on every rank (a slice that wraps around)
            idx = perm[(s * self.batch_size + self._arange) % n]
        else:
            idx = perm[s * self.batch_size : (s + 1) * self.batch_size]
        loss = elbo_loss(self.model.model, self.guide.guide, self.data.batch(idx),
                         self.num_particles)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.world_size > 1:
            _distributed.average_gradients(self._params, self.world_size)
        self.optim.step()
        self.sched.step()
        return loss.detach()

    def run(self, progress: bool = False, checkpoint: Path | None = None,
            checkpoint_every: int = 1, fingerprint: dict | None = None) -> None:
        start_epoch = len(self.history)
        bar = tqdm(range(start_epoch, self.epochs), desc="bayespal fit", disable=not progress,
                   leave=False, initial=start_epoch, total=self.epochs)
        with pyro.validation_enabled(False):
            for epoch in bar:
                if self.finished:
                    break
                start = time.perf_counter()
                epoch_loss = self._epoch()
                self.history.append(epoch_loss)
                monitored = epoch_loss
                if self.validate is not None:
                    monitored = self.validate()
                    self.val_history.append(monitored)
                self.seconds.append(time.perf_counter() - start)
                bar.set_postfix(loss=f"{epoch_loss:.4f}")
                if monitored < self.best - self.tol:
                    self.best, self.stale = monitored, 0
                    if self.validate is not None:
                        self.best_state = copy.deepcopy((self.model.state_dict(),
                                                         self.guide.state_dict()))
                else:
                    self.stale += 1
                    self.finished = self.stale >= self.patience
                last = self.finished or epoch + 1 == self.epochs
                if checkpoint is not None and ((epoch + 1) % checkpoint_every == 0 or last):
                    self.save(checkpoint, fingerprint or {})
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state[0])
            self.guide.load_state_dict(self.best_state[1])

    # -- checkpoints -------------------------------------------------------------------
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
                         "stale": self.stale, "finished": self.finished},
        }
        if torch.cuda.is_available() and self.data.user.is_cuda:
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.data.user.device)
        if self.best_state is not None:
            state["best_state"] = {"model": self.best_state[0], "guide": self.best_state[1]}
        return state

    def save(self, path: Path, fingerprint: dict) -> None:
        tensors: dict[str, torch.Tensor] = {}
        skeleton = checkpoint.flatten_state("s", self._state(), tensors)
        meta = {"fingerprint": fingerprint, "state": skeleton, "epochs_done": len(self.history),
                "finished": self.finished}
        checkpoint.write_atomic(path, tensors, _json_safe(meta), kind="checkpoint")

    def load(self, path: Path, fingerprint: dict) -> None:
        tensors, meta = checkpoint.read(path, kind="checkpoint")
        saved = meta["fingerprint"]
        for key in sorted(set(saved) | set(fingerprint)):
            if saved.get(key) != _json_safe(fingerprint).get(key):
                raise checkpoint.FileFormatError(
                    f"checkpoint {str(path)!r}: got {key}={saved.get(key)!r}; expected "
                    f"{key}={fingerprint.get(key)!r} (the checkpoint is from another fit; "
                    "delete it or use another path)"
                )
        state = checkpoint.unflatten_state(meta["state"], tensors)
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
        if "best_state" in state:
            self.best_state = (state["best_state"]["model"], state["best_state"]["guide"])


def _json_safe(value):
    """Round-trip through JSON (tuples become lists) so comparisons see what the file holds."""
    return json.loads(json.dumps(value))


def data_fingerprint(data: PreferenceData) -> str:
    """SHA-256 of the comparisons and the item table's shape (a resumed fit must see the
    same data)."""
    h = hashlib.sha256()
    for arr in (data.user, data.item_a, data.item_b, data.label):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(str(data.items.shape).encode())
    return h.hexdigest()[:32]


def fit(
    data: PreferenceData,
    k: int = 3,
    *,
    pref_dim: int = 16,
    hidden: tuple[int, ...] = (64,),
    inference: str = "svi",
    concentration: float | None = None,
    prototype_scale: float = 1.0,
    sharpness_loc: float = 0.0,
    sharpness_scale: float = 1.0,
    prompt_dim: int | None = None,
    prompt_hidden: tuple[int, ...] = (),
    loading_scale: float = 1.0,
    score: str = "distance",
    position_bias: bool = False,
    standardize: bool = True,
    batch_size: int = 1024,
    epochs: int = 200,
    lr: float = 0.01,
    lr_schedule: str = "cosine",
    lr_final_factor: float = 0.05,
    num_particles: int = 1,
    weight_decay: float = 0.0,
    patience: int = 10,
    tol: float = 1e-3,
    validation: PreferenceData | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    distributed: bool = False,
    ensemble: int = 1,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
):
    """Fit PAL-A to preference data by minibatched SVI (or MAP) and return a
    :class:`~bayespal.posterior.FittedPAL`.

    Parameters mirror the model (DESIGN.md section 2): ``k`` prototypes in a
    ``pref_dim``-dimensional preference space reached by an MLP with ``hidden`` widths;
    ``concentration`` fixes the Dirichlet prior of the user weights (``None`` learns it);
    ``inference="map"`` gives point estimates everywhere (the reference PAL's estimator).

    PAL-B (:mod:`bayespal.models.prompted`): ``prompt_dim`` (the width of the prompt
    features, a map with ``prompt_hidden`` widths of the prompt embedding) makes the
    prototypes functions of each comparison's prompt; ``data`` must carry prompts.
    ``loading_scale`` is the prior sd of the prompt loadings and ``score`` is
    ``"distance"`` (a mixture of rewards, the default) or the reference's ``"cosine"``.
    Optimisation: Adam with ``lr`` and a ``lr_schedule`` decaying to ``lr * lr_final_factor``
    over ``epochs``; stops early after ``patience`` epochs without a ``tol`` improvement of
    the per-comparison loss. With ``validation`` (held-out comparisons of the training
    users) the monitored loss is their posterior-predictive log-loss and the best epoch's
    parameters are kept: early stopping regularises the point-estimated mapping, which
    otherwise overfits. Same ``seed``, same result on CPU.

    ``checkpoint``: a file written atomically every ``checkpoint_every`` epochs and at the
    end. If it exists when ``fit`` starts, the fit resumes from it (it must come from the
    same call: same data, configuration and optimiser settings, else it is refused) and
    ends exactly where an uninterrupted fit ends on CPU.

    ``distributed=True``: data-parallel SVI over the ranks of a ``torchrun`` launch, each
    rank training on its shard of ``data`` (see :mod:`bayespal.distributed`); every rank
    returns the same fit.

    ``ensemble=M > 1``: ``M`` fits with seeds ``seed, seed + 1, ...`` returned as one
    :class:`~bayespal.ensemble.EnsemblePAL` (a deep ensemble over the point-estimated
    mapping; see :mod:`bayespal.ensemble`).
    """
    from bayespal.posterior import FittedPAL

    if ensemble != 1:
        options = {name: value for name, value in locals().items()
                   if name not in ("data", "ensemble", "seed", "FittedPAL")}
        members = _check_positive_int("ensemble", ensemble)
        if checkpoint is not None or distributed:
            raise ValueError(f"ensemble: got {ensemble} with checkpoint or distributed; "
                             "expected ensemble=1 (fit and checkpoint members one by one)")
        from bayespal.ensemble import EnsemblePAL

        return EnsemblePAL.from_members(
            [fit(data, ensemble=1, seed=seed + m, **options) for m in range(members)])

    if not isinstance(data, PreferenceData):
        raise ValueError(f"data: got {type(data).__name__}; expected a PreferenceData")
    batch_size = _check_positive_int("batch_size", batch_size)
    epochs = _check_positive_int("epochs", epochs)
    num_particles = _check_positive_int("num_particles", num_particles)
    patience = _check_positive_int("patience", patience)
    seed = check_seed(seed)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: got {lr_schedule!r}; expected one of {LR_SCHEDULES}")
    lr = check_real("lr", lr, low=0, low_open=True)
    lr_final_factor = check_real("lr_final_factor", lr_final_factor, low=0, high=1, low_open=True)
    weight_decay = check_real("weight_decay", weight_decay, low=0)
    tol = check_real("tol", tol, low=0)
    for name, flag in (("standardize", standardize), ("progress", progress),
                       ("distributed", distributed)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name}: got {flag!r}; expected True or False")
    if validation is not None:
        if not isinstance(validation, PreferenceData):
            raise ValueError(f"validation: got {type(validation).__name__}; expected "
                             "PreferenceData or None")
        if validation.embed_dim != data.embed_dim:
            raise ValueError(f"validation: got items of {validation.embed_dim} dims; expected "
                             f"{data.embed_dim}, the training items' dimension")
    dev = resolve_device(device)
    rank, world_size = 0, 1
    if distributed:
        if validation is not None or checkpoint is not None:
            raise ValueError("distributed: got True with validation or checkpoint; expected "
                             "neither (not supported across ranks yet)")
        rank, world_size, dev = _distributed.setup(dev)
    config = PALConfig(
        k=k,
        pref_dim=pref_dim,
        hidden=tuple(hidden),
        prototype_scale=prototype_scale,
        sharpness_loc=sharpness_loc,
        sharpness_scale=sharpness_scale,
        concentration=concentration,
        inference=inference,
        prompt_dim=prompt_dim,
        prompt_hidden=tuple(prompt_hidden),
        loading_scale=loading_scale,
        score=score,
        position_bias=position_bias,
    )
    if config.prompted and data.prompts is None:
        raise ValueError(f"data: got comparisons without prompts and prompt_dim={prompt_dim}; "
                         "expected prompts (PreferenceData prompt/prompts) for PAL-B")
    pyro.set_rng_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    prompt_embed_dim = data.prompts.shape[1] if config.prompted else None
    model, guide = build(config, data.embed_dim, data.n_users, data.n_comparisons, generator,
                         prompt_embed_dim)
    if standardize:  # the model sees z-scored features: the embeddings' scale is irrelevant
        model.mapping.standardize_from(torch.as_tensor(data.items))
        if config.prompted:
            model.prompt_map.standardize_from(torch.as_tensor(data.prompts))
    warn_about_data(data, config)
    if config.position_bias:  # start from the labels' log-odds: the term's empirical value
        share = float(np.clip(data.label.mean(), 1e-3, 1 - 1e-3))
        with torch.no_grad():
            model.position_bias.fill_(math.log(share / (1 - share)))
    model, guide = model.to(dev), guide.to(dev)
    device_data = DeviceData.from_data(data, dev)
    if world_size > 1:
        _distributed.broadcast_parameters([model, guide])
        device_data = device_data.shard(rank, world_size)
        generator.manual_seed(seed + 7919 * rank)  # each rank its own batches and draws
        torch.manual_seed(seed + 7919 * rank)
    validate = None
    if validation is not None:
        probe = FittedPAL(config=config, model=model, guide=guide, user_ids=data.user_ids,
                          item_ids=data.item_ids, elbo_history=np.zeros(1),
                          epoch_seconds=np.zeros(1), train=None, seed=seed)

        def validate() -> float:
            with torch.random.fork_rng(devices=[]):  # keep the SVI random stream intact
                p = probe.predict_proba(validation, num_samples=32, seed=seed)
            return log_loss(p, validation.label)

    trainer = Trainer(
        model,
        guide,
        device_data,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        lr_schedule=lr_schedule,
        lr_final_factor=lr_final_factor,
        num_particles=num_particles,
        weight_decay=weight_decay,
        patience=patience,
        tol=tol,
        generator=generator,
        validate=validate,
        world_size=world_size,
        n_total=data.n_comparisons,
    )
    path = None
    fingerprint = {}
    if checkpoint is not None:
        path = Path(checkpoint)
        checkpoint_every = _check_positive_int("checkpoint_every", checkpoint_every)
        fingerprint = {
            "config_hash": config.hash(), "data": data_fingerprint(data), "seed": seed,
            "validation": None if validation is None else data_fingerprint(validation),
            "optimiser": [batch_size, epochs, lr, lr_schedule, lr_final_factor, num_particles,
                          weight_decay, patience, tol],
            "standardize": bool(standardize),
        }
        if path.exists():
            trainer.load(path, _json_safe(fingerprint))
    trainer.run(progress, path, checkpoint_every, fingerprint)
    history, seconds, val_history = trainer.history, trainer.seconds, trainer.val_history
    result = FittedPAL(
        config=config,
        model=model.eval(),
        guide=guide.eval(),
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        elbo_history=np.asarray(history),
        epoch_seconds=np.asarray(seconds),
        validation_history=np.asarray(val_history),
        embedding=data.meta.get("embedding"),
        train=data,
        seed=seed,
    )
    warn_if_collapsed(result, data, lr)
    return result


def warn_about_data(data: PreferenceData, config: PALConfig) -> None:
    """Warn when the labels depend on the position of the items (item_a vs item_b): PAL
    scores items, not positions, unless ``position_bias=True``."""
    n = data.n_comparisons
    share = float(data.label.mean())
    z = abs(share - 0.5) * 2 * math.sqrt(n)  # binomial test against 1/2
    if not config.position_bias and z > 5 and abs(share - 0.5) > 0.05:
        warnings.warn(
            f"label: {share:.1%} of {n} comparisons prefer item_a (z = {z:.1f} against 50%); "
            "PAL has no term for an item's position, so if the order of presentation carries "
            "information, fit with position_bias=True (or randomise which item is item_a)",
            UserWarning, stacklevel=3)


def warn_if_collapsed(result, data: PreferenceData, lr: float, n_check: int = 2048) -> None:
    """Warn when a fit learned nothing: on its own training comparisons its predictions all
    lie within 0.02 of 1/2, or their log-loss is no better than a coin's (log 2); or when the
    sharpness left its prior by more than 4 sds (under a too large ``lr`` it falls to ~0 while
    the mapping grows to compensate)."""
    rows = np.linspace(0, data.n_comparisons - 1, min(n_check, data.n_comparisons)).astype(int)
    with torch.random.fork_rng(devices=[]):
        p = result.predict_proba(data.subset(rows), num_samples=16, seed=0)
    spread = float(np.abs(p - 0.5).mean())
    loss = log_loss(p, data.subset(rows).label)
    beta = result.sharpness()[0]
    cfg = result.config
    z = (math.log(max(beta, 1e-300)) - cfg.sharpness_loc) / cfg.sharpness_scale
    if abs(z) > 4:
        warnings.warn(
            f"fit: the sharpness went to {beta:.3g}, {abs(z):.1f} prior sds from its prior "
            f"median {math.exp(cfg.sharpness_loc):.3g}: the optimiser diverged and the mapping "
            f"absorbed the scale; the fit collapsed: try a smaller lr (got {lr:g})",
            RuntimeWarning, stacklevel=3)
    elif spread < 0.02 or loss > math.log(2) - 0.005:
        warnings.warn(
            f"fit: predictions on training comparisons are no better than a coin (mean "
            f"|p - 1/2| {spread:.3f}, log-loss {loss:.4f} vs log 2 = {math.log(2):.4f}; "
            f"sharpness {beta:.3g}, final loss {result.elbo_history[-1]:.4f} per comparison): "
            "the fit collapsed or found no signal; try a smaller "
            f"lr (got {lr:g}) or check the data", RuntimeWarning, stacklevel=3)
