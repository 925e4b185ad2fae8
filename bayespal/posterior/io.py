"""The model file: one safetensors file (tensors) with JSON metadata (both configurations
and their hashes, library and format versions, id maps, histories), written atomically and
checksummed (``bayespal.files``). Reading never unpickles and never runs code from the
file; every key and size in the metadata is checked before it is trusted.

Format 2 (bayespal 0.2) stores ``model_config`` and ``train_config``. Format 1 (0.1) files
load too: their single configuration is split (its ``inference`` into the train
configuration, its ``score`` renamed ``metric``) and checked against its old hash; format 1
recorded no other training settings, so a loaded one reports the defaults for them.
Other versions are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch

from bayespal import files
from bayespal._version import __version__
from bayespal.data import EmbeddingTable
from bayespal.device import resolve_device
from bayespal.files import FileFormatError
from bayespal.inference import TrainConfig, build
from bayespal.inference.tuning import Selection
from bayespal.model import ModelConfig

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
KIND = "model"
MAX_DIM = 2**20  # the widest embedding (or layer) a file may declare


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
    """Ids stored by ``_encode_ids``, checked: one declared type, unique, and ``count``
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


def _is_str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _dim(v) -> bool:
    return _is_int(v) and 0 < v <= MAX_DIM


def _dims_or_none(v) -> bool:
    return v is None or _dim(v)


# every key a model file's metadata holds, with its check (unknown keys are refused);
# keys that may be absent are listed in _OPTIONAL
_COMMON = {
    "format_version": _is_int,
    "bayespal_version": lambda v: isinstance(v, str),
    "user_ids": lambda v: isinstance(v, dict),
    "item_ids": lambda v: isinstance(v, dict),
    "embed_dim": _dim,
    "n_comparisons": lambda v: _is_int(v) and v >= 0,
    "prompt_embed_dim": _dims_or_none,
    "prompt_ids": lambda v: v is None or isinstance(v, dict),
    "epoch_seconds": _is_float_list,
    "validation_history": _is_float_list,
    "embedding": lambda v: v is None or isinstance(v, dict),
}
_META = {
    1: {**_COMMON, "config": lambda v: isinstance(v, dict),
        "config_hash": lambda v: isinstance(v, str), "elbo_history": _is_float_list,
        "seed": lambda v: _is_int(v) and 0 <= v < 2**64},
    2: {**_COMMON, "model_config": lambda v: isinstance(v, dict),
        "model_config_hash": lambda v: isinstance(v, str),
        "train_config": lambda v: isinstance(v, dict),
        "train_config_hash": lambda v: isinstance(v, str), "loss_history": _is_float_list,
        "selection": lambda v: v is None or isinstance(v, dict),
        "item_texts": lambda v: v is None or _is_str_list(v),
        "prompt_texts": lambda v: v is None or _is_str_list(v),
        "k_selection": lambda v: v is None or isinstance(v, list)},
}
_OPTIONAL = {"prompt_embed_dim", "prompt_ids", "embedding", "selection", "item_texts",
             "prompt_texts", "k_selection"}

# the evidence per K (``select_k``'s table): each column's check
_K_SELECTION = {
    "k": lambda v: _is_int(v) and 0 < v <= MAX_DIM,
    "seen_log_loss": lambda v: type(v) in (int, float),
    "unseen_log_loss": lambda v: v is None or type(v) in (int, float),
    "criterion": lambda v: type(v) in (int, float),
    "se_vs_best": lambda v: v is None or type(v) in (int, float),
    "weight_share": _is_float_list,
    "smallest_share": lambda v: type(v) in (int, float),
    "effective_prototypes": lambda v: type(v) in (int, float),
    "seconds": lambda v: type(v) in (int, float),
    "chosen": lambda v: type(v) is bool,
}


