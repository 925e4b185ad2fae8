"""bayespal: Bayesian pluralistic preference modeling (PAL) with Pyro.

Data flows one way: ``PreferenceData`` -> model -> ``fit`` -> ``FittedPAL`` ->
new users, queries, diagnostics.
"""

__version__ = "0.1.0"

from bayespal.data import DataError, PreferenceData
from bayespal.inference import fit
from bayespal.io import load
from bayespal.models import PALConfig
from bayespal.posterior import FittedPAL

__all__ = ["DataError", "FittedPAL", "PALConfig", "PreferenceData", "__version__", "fit", "load"]
