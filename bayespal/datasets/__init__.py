"""Data sets: synthetic data with known truth, and the Persona demo (real statements,
semi-synthetic preferences)."""

from bayespal.datasets.persona import persona_demo
from bayespal.datasets.synthetic import (
    PromptedSyntheticPreferences,
    SyntheticPreferences,
    synthetic,
    synthetic_deep,
    synthetic_prompted,
)

__all__ = ["PromptedSyntheticPreferences", "SyntheticPreferences", "persona_demo", "synthetic",
           "synthetic_deep", "synthetic_prompted"]
