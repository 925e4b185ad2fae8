"""The analysis layer: what is computed from a fitted posterior.

``diagnostics`` (ArviZ DataTree, PSIS-LOO, model comparison, predictive checks, prototype
alignment), ``plots`` (matplotlib figures), ``evaluation`` (PAL's seen/unseen protocol),
``reward`` (reward models for RLHF) and ``baselines`` (one Bradley-Terry reward model).
"""
