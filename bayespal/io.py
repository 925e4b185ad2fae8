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
    bad = next((v for v in values if not isinstance(v, (int, str)) or isinstance(v, bool)),
               values[0] if values else None)
    raise ValueError(f"{name}: got ids of mixed or unsupported types (e.g. "
                     f"{type(bad).__name__} {bad!r}); expected all int or all str ids to save "
                     "a model")


def _decode_ids(path, name: str, spec, count: int | None = None) -> np.ndarray:
    """Ids stored by :func:`_encode_ids`, checked: one declared type, unique, and ``count``
    of them when the tensors fix how many there must be."""
    if not (isinstance(spec, dict) and set(spec) == {"type", "values"}
            and spec["type"] in ("int", "str") and isinstance(spec["values"], list)):
        raise FileFormatError(f"{path}: got {name} {str(spec)[:60]!r}; expected "
                              "{'type': 'int' or 'str', 'values': [...]}")
    values = spec["values"]
    want = int if spec["type"] == "int" else str
    if not all(type(v) is want for v in values):
        raise FileFormatError(f"{path}: got {name} values that are not all {spec['type']}; "
                              "expected ids of the declared type")
    if count is not None and len(values) != count:
        raise FileFormatError(f"{path}: got {len(values)} {name}; expected {count}, one per "
                              "row of the stored tensors")
    if len(set(values)) != len(values):
        raise FileFormatError(f"{path}: got repeated {name}; expected unique ids")
    if spec["type"] == "int":
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=object)


def _is_int(v) -> bool:
    return type(v) is int


def _is_float_list(v) -> bool:
    return isinstance(v, list) and all(type(x) in (int, float) for x in v)


# every key a model file's metadata holds, with its check (unknown keys are refused)
_META = {
    "format_version": _is_int,
    "bayespal_version": lambda v: isinstance(v, str),
    "config": lambda v: isinstance(v, dict),
    "config_hash": lambda v: isinstance(v, str),
    "user_ids": lambda v: isinstance(v, dict),
    "item_ids": lambda v: isinstance(v, dict),
    "embed_dim": lambda v: _is_int(v) and 0 < v <= MAX_DIM,
    "n_comparisons": lambda v: _is_int(v) and v >= 0,
    "prompt_embed_dim": lambda v: v is None or (_is_int(v) and 0 < v <= MAX_DIM),
    "prompt_ids": lambda v: v is None or isinstance(v, dict),
    "elbo_history": _is_float_list,
    "epoch_seconds": _is_float_list,
    "validation_history": _is_float_list,
    "seed": lambda v: _is_int(v) and 0 <= v < 2**64,
    "embedding": lambda v: v is None or isinstance(v, dict),
}
MAX_DIM = 2**20  # the widest embedding (or layer) a file may declare


def _check_meta(path, meta: dict) -> None:
    unknown = sorted(set(meta) - set(_META))
    missing = sorted(set(_META) - set(meta) - {"prompt_embed_dim", "prompt_ids", "embedding"})
    if unknown or missing:
        raise FileFormatError(f"{path}: got metadata keys unknown={unknown}, missing={missing}; "
                              "expected a bayespal model file")
    for key, ok in _META.items():
        if key in meta and not ok(meta[key]):
            raise FileFormatError(f"{path}: got {key}={str(meta[key])[:60]!r}; expected a "
                                  "valid value for a model file")


