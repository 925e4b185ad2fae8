"""bayespal: Bayesian pluralistic preference modeling (PAL) with Pyro.

Data flows one way, and the package's layers follow it (each imports only from the ones
below; ``lint-imports`` checks it)::

    data, embed, datasets   PreferenceData, embedders, loaders
    model                   ModelConfig, the PAL logit (once), the Pyro model, PopulationDraws
    inference               TrainConfig, guides, the SVI loop, checkpoints, ranks
    posterior               FittedPAL / EnsemblePAL behind one interface; fit, save, load
    users                   new users' posteriors and the questions to ask them
    analysis                diagnostics (ArviZ), plots, evaluation, reward models, select_k
    api                     bayespal.fit (a given K, or k="auto")
    cli                     the ``bayespal`` command
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bayespal._version import __version__

# Public names and the module each lives in. They are imported when first used
# (``bayespal.fit`` imports torch and Pyro), so that ``import bayespal`` and the command's
# ``--help`` stay fast.
_EXPORTS = {
    "DataError": "bayespal.data", "EmbeddingTable": "bayespal.data",
    "PreferenceData": "bayespal.data",
    "ModelConfig": "bayespal.model", "PopulationDraws": "bayespal.model",
    "TrainConfig": "bayespal.inference",
    "EnsemblePAL": "bayespal.posterior", "FittedPAL": "bayespal.posterior",
    "Posterior": "bayespal.posterior", "load": "bayespal.posterior",
    "NewUser": "bayespal.users", "NewUserPosteriors": "bayespal.users",
    "PointPlacement": "bayespal.users", "place_users": "bayespal.users",
    "suggest": "bayespal.users",
    "KSelection": "bayespal.analysis.selection", "select_k": "bayespal.analysis.selection",
    "fit": "bayespal.api",
}
_SUBMODULES = {"analysis", "api", "checks", "cli", "data", "datasets", "device", "embed",
               "files", "inference", "metrics", "model", "posterior", "rng", "users"}

__all__ = [
    "DataError", "EmbeddingTable", "EnsemblePAL", "FittedPAL", "KSelection", "ModelConfig",
    "NewUser", "NewUserPosteriors", "PointPlacement", "Posterior", "PopulationDraws",
    "PreferenceData", "TrainConfig", "__version__", "fit", "load", "place_users", "select_k",
    "suggest",
]
assert set(__all__) == {*_EXPORTS, "__version__"}

if TYPE_CHECKING:  # what static tools see: the same names, imported eagerly
    from bayespal.analysis.selection import KSelection, select_k
    from bayespal.api import fit
    from bayespal.data import DataError, EmbeddingTable, PreferenceData
    from bayespal.inference import TrainConfig
    from bayespal.model import ModelConfig, PopulationDraws
    from bayespal.posterior import EnsemblePAL, FittedPAL, Posterior, load
    from bayespal.users import NewUser, NewUserPosteriors, PointPlacement, place_users, suggest


def __getattr__(name: str) -> Any:
    """Import a public name (or a subpackage) on first use (PEP 562)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"bayespal.{name}")
    else:
        raise AttributeError(f"module 'bayespal' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
