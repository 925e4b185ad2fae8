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

from bayespal._version import __version__
from bayespal.analysis.selection import KSelection, select_k
from bayespal.api import fit
from bayespal.data import DataError, EmbeddingTable, PreferenceData
from bayespal.inference import TrainConfig
from bayespal.model import ModelConfig, PopulationDraws
from bayespal.posterior import EnsemblePAL, FittedPAL, Posterior, load
from bayespal.users import NewUser, NewUserPosteriors, PointPlacement, place_users, suggest

__all__ = [
    "DataError", "EmbeddingTable", "EnsemblePAL", "FittedPAL", "KSelection", "ModelConfig",
    "NewUser",
    "NewUserPosteriors", "PointPlacement", "Posterior", "PopulationDraws", "PreferenceData",
    "TrainConfig", "__version__", "fit", "load", "place_users", "select_k", "suggest",
]
