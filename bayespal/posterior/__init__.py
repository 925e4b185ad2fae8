"""The posterior layer: fitted results behind one interface (:class:`Posterior`).

``base`` (what every result offers, over :class:`~bayespal.model.PopulationDraws`),
``fitted`` (:class:`FittedPAL`, one fit; :func:`load`), ``ensemble`` (:class:`EnsemblePAL`),
``io`` (the model file) and ``fitting`` (:func:`fit`, which picks the result type).
"""

from bayespal.posterior.base import Posterior
from bayespal.posterior.ensemble import EnsemblePAL
from bayespal.posterior.fitted import FittedPAL, load
from bayespal.posterior.fitting import fit

__all__ = ["EnsemblePAL", "FittedPAL", "Posterior", "fit", "load"]
