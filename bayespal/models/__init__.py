"""Pyro models of PAL. One model per file; the MLP mapping lives in ``nets``."""

from bayespal.models.ideal_point import Batch, IdealPointGuide, IdealPointModel, PALConfig

__all__ = ["Batch", "IdealPointGuide", "IdealPointModel", "PALConfig"]