def _check_meta(path, meta: dict) -> int:
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        raise FileFormatError(f"{path}: got format_version {version!r}; expected one of "
                              f"{READABLE_VERSIONS} (written by an incompatible bayespal)")
    schema = _META[version]
    unknown = sorted(set(meta) - set(schema))
    missing = sorted(set(schema) - set(meta) - _OPTIONAL)
    if unknown or missing:
        raise FileFormatError(f"{path}: got metadata keys unknown={unknown}, missing={missing}; "
                              "expected a bayespal model file")
    for key, ok in schema.items():
        if key in meta and not ok(meta[key]):
            raise FileFormatError(f"{path}: got {key}={str(meta[key])[:60]!r}; expected a "
                                  "valid value for a model file")
    return version


def _configs(path, meta: dict, version: int) -> tuple[ModelConfig, TrainConfig]:
    """Both configurations, checked against their stored hashes."""
    try:
        if version == 1:
            d = dict(meta["config"])
            legacy = _legacy_hash(d)
            if legacy != meta["config_hash"]:
                raise FileFormatError(f"{path}: got config_hash {meta['config_hash']!r}; "
                                      f"expected {legacy!r} for the stored configuration")
            inference = d.pop("inference", "svi")
            if "score" in d:
                d["metric"] = d.pop("score")
            return (ModelConfig.from_dict(d),
                    TrainConfig(inference=inference, seed=int(meta["seed"]) % 2**32))
        model_config = ModelConfig.from_dict(meta["model_config"])
        train_config = TrainConfig.from_dict(meta["train_config"])
    except (TypeError, ValueError, KeyError) as err:
        if isinstance(err, FileFormatError):
            raise
        raise FileFormatError(f"{path}: got an invalid configuration ({err}); expected the "
                              "configuration of a bayespal model") from err
    # the hash covers the fields as stored: a field added since the file was written takes
    # its default without invalidating the file
    for name, exclude in (("model_config", ()), ("train_config", ("device",))):
        stored = {k: v for k, v in meta[name].items() if k not in exclude}
        want = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()[:16]
        if want != meta[f"{name}_hash"]:
            raise FileFormatError(f"{path}: got {name}_hash {meta[f'{name}_hash']!r}; "
                                  f"expected {want!r} for the stored configuration")
    return model_config, train_config


def _legacy_hash(d: dict) -> str:
    """Format 1's configuration hash (the fields PAL-A files had before PAL-B and the
    position term existed are the ones it covered)."""
    d = dict(d)
    if d.get("prompt_dim") is None:
        for key in ("prompt_dim", "prompt_hidden", "loading_scale", "score"):
            d.pop(key, None)
    if not d.get("position_bias", False):
        d.pop("position_bias", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _user_count(path, guide_state: dict, config: ModelConfig) -> int | None:
    """The number of users the guide's tensors hold (K = 1 stores no per-user tensor)."""
    for key in ("weights_raw_concentration", "weights_logits"):
        if key in guide_state:
            t = guide_state[key]
            if t.dim() != 2 or t.shape[1] != config.k:
                raise FileFormatError(f"{path}: got {key} of shape {tuple(t.shape)}; expected "
                                      f"(users, {config.k})")
            return t.shape[0]
    return None


def _as_tensor(table: EmbeddingTable) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(table.embeddings))


