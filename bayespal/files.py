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

import fcntl
import glob
import hashlib
import json
import os
import stat
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


class FileWriteError(OSError):
    """A file that could not be written where the user asked (the message names that path
    and the reason); nothing is left half-written under that name."""


MAX_FILE_BYTES = 64 * 2**30  # the largest file ``read`` opens
MAX_HEADER_BYTES = 256 * 2**20  # the largest safetensors header (JSON) it parses
TEMP_SUFFIX = ".tmp"


def _digest(tensors: dict[str, torch.Tensor], meta_json: str) -> str:
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _write_error(path: Path, err: OSError) -> FileWriteError:
    reason = err.strerror or type(err).__name__
    if isinstance(err, (FileExistsError, NotADirectoryError)):
        reason = "a part of the path above it is a file, not a folder"
    return FileWriteError(f"path: could not write {str(path)!r} ({reason}); expected a "
                          "writable file path")


def _target(path: str | os.PathLike) -> Path:
    """The path to write, checked: not a folder, its parent a folder (created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise FileWriteError(f"path: got {str(path)!r}, which is a folder; expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(path, err) from err
    if not path.parent.is_dir():
        raise FileWriteError(f"path: could not write {str(path)!r} (its parent is not a "
                             "folder); expected a writable file path")
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of ``path`` left by writers that died (kill -9). A live writer
    holds an exclusive lock on its temporary, so a file we can lock is stale."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a writer is alive
                tmp.unlink(missing_ok=True)
        except OSError:
            pass  # locked: another process is writing it right now
        finally:
            os.close(fd)


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary beside ``path``, exclusively locked for as long as it is open."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # a cleaner may have taken it between mkstemp and the lock: then make another
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def check_writable(path: str | os.PathLike, probe_bytes: int = 2**20) -> Path:
    """Check, before long work, that ``path`` can be written: not a folder, a writable
    parent with room for ``probe_bytes`` (a temporary is written and removed).

    Parameters
    ----------
    path:
        The file a result will be written to.
    probe_bytes:
        Size of the probe written (and removed) beside it.
    """
    path = _target(path)
    try:
        fd, tmp = _locked_temporary(path)
    except OSError as err:
        raise _write_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * probe_bytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise _write_error(path, err) from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_atomic(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict,
                 kind: str) -> None:
    """Write tensors and JSON-able ``meta`` to ``path`` atomically.

    Parameters
    ----------
    path:
        The file to (over)write; a reader sees the old file or the new one, never a part.
    tensors, meta:
        The content; ``meta`` is stored as JSON with a SHA-256 of everything.
    kind:
        What the file holds (``"model"``, ``"checkpoint"``); ``read`` checks it.

    Raises
    ------
    FileWriteError
        When the file cannot be written (a folder, no permission, a full disk), naming
        ``path`` and the reason. Temporaries left by killed writers of the same path are
        removed on the next write.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_json = json.dumps(meta, sort_keys=True)
    header = {"format": FORMAT, "kind": kind, "meta": meta_json,
              "sha256": _digest(tensors, meta_json)}
    write_bytes_atomic(path, st_save(tensors, metadata=header))


def write_bytes_atomic(path: str | os.PathLike, blob: bytes) -> None:
    """Write ``blob`` to ``path`` atomically (a temporary beside it, synced, then moved into
    place): a reader sees the old file or the new one, never a part.

    Parameters
    ----------
    path:
        The file to (over)write.
    blob:
        Its new content.

    Raises
    ------
    FileWriteError
        As ``write_atomic``.
    """
    path = _target(path)
    _remove_stale_temporaries(path)
    try:
        fd, tmp = _locked_temporary(path)
    except OSError as err:
        raise _write_error(path, err) from err
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make results private by surprise
        with os.fdopen(fd, "wb") as f:  # closing the file releases the lock
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, err) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_regular_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; FIFOs, devices and folders are
    refused without blocking (also behind a symlink).

    Parameters
    ----------
    path:
        The file.
    max_bytes:
        The largest size accepted.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise FileFormatError(f"path: got {str(path)!r}; expected a readable file ({err})") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileFormatError(f"path: got {str(path)!r}, which is not a regular file "
                                  "(a folder, FIFO or device); expected a bayespal file")
        if info.st_size > max_bytes:
            raise FileFormatError(f"path: got {str(path)!r} of {info.st_size} bytes; expected "
                                  f"at most {max_bytes}")
        chunks, left = [], info.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 2**26))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read(path: str | os.PathLike, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a file written by ``write_atomic`` with the same ``kind``.

    Parameters
    ----------
    path:
        A file written by write_atomic.
    kind:
        The kind it must declare ('model', 'checkpoint', ...).
    """
    path = Path(path)
    blob = read_regular_file(path)
    try:
        header = _header(blob)
        if not isinstance(header, dict):
            raise ValueError("the metadata block is not a JSON object")
        tensors = st_load(blob)
    except (SafetensorError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise FileFormatError(f"{path}: got an unreadable or truncated file; expected a "
                              f"bayespal {kind} file ({type(err).__name__}: "
                              f"{str(err)[:200]})") from err
    if header.get("format") != FORMAT or header.get("kind") != kind:
        raise FileFormatError(f"{path}: got format {header.get('format')!r}, kind "
                              f"{header.get('kind')!r}; expected a bayespal {kind} file")
    meta_json = header.get("meta", "")
    if not isinstance(meta_json, str) or _digest(tensors, meta_json) != header.get("sha256"):
        raise FileFormatError(f"{path}: got contents that do not match their checksum; "
                              "expected an unmodified file")
    try:
        meta = json.loads(meta_json)
    except (ValueError, RecursionError) as err:
        raise FileFormatError(f"{path}: got metadata that is not readable JSON; expected a "
                              f"bayespal {kind} file ({type(err).__name__})") from err
    if not isinstance(meta, dict):
        raise FileFormatError(f"{path}: got metadata of type {type(meta).__name__}; expected "
                              "a JSON object")
    return tensors, meta


def _header(blob: bytes) -> dict:
    """The safetensors ``__metadata__`` block (the first 8 bytes give the header size)."""
    if len(blob) < 8:
        raise ValueError("file shorter than a safetensors header")
    size = int.from_bytes(blob[:8], "little")
    if size <= 0 or 8 + size > len(blob) or size > MAX_HEADER_BYTES:
        raise ValueError(f"header size {size} out of range")
    top = json.loads(blob[8 : 8 + size])
    if not isinstance(top, dict):
        raise ValueError("the safetensors header is not a JSON object")
    return top.get("__metadata__", {})


# ---------------------------------------------------------------------- training state
def flatten_state(prefix: str, state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move the tensors of a nested state dict into ``tensors`` (named by path) and
    return a JSON-able skeleton that points at them.

    Parameters
    ----------
    prefix:
        Name prefix of the tensors.
    state:
        Nested dicts, lists, numbers and tensors.
    tensors:
        Receives the tensors by name.
    """
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
    """Inverse of ``flatten_state`` (dict keys keep their JSON types: int or str).

    Parameters
    ----------
    skeleton:
        The JSON skeleton from flatten_state.
    tensors:
        The tensors it names.
    """
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            return [unflatten_state(v, tensors) for v in skeleton["__list__"]]
    return skeleton
