"""Where tensors live: the one rule for turning a device request into a ``torch.device``."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """The device for a request.

    Parameters
    ----------
    device:
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, or a
        ``torch.device``. Asking for CUDA on a machine without it is an error, never a silent
        fall-back to the CPU.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device: got {device!r}; expected 'auto', 'cpu' or 'cuda[:N]'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: got {device!r}; expected 'cpu' or 'auto' (no CUDA device here)")
    return torch.device(device)
