"""Save and load fitted models: one safetensors file (tensors) with JSON metadata
(configuration and its hash, library and format versions, id maps, histories), written
atomically and checksummed. Loading never unpickles and never runs code from the file."""

from __future__ import annotations

import os

import numpy as np
import torch

from bayespal import checkpoint
from bayespal.checkpoint import FileFormatError
from bayespal.models import PALConfig, build

FORMAT_VERSION = 1
KIND = "model"


def _encode_ids(name: str, ids: np.ndarray) -> dict:
    values = ids.tolist()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return {"type": "int", "values": values}
    if all(isinstance(v, str) for v in values):
        return {"type": "str", "values": values}
    bad = next(v for v in values if not isinstance(v, (int, str)) or isinstance(v, bool))
    raise ValueError(f"{name}: got an id of type {type(bad).__name__} ({bad!r}); expected "
                     "int or str ids to save a model")


def _decode_ids(spec: dict) -> np.ndarray:
    if spec["type"] == "int":
        return np.asarray(spec["values"], dtype=np.int64)
    return np.asarray(spec["values"], dtype=object)


def save(fit, path: str | os.PathLike, include_items: bool = True) -> None:
    """Write ``fit`` to ``path`` atomically. With ``include_items`` the training item
    table is stored too, so the loaded fit can place new users without it."""
    from bayespal import __version__
    from bayespal.posterior import FittedPAL

    if not isinstance(fit, FittedPAL):
        raise ValueError(f"fit: got {type(fit).__name__}; expected a FittedPAL (save an "
                         "ensemble's members one by one)")
    tensors = {f"model.{k}": v for k, v in fit.model.state_dict().items()}
    tensors.update({f"guide.{k}": v for k, v in fit.guide.state_dict().items()})
    if include_items and fit.train is not None:
        tensors["items"] = torch.from_numpy(np.ascontiguousarray(fit.train.items))
        if fit.prompted and fit.train.prompts is not None:
            tensors["prompts"] = torch.from_numpy(np.ascontiguousarray(fit.train.prompts))
    meta = {
        "format_version": FORMAT_VERSION,
        "bayespal_version": __version__,
        "config": fit.config.to_dict(),
        "config_hash": fit.config.hash(),
        "user_ids": _encode_ids("user_ids", np.asarray(fit.user_ids)),
        "item_ids": _encode_ids("item_ids", np.asarray(fit.item_ids)),
        "embed_dim": fit.model.mapping.net[0].in_features,
        "n_comparisons": fit.model.n_comparisons,
        "prompt_embed_dim": getattr(fit.model, "prompt_embed_dim", None),
        "prompt_ids": None if "prompts" not in tensors
        else _encode_ids("prompt_ids", np.asarray(fit.train.prompt_ids)),
        "elbo_history": [float(x) for x in fit.elbo_history],
        "epoch_seconds": [float(x) for x in fit.epoch_seconds],
        "validation_history": [float(x) for x in (fit.validation_history
                                                  if fit.validation_history is not None else [])],
        "seed": int(fit.seed),
        "embedding": fit.embedding,
    }
    checkpoint.write_atomic(path, tensors, meta, kind=KIND)


def load(path: str | os.PathLike, device: str = "cpu"):
    """Read a model written by :func:`save` (or ``FittedPAL.save``)."""
    from bayespal.data import PreferenceData
    from bayespal.inference import resolve_device
    from bayespal.posterior import FittedPAL

    tensors, meta = checkpoint.read(path, kind=KIND)
    if meta.get("format_version") != FORMAT_VERSION:
        raise FileFormatError(f"{path}: got format_version {meta.get('format_version')!r}; "
                              f"expected {FORMAT_VERSION} (written by an incompatible bayespal)")
    config = PALConfig.from_dict(meta["config"])
    if config.hash() != meta["config_hash"]:
        raise FileFormatError(f"{path}: got config_hash {meta['config_hash']!r}; expected "
                              f"{config.hash()!r} for the stored configuration")
    user_ids, item_ids = _decode_ids(meta["user_ids"]), _decode_ids(meta["item_ids"])
    try:
        model, guide = build(config, meta["embed_dim"], len(user_ids), meta["n_comparisons"],
                             torch.Generator(), meta.get("prompt_embed_dim"))
    except ValueError as err:
        raise FileFormatError(f"{path}: got an inconsistent PAL-B description ({err})") from err
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        guide.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("guide.")})
    except RuntimeError as err:
        raise FileFormatError(f"{path}: got tensors that do not fit the stored configuration; "
                              f"expected a consistent model file ({err})") from err
    dev = resolve_device(device)
    train = None
    if "items" in tensors:  # an item table only (no comparisons): enough to place new users
        items = tensors["items"].numpy()
        prompts = tensors["prompts"].numpy() if "prompts" in tensors else None
        train = PreferenceData(np.zeros(0, np.int64), np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros(0, np.float32), items,
                               user_ids, item_ids,
                               None if prompts is None else np.zeros(0, np.int64), prompts,
                               None if prompts is None else _decode_ids(meta["prompt_ids"]))
    return FittedPAL(
        config=config, model=model.to(dev).eval(), guide=guide.to(dev).eval(),
        user_ids=user_ids, item_ids=item_ids,
        elbo_history=np.asarray(meta["elbo_history"]),
        epoch_seconds=np.asarray(meta["epoch_seconds"]),
        validation_history=np.asarray(meta["validation_history"]), train=train,
        seed=meta["seed"], embedding=meta.get("embedding"),
    )


__all__ = ["FileFormatError", "load", "save"]

