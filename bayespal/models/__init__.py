"""Pyro models of PAL. One model per file; the MLP mapping lives in ``nets``.

``ideal_point``: PAL-A, prototypes shared by all prompts. ``prompted``: PAL-B, prototypes
that are maps of the prompt embedding. :func:`build` picks one from a :class:`PALConfig`.
"""

from __future__ import annotations

import torch

from bayespal.models.ideal_point import Batch, IdealPointGuide, IdealPointModel, PALConfig
from bayespal.models.prompted import PromptedGuide, PromptedModel


def build(config: PALConfig, embed_dim: int, n_users: int, n_comparisons: int,
          generator: torch.Generator, prompt_embed_dim: int | None = None
          ) -> tuple[IdealPointModel, IdealPointGuide]:
    """The model and guide for ``config``: PAL-B when ``config.prompt_dim`` is set."""
    if not config.prompted:
        return (IdealPointModel(config, embed_dim, n_users, n_comparisons),
                IdealPointGuide(config, n_users, generator))
    if prompt_embed_dim is None:
        raise ValueError(f"prompts: got None with prompt_dim={config.prompt_dim}; expected "
                         "prompt embeddings for PAL-B (PreferenceData with prompt/prompts)")
    return (PromptedModel(config, embed_dim, n_users, n_comparisons, prompt_embed_dim),
            PromptedGuide(config, n_users, generator))


__all__ = ["Batch", "IdealPointGuide", "IdealPointModel", "PALConfig", "PromptedGuide",
           "PromptedModel", "build"]
