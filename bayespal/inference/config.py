"""How a model is fitted: ``TrainConfig`` (validated once, hashable, JSON-serialisable)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from bayespal.checks import check_fields, check_int, check_real, check_seed, fail

INFERENCE_METHODS = ("svi", "map")
LR_SCHEDULES = ("constant", "cosine", "exponential", "plateau")


@dataclass(frozen=True)
class TrainConfig:
    """The fitting procedure: estimator, optimiser, schedule, stopping, device and seed.

    Parameters
    ----------
    inference:
        ``"svi"``: Bayesian, a mean-field variational posterior over prototypes, loadings,
        sharpness and each user's weights; ``"map"``: point estimates everywhere (the
        reference PAL's estimator).
    batch_size:
        Comparisons per optimiser step.
    epochs:
        The most passes over the data (for ``"cosine"`` and ``"exponential"``: the
        schedule's length).
    lr, lr_schedule, lr_final_factor:
        AdamW's learning rate and its schedule: ``"plateau"`` (default) multiplies it by
        0.3 whenever the monitored loss has not improved for ``patience`` epochs and stops
        when it would fall below ``lr * lr_final_factor`` (the data decide how long the
        fit runs); ``"cosine"`` or ``"exponential"`` decay it to ``lr * lr_final_factor``
        over ``epochs``; ``"constant"`` keeps it.
    num_particles:
        ELBO particles per step.
    weight_decay:
        AdamW weight decay of the maps' weights (a Gaussian prior on them, MAP).
    patience, tol:
        ``patience`` epochs without a ``tol`` (nats per comparison) improvement of the
        monitored loss (the validation log-loss, or without validation the training loss)
        lower the rate (``"plateau"``) or stop the fit (the other schedules).
    validation_fraction:
        Share of every user's comparisons held out to steer the fit when no
        ``validation=`` data are given: the validation log-loss drives the schedule and
        early stopping, the best epoch is kept, and it chooses the mapping's size
        (``ModelConfig(hidden=None)``). ``0`` monitors the training loss instead.
    refit:
        After validation on an internal split, refit the chosen configuration on all
        comparisons for the best epoch's number of epochs, replaying its learning rates.
        Off by default: the held-out share is then lost to the fit, but the refit is not
        validated, and an epoch count does not transfer to other data reliably (measured:
        a refit's calibration slope 0.53 where the validated fit's was 0.84).
    local_epochs:
        After the main run, each user's own variational parameters (SVI: their weights'
        Dirichlet concentrations; MAP: their weights) are optimised alone for this many
        epochs with every shared parameter held fixed (lr 0.05, cosine to
        ``lr_final_factor``): the local step of stochastic variational inference, which a
        joint run stopped by its shared parameters leaves unfinished (measured: mixed
        users' 90% intervals covered 95-97% before it, 88-91% after, with lower held-out
        log-loss; about 10-20% of a fit's time). ``0`` skips it; ``k=1`` has nothing to
        refine.
    compile:
        Build the training step with ``torch.compile`` (traced once, replayed every step;
        the ELBO's value and gradients are Pyro's ``Trace_ELBO``'s either way, see
        ``bayespal.inference.elbo``). ``"auto"`` (default): on a CUDA device with triton,
        where a step is otherwise dominated by kernel launches; not on the CPU, where
        compiling costs about a minute on a small machine and a step is dominated by
        arithmetic (``benchmarks/fit_throughput.py`` measures both). ``True`` compiles
        (an error where ``torch.compile`` cannot run), ``False`` never. Compiled steps
        draw their random numbers through the compiler's generator: the same seed gives
        the same fit only with the same setting.
    standardize:
        Centre the item (and prompt) embeddings and scale them to unit RMS norm before the
        maps (from the training tables), so their offset and scale do not matter.
    device:
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``. Not part of ``hash``: where a fit runs
        does not change what it fits (beyond rounding).
    seed:
        Seeds the initialisation, the batches and the ELBO's draws; same seed, same fit on
        the CPU.
    """

    inference: str = "svi"
    batch_size: int = 1024
    epochs: int = 400
    lr: float = 0.01
    lr_schedule: str = "plateau"
    lr_final_factor: float = 0.01
    num_particles: int = 1
    weight_decay: float = 0.0
    patience: int = 20
    tol: float = 1e-3
    validation_fraction: float = 0.1
    refit: bool = False
    local_epochs: int = 50
    compile: bool | str = "auto"
    standardize: bool = True
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if self.inference not in INFERENCE_METHODS:
            raise fail("inference", self.inference, f"one of {INFERENCE_METHODS}")
        for name in ("batch_size", "epochs", "num_particles", "patience"):
            put(name, check_int(name, getattr(self, name), 1))
        put("local_epochs", check_int("local_epochs", self.local_epochs, 0))
        if self.lr_schedule not in LR_SCHEDULES:
            raise fail("lr_schedule", self.lr_schedule, f"one of {LR_SCHEDULES}")
        put("lr", check_real("lr", self.lr, low=0, low_open=True))
        put("lr_final_factor", check_real("lr_final_factor", self.lr_final_factor, low=0,
                                          high=1, low_open=True))
        put("weight_decay", check_real("weight_decay", self.weight_decay, low=0))
        put("tol", check_real("tol", self.tol, low=0))
        put("validation_fraction", check_real("validation_fraction", self.validation_fraction,
                                              low=0, high=0.5))
        for name in ("standardize", "refit"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise fail(name, getattr(self, name), "True or False")
            put(name, bool(getattr(self, name)))
        if isinstance(self.compile, (bool, np.bool_)):
            put("compile", bool(self.compile))
        elif self.compile != "auto":
            raise fail("compile", self.compile, "True, False or 'auto'")
        if not isinstance(self.device, str):
            put("device", str(self.device))
        put("seed", check_seed(self.seed))

    @property
    def bayesian(self) -> bool:
        """Whether the fit is a posterior (SVI) rather than point estimates (MAP)."""
        return self.inference == "svi"

    def to_dict(self) -> dict:
        """The fields as JSON types."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The configuration from ``to_dict``'s output; unknown keys are an error. Files
        written before ``local_epochs`` existed were fitted without it: it reads as ``0``;
        before ``compile``, steps were never compiled: it reads as ``False``."""
        d = {"local_epochs": 0, "compile": False, **check_fields("train config", d, cls)}
        return cls(**d)

    def hash(self) -> str:
        """16 hex digits of SHA-256 over the sorted JSON fields, without ``device``."""
        d = self.to_dict()
        d.pop("device")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
