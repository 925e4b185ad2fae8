"""On-disk embedding cache: one folder per embedding configuration, one shard file per
finished batch (safetensors, written atomically), so an interrupted run keeps what it
finished and a rerun embeds nothing twice. Entries are keyed by SHA-256 of the input.

The cache is on by default (``cache_dir="auto"`` of the embedders) in the user's cache
folder, ``platformdirs.user_cache_dir("bayespal")/embeddings`` (e.g.
``~/.cache/bayespal/embeddings`` on Linux), or in ``$BAYESPAL_CACHE_DIR`` when that is
set; ``cache_dir=None`` switches it off. ``cache_usage`` reports its size and
``clear_cache`` empties it (``bayespal cache info`` / ``bayespal cache clear``)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bayespal import files

CACHE_ENV = "BAYESPAL_CACHE_DIR"  # where the default cache lives, if set
_CONFIG_FOLDER = re.compile(r"[0-9a-f]{24}")  # one folder per configuration (its key's hash)


def default_cache_dir() -> Path:
    """The default cache folder: ``$BAYESPAL_CACHE_DIR``, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("bayespal")) / "embeddings"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path | None:
    """An embedder's ``cache_dir`` argument as a folder: ``"auto"`` is
    ``default_cache_dir``, None no cache.

    Parameters
    ----------
    cache_dir:
        ``"auto"``, None or a folder.
    """
    if cache_dir is None:
        return None
    if isinstance(cache_dir, str) and cache_dir == "auto":
        return default_cache_dir()
    return Path(cache_dir)


def _shards(root: Path) -> list[Path]:
    """The cache's shard files: ``<24 hex digits>/*.safetensors``, regular files only."""
    if not root.is_dir():
        return []
    return [f for d in sorted(root.iterdir()) if d.is_dir() and not d.is_symlink()
            and _CONFIG_FOLDER.fullmatch(d.name)
            for f in sorted(d.glob("*.safetensors")) if f.is_file() and not f.is_symlink()]


def cache_usage(root: str | os.PathLike | None = None) -> dict:
    """The cache's folder, number of configurations and shard files, and bytes used.

    Parameters
    ----------
    root:
        The cache folder (default: ``default_cache_dir``).
    """
    folder = default_cache_dir() if root is None else Path(root)
    shards = _shards(folder)
    return {"folder": str(folder), "configurations": len({f.parent for f in shards}),
            "shards": len(shards), "bytes": sum(f.stat().st_size for f in shards)}


def clear_cache(root: str | os.PathLike | None = None) -> dict:
    """Delete the cache's shard files (and their emptied configuration folders); nothing
    else in the folder is touched. Returns ``cache_usage`` of what was removed.

    Parameters
    ----------
    root:
        The cache folder (default: ``default_cache_dir``).
    """
    usage = cache_usage(root)
    folder = Path(usage["folder"])
    for f in _shards(folder):
        f.unlink()
    for d in {f.parent for f in _shards(folder)} | {d for d in folder.glob("*")
                                                    if _CONFIG_FOLDER.fullmatch(d.name)}:
        if d.is_dir() and not d.is_symlink() and not any(d.iterdir()):
            d.rmdir()
    return usage


def content_hash(data: bytes) -> bytes:
    """SHA-256 of an input's bytes: its key in the cache.

    Parameters
    ----------
    data:
        Bytes of one input (text or image).
    """
    return hashlib.sha256(data).digest()


class EmbeddingCache:
    """Vectors by input hash for one configuration (``key``: model, layer, pooling, ...).

    Parameters
    ----------
    root:
        The cache folder.
    key:
        The embedder's configuration hash (one sub-folder per key).
    """

    def __init__(self, root: str | Path, key: dict) -> None:
        text = json.dumps(key, sort_keys=True)
        self.folder = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:24]
        self.key = key
        self._index: dict[bytes, np.ndarray] | None = None

    def _load(self) -> dict[bytes, np.ndarray]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.folder.glob("*.safetensors")):
                if not shard.is_file():  # a FIFO, device or folder (or a link to one)
                    warnings.warn(f"embedding cache: skipped {str(shard)!r}, which is not a "
                                  "regular file", RuntimeWarning, stacklevel=2)
                    continue
                tensors, meta = files.read(shard, kind="embedding-cache")
                if meta.get("key") != self.key:
                    raise files.FileFormatError(
                        f"{shard}: got cache key {meta.get('key')!r}; expected {self.key!r}")
                hashes = tensors["hashes"].numpy()
                vectors = tensors["vectors"].numpy()
                for h, v in zip(hashes, vectors, strict=True):
                    self._index[h.tobytes()] = v
        return self._index

    def get(self, hashes: list[bytes]) -> list[np.ndarray | None]:
        """The cached vectors of inputs (None where absent).

        Parameters
        ----------
        hashes:
            Content hashes of inputs.
        """
        index = self._load()
        return [index.get(h) for h in hashes]

    def put(self, hashes: list[bytes], vectors: np.ndarray) -> None:
        """Store one finished batch as its own shard.

        Parameters
        ----------
        hashes:
            Content hashes of inputs.
        vectors:
            Their embeddings, one row each.
        """
        if not hashes:
            return
        name = hashlib.sha256(b"".join(hashes)).hexdigest()[:24] + ".safetensors"
        tensors = {
            "hashes": torch.from_numpy(np.frombuffer(b"".join(hashes), np.uint8)
                                       .reshape(len(hashes), 32).copy()),
            "vectors": torch.from_numpy(np.ascontiguousarray(vectors)),
        }
        files.write_atomic(self.folder / name, tensors, {"key": self.key},
                                kind="embedding-cache")
        index = self._load()
        for h, v in zip(hashes, vectors, strict=True):
            index[h] = v


def embed_batched(
    inputs: Sequence,
    hashes: list[bytes],
    embed: Callable[[list], np.ndarray],
    cache: EmbeddingCache | None,
    *,
    batch_size: int,
    dtype: np.dtype,
    order_key: Callable[[int], object] | None = None,
    progress: bool = True,
    desc: str = "embedding",
) -> np.ndarray:
    """Embed ``inputs`` in batches, skipping those in ``cache`` and storing each finished
    batch there; ``order_key`` orders the work (e.g. by length); results in input order.

    Parameters
    ----------
    inputs:
        The inputs.
    hashes:
        Their content hashes.
    embed:
        A batch of inputs -> (b, D).
    cache:
        An EmbeddingCache or None.
    batch_size:
        Inputs per call of embed.
    dtype:
        Of the result.
    order_key:
        Sort key for batching (e.g. text length).
    """
    result: list[np.ndarray | None] = cache.get(hashes) if cache else [None] * len(inputs)
    todo = sorted((i for i, v in enumerate(result) if v is None), key=order_key)
    for s in tqdm(range(0, len(todo), batch_size), desc=desc, disable=not progress,
                  leave=False):
        idx = todo[s : s + batch_size]
        vecs = embed([inputs[i] for i in idx]).astype(dtype)
        if cache:
            cache.put([hashes[i] for i in idx], vecs)
        for i, v in zip(idx, vecs, strict=True):
            result[i] = v
    if not result:
        return np.zeros((0, 0), dtype)
    return np.stack(result).astype(dtype)
