"""Text embeddings from any ``transformers`` model: a chosen hidden layer (default the
penultimate, as PAL uses), pooled over tokens, batched, cached on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bayespal.embed.cache import EmbeddingCache, content_hash, embed_batched, resolve_cache_dir

POOLINGS = ("mean", "last", "cls")


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states ``(B, T, D)`` with attention ``mask (B, T)``:

    - ``mean``: average over non-padding tokens (encoders, sentence-transformers style);
    - ``last``: the last non-padding token, wherever the padding is (decoders);
    - ``cls``: the first token.

    Parameters
    ----------
    hidden:
        (B, T, H) hidden states.
    mask:
        (B, T) attention mask.
    pooling:
        'mean', 'last' or 'cls'.
    """
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask).argmax(1)  # works for left and right padding
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
    if pooling == "cls":
        return hidden[:, 0]
    raise ValueError(f"pooling: got {pooling!r}; expected one of {POOLINGS}")


def model_fingerprint(model: torch.nn.Module) -> str:
    """The model's name (if it has one) and a hash of (the first 4 KB of each of) its
    weights: the cache key's model part.

    Parameters
    ----------
    model:
        A torch module; the fingerprint hashes its weights.
    """
    name = getattr(model, "name_or_path", "") or getattr(getattr(model, "config", None),
                                                         "_name_or_path", "")
    h = hashlib.sha256()  # the weights too: a name whose weights changed is another model
    for t in model.state_dict().values():
        h.update(t.detach().float().cpu().numpy().tobytes()[:4096])
    weights = "weights:" + h.hexdigest()[:24]
    return f"{name}|{weights}" if name else weights


class TextEmbedder:
    """Embed texts with a ``transformers`` model.

    ``model`` is a name or folder for ``AutoModel.from_pretrained`` or a loaded model (then
    give ``tokenizer``). ``layer`` indexes ``hidden_states`` (``-1`` the last layer, ``-2``
    the penultimate, the default). Vectors are returned (and cached) as ``dtype``
    (default float16), and cached on disk (``cache_dir``).

    Parameters
    ----------
    model:
        A name or folder for AutoModel.from_pretrained, or a loaded model.
    tokenizer:
        Its tokenizer (required with a loaded model).
    layer:
        The hidden layer (-2: the penultimate).
    pooling:
        'mean', 'last' or 'cls'.
    max_length:
        Tokens per text (longer texts are truncated).
    batch_size:
        Texts per forward pass.
    device:
        'auto', 'cpu' or 'cuda[:N]'.
    dtype:
        Of the returned vectors (float16 by default).
    cache_dir:
        The on-disk cache folder: ``"auto"`` (default) the user's cache folder or
        ``$BAYESPAL_CACHE_DIR`` (``bayespal.embed.cache``); None: no cache.
    progress:
        Show a progress bar.
    """

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        layer: int = -2,
        pooling: str = "mean",
        max_length: int = 256,
        batch_size: int = 32,
        device: str = "auto",
        dtype=np.float16,
        cache_dir: str | Path | None = "auto",
        progress: bool = True,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        from bayespal.device import resolve_device

        if pooling not in POOLINGS:
            raise ValueError(f"pooling: got {pooling!r}; expected one of {POOLINGS}")
        self.source = str(model) if isinstance(model, (str, Path)) else None
        if isinstance(model, (str, Path)):
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model))
            model = AutoModel.from_pretrained(str(model))
        if tokenizer is None:
            raise ValueError("tokenizer: got None; expected a tokenizer for a model object")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token is None:  # decoders (GPT-2) have none
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.layer, self.pooling, self.max_length = layer, pooling, max_length
        self.batch_size, self.dtype, self.progress = batch_size, np.dtype(dtype), progress
        key = {"model": model_fingerprint(model), "layer": layer, "pooling": pooling,
               "max_length": max_length, "dtype": self.dtype.name, "kind": "text"}
        folder = resolve_cache_dir(cache_dir)
        self.cache = EmbeddingCache(folder, key) if folder is not None else None

    def config(self) -> dict:
        """What reproduces these embeddings (recorded with a fit, for reward export)."""
        if self.source is None:
            raise ValueError("model: got a model object; expected a name or folder to record "
                             "(load the embedder by name to record its configuration)")
        return {"model": self.source, "layer": self.layer, "pooling": self.pooling,
                "max_length": self.max_length, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> TextEmbedder:
        return cls(config["model"], layer=config["layer"], pooling=config["pooling"],
                   max_length=config["max_length"], dtype=np.dtype(config["dtype"]), **kwargs)

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        out = self.model(**enc, output_hidden_states=True)
        hidden = out.hidden_states[self.layer]
        return pool(hidden, enc["attention_mask"], self.pooling).float().cpu().numpy()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``(len(texts), D)`` in input order."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}]: got {type(t).__name__}; expected a string")
        hashes = [content_hash(t.encode("utf-8")) for t in texts]
        # longest first, like sentence-transformers: batches of similar length pad little
        return embed_batched(texts, hashes, self._embed, self.cache, batch_size=self.batch_size,
                             dtype=self.dtype, order_key=lambda i: -len(texts[i]),
                             progress=self.progress)
