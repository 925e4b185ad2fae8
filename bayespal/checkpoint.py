"""Safe, atomic files: safetensors for tensors, JSON metadata; never pickle.

``write_atomic`` writes a temporary file beside the target, flushes it to disk and
renames it over the target, so a reader sees the old file or the new one, never half of
one (also after a SIGKILL). ``read`` refuses truncated, foreign or tampered files with
a clear error: the file carries a SHA-256 of its tensors and metadata.

Training checkpoints (``fit(..., checkpoint=...)``) hold everything the SVI loop needs
to continue exactly where it stopped: parameters, optimizer and schedule state, the
random number generators, the loss histories and the early-stopping state.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT = "bayespal"


class FileFormatError(ValueError):
    """A file that is not a valid bayespal file (truncated, foreign, tampered or mismatched)."""


def _digest(tensors: dict[str, torch.Tensor], meta_json: str) -> str:
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_atomic(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict,
                 kind: str) -> None:
    """Write tensors and JSON-able ``meta`` to ``path`` atomically."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_json = json.dumps(meta, sort_keys=True)
    header = {"format": FORMAT, "kind": kind, "meta": meta_json,
              "sha256": _digest(tensors, meta_json)}
    blob = st_save(tensors, metadata=header)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make results private by surprise
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a file written by :func:`write_atomic` with the same ``kind``."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise FileFormatError(f"path: got {str(path)!r}; expected a readable file ({err})") from err
    try:
        tensors = st_load(blob)
        header = _header(blob)
    except (SafetensorError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise FileFormatError(f"{path}: got an unreadable or truncated file; expected a "
                              f"bayespal {kind} file ({err})") from err
    if header.get("format") != FORMAT or header.get("kind") != kind:
        raise FileFormatError(f"{path}: got format {header.get('format')!r}, kind "
                              f"{header.get('kind')!r}; expected a bayespal {kind} file")
    meta_json = header.get("meta", "")
    if _digest(tensors, meta_json) != header.get("sha256"):
        raise FileFormatError(f"{path}: got contents that do not match their checksum; "
                              "expected an unmodified file")
    return tensors, json.loads(meta_json)


def _header(blob: bytes) -> dict:
    """The safetensors ``__metadata__`` block (the first 8 bytes give the header size)."""
    if len(blob) < 8:
        raise ValueError("file shorter than a safetensors header")
    size = int.from_bytes(blob[:8], "little")
    if size <= 0 or 8 + size > len(blob):
        raise ValueError("header size out of range")
    return json.loads(blob[8 : 8 + size]).get("__metadata__", {})


# ---------------------------------------------------------------------- training state
def flatten_state(prefix: str, state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move the tensors of a nested state dict into ``tensors`` (named by path) and
    return a JSON-able skeleton that points at them."""
    if torch.is_tensor(state):
        name = prefix
        tensors[name] = state
        return {"__tensor__": name}
    if isinstance(state, dict):
        return {"__dict__": [[k, flatten_state(f"{prefix}/{k}", v, tensors)]
                             for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        return {"__list__": [flatten_state(f"{prefix}/{i}", v, tensors) for i, v in enumerate(state)]}
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"state: got {type(state).__name__} at {prefix}; expected tensors, "
                    "containers and plain values")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state` (dict keys keep their JSON types: int or str)."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            return [unflatten_state(v, tensors) for v in skeleton["__list__"]]
    return skeleton
