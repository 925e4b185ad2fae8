"""The analysis layer: what is computed from a fitted posterior.

``diagnostics`` (ArviZ DataTree, PSIS-LOO, model comparison, predictive checks, prototype
alignment), ``plots`` (matplotlib figures), ``evaluation`` (PAL's seen/unseen protocol),
``report`` (the pluralism report), ``reward`` and ``hub`` (reward models for RLHF: posterior
means and sds; a torch module for Hugging Face and TRL) and ``baselines`` (one Bradley-Terry
reward model).
"""