def _user_count(path, guide_state: dict, config: PALConfig) -> int:
    """The number of users the guide's tensors hold (K = 1 stores no per-user tensor)."""
    for key in ("weights_raw_concentration", "weights_logits"):
        if key in guide_state:
            t = guide_state[key]
            if t.dim() != 2 or t.shape[1] != config.k:
                raise FileFormatError(f"{path}: got {key} of shape {tuple(t.shape)}; expected "
                                      f"(users, {config.k})")
            return t.shape[0]
    return None  # type: ignore[return-value]


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
    _check_meta(path, meta)
    if meta["format_version"] != FORMAT_VERSION:
        raise FileFormatError(f"{path}: got format_version {meta['format_version']!r}; "
                              f"expected {FORMAT_VERSION} (written by an incompatible bayespal)")
    try:
        config = PALConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as err:
        raise FileFormatError(f"{path}: got an invalid configuration ({err}); expected the "
                              "configuration of a bayespal model") from err
    if config.hash() != meta["config_hash"]:
        raise FileFormatError(f"{path}: got config_hash {meta['config_hash']!r}; expected "
                              f"{config.hash()!r} for the stored configuration")
    if any(not 0 < h <= MAX_DIM for h in (config.k, config.pref_dim, *config.hidden,
                                           config.prompt_dim or 1, *config.prompt_hidden)):
        raise FileFormatError(f"{path}: got a configuration with a size above {MAX_DIM}; "
                              "expected a model that fits in memory")
    prompt_dim = meta.get("prompt_embed_dim")
    if config.prompted != (prompt_dim is not None):
        raise FileFormatError(f"{path}: got prompt_embed_dim={prompt_dim!r} for a "
                              f"{'PAL-B' if config.prompted else 'PAL-A'} configuration; "
                              "expected a consistent model file")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    guide_state = {k[6:]: v for k, v in tensors.items() if k.startswith("guide.")}
    n_users = _user_count(path, guide_state, config)
    user_ids = _decode_ids(path, "user_ids", meta["user_ids"], n_users)
    items = tensors.get("items")
    if items is not None and (items.dim() != 2 or items.shape[1] != meta["embed_dim"]):
        raise FileFormatError(f"{path}: got an item table of shape {tuple(items.shape)}; "
                              f"expected (items, {meta['embed_dim']})")
    item_ids = _decode_ids(path, "item_ids", meta["item_ids"],
                           None if items is None else items.shape[0])
    # Build on the meta device first: no memory is allocated for the sizes the metadata
    # claims until they are known to match the tensors actually in the file.
    with torch.device("meta"):
        shape_model, shape_guide = build(config, meta["embed_dim"], len(user_ids),
                                         meta["n_comparisons"], None, prompt_dim)
    for part, state, module in (("model", model_state, shape_model),
                                ("guide", guide_state, shape_guide)):
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        have = {k: tuple(v.shape) for k, v in state.items()}
        if want != have:
            bad = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
            raise FileFormatError(f"{path}: got {part} tensors that do not fit the stored "
                                  f"configuration (first mismatch: {bad[0]!r}); expected a "
                                  "consistent model file")
    model, guide = build(config, meta["embed_dim"], len(user_ids), meta["n_comparisons"],
                         torch.Generator(), prompt_dim)
    model.load_state_dict(model_state)
    guide.load_state_dict(guide_state)
    dev = resolve_device(device)
    train = None
    if items is not None:  # an item table only (no comparisons): enough to place new users
        items = items.numpy()
        prompts = tensors["prompts"].numpy() if "prompts" in tensors else None
        if prompts is not None and (prompts.ndim != 2 or prompts.shape[1] != prompt_dim):
            raise FileFormatError(f"{path}: got a prompt table of shape {prompts.shape}; "
                                  f"expected (prompts, {prompt_dim})")
        train = PreferenceData(np.zeros(0, np.int64), np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros(0, np.float32), items,
                               user_ids, item_ids,
                               None if prompts is None else np.zeros(0, np.int64), prompts,
                               None if prompts is None
                               else _decode_ids(path, "prompt_ids", meta.get("prompt_ids"),
                                                len(prompts)))
    return FittedPAL(
        config=config, model=model.to(dev).eval(), guide=guide.to(dev).eval(),
        user_ids=user_ids, item_ids=item_ids,
        elbo_history=np.asarray(meta["elbo_history"]),
        epoch_seconds=np.asarray(meta["epoch_seconds"]),
        validation_history=np.asarray(meta["validation_history"]), train=train,
        seed=meta["seed"], embedding=meta.get("embedding"),
    )


__all__ = ["FileFormatError", "load", "save"]

