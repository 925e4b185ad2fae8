"""The model layer: what PAL is, independent of how it is fitted.

``config`` (``ModelConfig``), ``likelihood`` (the logit and rewards, once), ``nets``
(the MLP maps), ``pal`` (the Pyro model, PAL-A and PAL-B) and ``draws``
(``PopulationDraws``, the value every consumer of a fit uses).
"""

from bayespal.model.config import ModelConfig
from bayespal.model.draws import BoundPopulation, PopulationDraws
from bayespal.model.pal import Batch, PALModel

__all__ = ["Batch", "BoundPopulation", "ModelConfig", "PALModel", "PopulationDraws"]
