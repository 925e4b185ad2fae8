"""The shared mapping ``f_theta``: an MLP from embedding space to preference space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Mapping(nn.Module):
    """MLP ``R^D -> R^d`` (point-estimated, like the reference PAL's projector).

    ``hidden=()`` gives a linear map. Inputs may be stored as float16; they are
    cast to float32 after the row gather, so the table itself is never copied.
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
        """Set the input standardisation from an item table ``(M, D)``."""
        x = items.float()
        self.shift.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp(min=1e-6) if len(x) > 1 else torch.ones_like(x[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x.float() - self.shift) / self.scale)
