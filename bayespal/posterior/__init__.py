"""The posterior layer: fitted results behind one interface (``Posterior``).

``base`` (what every result offers, over ``PopulationDraws``),
``fitted`` (``FittedPAL``, one fit; ``load``), ``ensemble`` (``EnsemblePAL``),
``io`` (the model file) and ``fitting`` (``fit``, which picks the result type).
"""

from bayespal.posterior.base import Posterior
from bayespal.posterior.ensemble import EnsemblePAL
from bayespal.posterior.fitted import FittedPAL, load
from bayespal.posterior.fitting import fit

__all__ = ["EnsemblePAL", "FittedPAL", "Posterior", "fit", "load"]
