"""Data sets: synthetic data with known truth, and the Persona demo (real statements,
semi-synthetic preferences)."""

from bayespal.datasets.persona import persona_demo
from bayespal.datasets.synthetic import SyntheticPreferences, synthetic

__all__ = ["SyntheticPreferences", "persona_demo", "synthetic"]
