"""Data sets: synthetic data with known truth."""

from bayespal.datasets.synthetic import SyntheticPreferences, synthetic

__all__ = ["SyntheticPreferences", "synthetic"]
