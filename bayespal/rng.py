"""Randomness without side effects: results that draw random numbers are seeded locally and
leave torch's global random state as they found it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def keeps_global_rng(fn: F) -> F:
    """Run ``fn`` inside ``torch.random.fork_rng`` (CPU and every CUDA device), so seeding
    inside it never changes what the caller's later random draws are.

    Parameters
    ----------
    fn:
        The function to wrap.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