def write_model(path: str | os.PathLike, *, model_config: ModelConfig,
                train_config: TrainConfig, model, guide, user_ids: np.ndarray,
                items: EmbeddingTable | None, prompts: EmbeddingTable | None,
                item_ids: np.ndarray, histories: dict, embedding: dict | None,
                selection: dict | None = None, k_selection=None) -> None:
    """Write a fitted model's parts to ``path`` atomically (format 2). The tables' texts
    (``EmbeddingTable.texts``) are stored with them, where known.

    Parameters
    ----------
    path:
        The target file.
    model_config, train_config, model, guide:
        The fit's configurations and trained modules.
    user_ids, item_ids:
        The ids of the users and items (all int or all str).
    items, prompts:
        The tables to store (None: not stored).
    histories:
        ``loss_history``, ``epoch_seconds``, ``validation_history``.
    embedding:
        The items' embedding configuration, if known.
    selection:
        What a self-tuning fit chose (``Selection.to_dict()``), if known.
    k_selection:
        The evidence per K of a ``k="auto"`` fit (``select_k``'s table), if any.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"guide.{k}": v for k, v in guide.state_dict().items()})
    if items is not None:
        tensors["items"] = _as_tensor(items)
    if prompts is not None:
        tensors["prompts"] = _as_tensor(prompts)
    meta = {
        "format_version": FORMAT_VERSION,
        "bayespal_version": __version__,
        "model_config": model_config.to_dict(),
        "model_config_hash": model_config.hash(),
        "train_config": train_config.to_dict(),
        "train_config_hash": train_config.hash(),
        "user_ids": _encode_ids("user_ids", np.asarray(user_ids)),
        "item_ids": _encode_ids("item_ids", np.asarray(item_ids)),
        "embed_dim": model.embed_dim,
        "n_comparisons": model.n_comparisons,
        "prompt_embed_dim": model.prompt_embed_dim,
        "prompt_ids": None if prompts is None else _encode_ids("prompt_ids", prompts.ids),
        "embedding": embedding,
        "selection": selection,
        "item_texts": _texts(items),
        "prompt_texts": _texts(prompts),
        "k_selection": _encode_k_selection(k_selection),
        **{name: [float(x) for x in values] for name, values in histories.items()},
    }
    files.write_atomic(path, tensors, meta, kind=KIND)


def _texts(table: EmbeddingTable | None) -> list[str] | None:
    return None if table is None or table.texts is None else [str(t) for t in table.texts]


def _encode_k_selection(table) -> list[dict] | None:
    if table is None:
        return None
    records = []
    for row in table[list(_K_SELECTION)].to_dict(orient="records"):
        out = {}
        for name, value in row.items():
            if name == "weight_share":
                out[name] = [float(x) for x in value]
            elif name == "k":
                out[name] = int(value)
            elif name == "chosen":
                out[name] = bool(value)
            else:
                out[name] = None if value is None or not np.isfinite(value) else float(value)
        records.append(out)
    return records


def _decode_k_selection(path, records):
    """The evidence per K, every record checked column by column."""
    if records is None:
        return None
    import pandas as pd

    for i, row in enumerate(records):
        if not isinstance(row, dict) or set(row) != set(_K_SELECTION):
            raise FileFormatError(f"{path}: got k_selection row {i} with keys "
                                  f"{sorted(row) if isinstance(row, dict) else type(row).__name__}"
                                  f"; expected {sorted(_K_SELECTION)}")
        bad = [name for name, check in _K_SELECTION.items() if not check(row[name])]
        if bad:
            raise FileFormatError(f"{path}: got k_selection row {i} {bad[0]} "
                                  f"{str(row[bad[0]])[:40]!r}; expected a valid value")
        if len(row["weight_share"]) != row["k"]:
            raise FileFormatError(f"{path}: got k_selection row {i} with "
                                  f"{len(row['weight_share'])} weight shares; expected "
                                  f"{row['k']}, one per prototype")
    table = pd.DataFrame(records, columns=list(_K_SELECTION))
    return table.astype({c: float for c in _K_SELECTION
                         if c not in ("k", "weight_share", "chosen")})


def _table_texts(path, meta: dict, key: str, n: int) -> list[str] | None:
    texts = meta.get(key)
    if texts is not None and len(texts) != n:
        raise FileFormatError(f"{path}: got {len(texts)} {key}; expected {n}, one per row "
                              "of the stored table")
    return texts


def read_model(path: str | os.PathLike, device: str = "cpu") -> dict:
    """The parts of a model file, checked, as keyword arguments of ``FittedPAL``.

    Parameters
    ----------
    path:
        A file written by ``write_model`` (format 2) or by bayespal 0.1 (format 1).
    device:
        Where the modules are placed.
    """
    tensors, meta = files.read(path, kind=KIND)
    version = _check_meta(path, meta)
    model_config, train_config = _configs(path, meta, version)
    if any(not 0 < h <= MAX_DIM for h in (model_config.k, model_config.pref_dim,
                                           *model_config.hidden, model_config.prompt_dim or 1,
                                           *model_config.prompt_hidden)):
        raise FileFormatError(f"{path}: got a configuration with a size above {MAX_DIM}; "
                              "expected a model that fits in memory")
    prompt_dim = meta.get("prompt_embed_dim")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    guide_state = {k[6:]: v for k, v in tensors.items() if k.startswith("guide.")}
    n_users = _user_count(path, guide_state, model_config)
    user_ids = _decode_ids(path, "user_ids", meta["user_ids"], n_users)
    items = tensors.get("items")
    if items is not None and (items.dim() != 2 or items.shape[1] != meta["embed_dim"]):
        raise FileFormatError(f"{path}: got an item table of shape {tuple(items.shape)}; "
                              f"expected (items, {meta['embed_dim']})")
    item_ids = _decode_ids(path, "item_ids", meta["item_ids"],
                           None if items is None else items.shape[0])
    n_items = None
    if model_config.item_effects:  # as many effects as the stored ones, and as items
        loc = guide_state.get("item_effects_loc")
        n_items = None if loc is None or loc.dim() != 1 else int(loc.shape[0])
        if n_items is None or (items is not None and n_items != items.shape[0]):
            raise FileFormatError(f"{path}: got item effects of shape "
                                  f"{None if loc is None else tuple(loc.shape)} for "
                                  f"{'no' if items is None else items.shape[0]} stored items; "
                                  "expected one effect per training item")
    # Build on the meta device first: no memory is allocated for the sizes the metadata
    # claims until they are known to match the tensors actually in the file.
    try:
        with torch.device("meta"):
            shape_model, shape_guide = build(model_config, train_config.inference,
                                             meta["embed_dim"], len(user_ids),
                                             meta["n_comparisons"], prompt_dim, n_items=n_items)
    except ValueError as err:  # e.g. prompt embeddings for a PAL-A configuration
        raise FileFormatError(f"{path}: got a model that cannot be built ({err}); expected "
                              "a consistent model file") from err
    for part, state, module in (("model", model_state, shape_model),
                                ("guide", guide_state, shape_guide)):
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        have = {k: tuple(v.shape) for k, v in state.items()}
        if want != have:
            bad = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
            raise FileFormatError(f"{path}: got {part} tensors that do not fit the stored "
                                  f"configuration (first mismatch: {bad[0]!r}); expected a "
                                  "consistent model file")
    model, guide = build(model_config, train_config.inference, meta["embed_dim"],
                         len(user_ids), meta["n_comparisons"], prompt_dim, torch.Generator(),
                         n_items)
    model.load_state_dict(model_state)
    guide.load_state_dict(guide_state)
    dev = resolve_device(device)
    item_table = prompt_table = None
    if items is not None:
        item_table = EmbeddingTable(item_ids, items.numpy(),
                                    _table_texts(path, meta, "item_texts", len(item_ids)))
        if "prompts" in tensors:
            prompts = tensors["prompts"].numpy()
            if prompts.ndim != 2 or prompts.shape[1] != prompt_dim:
                raise FileFormatError(f"{path}: got a prompt table of shape {prompts.shape}; "
                                      f"expected (prompts, {prompt_dim})")
            prompt_table = EmbeddingTable(
                _decode_ids(path, "prompt_ids", meta.get("prompt_ids"), len(prompts)), prompts,
                _table_texts(path, meta, "prompt_texts", len(prompts)))
    losses = meta["loss_history"] if version == 2 else meta["elbo_history"]
    return dict(
        model_config=model_config, train_config=train_config, model=model.to(dev).eval(),
        guide=guide.to(dev).eval(), user_ids=user_ids, items=item_table, prompts=prompt_table,
        loss_history=np.asarray(losses), epoch_seconds=np.asarray(meta["epoch_seconds"]),
        validation_history=np.asarray(meta["validation_history"]),
        embedding=meta.get("embedding"), selection=_selection(path, meta.get("selection")),
        k_selection=_decode_k_selection(path, meta.get("k_selection")),
    )


def _selection(path, d: dict | None) -> Selection | None:
    if d is None:
        return None
    try:
        return Selection.from_dict(d)
    except (KeyError, TypeError, ValueError) as err:
        raise FileFormatError(f"{path}: got an unreadable selection ({err}); expected the "
                              "record of a self-tuning fit") from err


__all__ = ["FileFormatError", "read_model", "write_model"]
