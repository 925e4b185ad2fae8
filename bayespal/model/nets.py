"""The shared mapping ``f_theta``: an MLP from embedding space to preference space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Mapping(nn.Module):
    """MLP ``R^D -> R^d`` (point-estimated, like the reference PAL's projector).

    ``hidden=()`` gives a linear map. Inputs may be stored as float16; they are
    cast to float32 after the row gather, so the table itself is never copied.

    Parameters
    ----------
    embed_dim:
        Input width D.
    pref_dim:
        Output width d.
    hidden:
        Hidden layer widths (() is linear).
    """

    def __init__(self, embed_dim: int, pref_dim: int, hidden: Sequence[int] = (64,)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = embed_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, pref_dim))
        self.net = nn.Sequential(*layers)
        self.register_buffer("shift", torch.zeros(embed_dim))
        self.register_buffer("scale", torch.ones(embed_dim))

    @torch.no_grad()
    def standardize_from(self, items: torch.Tensor) -> None:
        """Set the input standardisation from an item table ``(M, D)``: subtract the mean
        embedding and divide by the root-mean-square norm of the centred rows, one scale for
        all dimensions. The mapping then sees the same inputs whatever the embeddings' offset
        and overall scale, and their geometry (angles, relative distances, what a foundation
        model encodes) is kept: unit-norm embeddings are left nearly as they are. Per-dimension
        z-scores would instead inflate the dimensions that barely vary.

        Parameters
        ----------
        items:
            (M, D) the training table.
        """
        x = items.float()
        mean = x.mean(0)
        rms = (x - mean).pow(2).sum(-1).mean().sqrt() if len(x) > 1 else x.new_ones(())
        self.shift.copy_(mean if len(x) > 1 else torch.zeros_like(mean))
        self.scale.fill_(float(rms.clamp(min=1e-12)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)`` of embeddings ``(..., D)`` -> ``(..., d)``.

        Parameters
        ----------
        x:
            Embeddings (any float dtype).
        """
        return self.net((x.float() - self.shift) / self.scale)
