"""Callbacks: what a fit reports at the end of every epoch, and a TensorBoard logger.

A callback is any object with an ``on_epoch_end(info)`` method (or a plain function of
``info``), and optionally ``on_fit_end(info)``; pass a list of them to
``bayespal.fit`` (``callbacks=[...]``). ``info`` is an ``EpochInfo``. A callback
that returns ``True`` from ``on_epoch_end`` stops the fit after that epoch (``stopped =
"callback"``; with validation the best epoch so far is kept, as for any stop). A self-tuning
fit trains several runs (one per candidate size, and a refit if asked for): ``info.run``
names each, and every run calls ``on_fit_end`` once.

Callbacks run on the host after the epoch's one read of the loss, so they add no device
synchronisation. In a distributed fit every rank calls them (check
``torch.distributed.get_rank()`` to log once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOP_REASONS = ("epochs", "plateau", "callback")


@dataclass(frozen=True)
class EpochInfo:
    """One epoch of one training run.

    Attributes
    ----------
    run:
        Which run of the fit (e.g. ``"hidden=(16,)"`` for a candidate size, ``"refit"``).
    epoch:
        The epoch just finished, from 1.
    max_epochs:
        The most epochs this run may take.
    loss:
        The training loss (negative ELBO per comparison; MAP: the negative log joint).
    validation_loss:
        The held-out log-loss (None without validation).
    best_epoch:
        With validation: the epoch whose parameters would be kept now; else 0.
    lr:
        The learning rate the epoch started at.
    seconds:
        The epoch's wall time.
    stopped:
        Set on a run's last epoch (and in ``on_fit_end``): ``"epochs"`` (ran them all),
        ``"plateau"`` (no improvement by ``tol`` at the lowest learning rate) or
        ``"callback"``; None before.
    """

    run: str
    epoch: int
    max_epochs: int
    loss: float
    validation_loss: float | None
    best_epoch: int
    lr: float
    seconds: float
    stopped: str | None = None


def check_callbacks(callbacks: Any) -> tuple[Any, ...]:
    """The callbacks as a tuple, each with ``on_epoch_end`` or callable; a clear error else.

    Parameters
    ----------
    callbacks:
        None or a sequence of callbacks.
    """
    if callbacks is None:
        return ()
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise ValueError(f"callbacks: got {type(callbacks).__name__}; expected a list of "
                         "callbacks (objects with on_epoch_end, or functions of EpochInfo)")
    for i, cb in enumerate(callbacks):
        if not (hasattr(cb, "on_epoch_end") or callable(cb)):
            raise ValueError(f"callbacks[{i}]: got {type(cb).__name__}; expected an object "
                             "with on_epoch_end(info) or a function of EpochInfo")
    return tuple(callbacks)


def epoch_end(callbacks: Sequence[Any], info: EpochInfo) -> bool:
    """Call every callback's ``on_epoch_end``; True if any asks the fit to stop.

    Parameters
    ----------
    callbacks:
        From ``check_callbacks``.
    info:
        The epoch.
    """
    stop = False
    for cb in callbacks:
        hook: Callable = cb.on_epoch_end if hasattr(cb, "on_epoch_end") else cb
        stop = bool(hook(info)) or stop  # every callback sees every epoch
    return stop


def fit_end(callbacks: Sequence[Any], info: EpochInfo) -> None:
    """Call ``on_fit_end`` of the callbacks that have one.

    Parameters
    ----------
    callbacks:
        From ``check_callbacks``.
    info:
        The run's last epoch (``stopped`` set).
    """
    for cb in callbacks:
        if hasattr(cb, "on_fit_end"):
            cb.on_fit_end(info)


class TensorBoard:
    """Logs every epoch to TensorBoard (``torch.utils.tensorboard``; needs the
    ``tensorboard`` package: ``pip install "bayespal[tensorboard]"``).

    Scalars per run (``info.run``): ``<run>/loss/train``, ``<run>/loss/validation``,
    ``<run>/lr`` and ``<run>/seconds``, at step = epoch; at a run's end the text
    ``<run>/stopped`` says why and which epoch was kept. View with ``tensorboard --logdir``.

    Parameters
    ----------
    log_dir:
        The folder of the event files.
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # tensorboard itself is missing
            raise ImportError("TensorBoard: needs the tensorboard package (pip install "
                              f"tensorboard): {err}") from err
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, info: EpochInfo) -> None:
        w, tag = self.writer, info.run
        w.add_scalar(f"{tag}/loss/train", info.loss, info.epoch)
        if info.validation_loss is not None:
            w.add_scalar(f"{tag}/loss/validation", info.validation_loss, info.epoch)
        w.add_scalar(f"{tag}/lr", info.lr, info.epoch)
        w.add_scalar(f"{tag}/seconds", info.seconds, info.epoch)

    def on_fit_end(self, info: EpochInfo) -> None:
        self.writer.add_text(f"{info.run}/stopped", stop_message(info), info.epoch)
        self.writer.flush()

    def close(self) -> None:
        """Close the event file."""
        self.writer.close()


def stop_message(info: EpochInfo) -> str:
    """A sentence on why and where a run ended (for the progress bar and logs).

    Parameters
    ----------
    info:
        The run's last epoch.
    """
    why = {"epochs": f"ran all {info.max_epochs} epochs",
           "plateau": ("stopped early: the monitored loss stopped improving at the lowest "
                       "learning rate"),
           "callback": "stopped by a callback"}.get(info.stopped or "", "ended")
    text = f"{info.run}: {why} at epoch {info.epoch}"
    if info.validation_loss is not None and info.best_epoch:
        text += f"; kept epoch {info.best_epoch} (best validation log-loss)"
    return text
