"""Image embeddings through CLIP's image tower, with the text embedder's interface."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bayespal.embed.cache import EmbeddingCache, content_hash, embed_batched, resolve_cache_dir
from bayespal.embed.text import model_fingerprint, pool


class ImageEmbedder:
    """Embed images (PIL images or ``(H, W, 3)`` uint8 arrays) with a CLIP vision tower.

    ``model`` is a CLIP name or folder (``CLIPVisionModel.from_pretrained``) or a loaded
    ``CLIPVisionModel`` (then give ``processor``). ``layer`` indexes the hidden states
    (default -2, the penultimate); ``pooling`` is ``"cls"`` (the class token, default) or
    ``"mean"`` over all tokens. Cached on disk by the images' bytes (``cache_dir``, on by default).

    Parameters
    ----------
    model:
        A CLIP name or folder, or a loaded CLIPVisionModel.
    processor:
        Its image processor (required with a loaded model).
    layer:
        The hidden layer (-2: the penultimate).
    pooling:
        'cls' or 'mean'.
    batch_size:
        Images per forward pass.
    device:
        'auto', 'cpu' or 'cuda[:N]'.
    dtype:
        Of the returned vectors.
    cache_dir:
        The on-disk cache folder: ``"auto"`` (default) the user's cache folder or
        ``$BAYESPAL_CACHE_DIR`` (``bayespal.embed.cache``); None: no cache.
    """

    def __init__(self, model, processor=None, *, layer: int = -2, pooling: str = "cls",
                 batch_size: int = 32, device: str = "auto", dtype=np.float16,
                 cache_dir: str | Path | None = "auto", progress: bool = True) -> None:
        from transformers import CLIPImageProcessor, CLIPVisionModel

        from bayespal.device import resolve_device

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling: got {pooling!r}; expected 'cls' or 'mean'")
        if isinstance(model, (str, Path)):
            processor = processor or CLIPImageProcessor.from_pretrained(str(model))
            model = CLIPVisionModel.from_pretrained(str(model))
        if processor is None:
            raise ValueError("processor: got None; expected a CLIP image processor")
        self.device = resolve_device(device)
        self.model, self.processor = model.to(self.device).eval(), processor
        self.layer, self.pooling, self.batch_size = layer, pooling, batch_size
        self.dtype, self.progress = np.dtype(dtype), progress
        key = {"model": model_fingerprint(model), "layer": layer, "pooling": pooling,
               "dtype": self.dtype.name, "kind": "image"}
        folder = resolve_cache_dir(cache_dir)
        self.cache = EmbeddingCache(folder, key) if folder is not None else None

    @torch.no_grad()
    def _embed(self, images: list) -> np.ndarray:
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        out = self.model(pixel_values=pixels.to(self.device), output_hidden_states=True)
        hidden = out.hidden_states[self.layer]
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return pool(hidden, mask, self.pooling).float().cpu().numpy()

    def __call__(self, images: Sequence) -> np.ndarray:
        arrays = []
        for i, img in enumerate(images):
            arr = np.asarray(img)
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise ValueError(f"images[{i}]: got shape {arr.shape}; expected (H, W, 3)")
            arrays.append(arr)
        hashes = [content_hash(str(a.shape).encode() + a.tobytes()) for a in arrays]
        return embed_batched(arrays, hashes, self._embed, self.cache, batch_size=self.batch_size,
                             dtype=self.dtype, progress=self.progress, desc="embedding images")
