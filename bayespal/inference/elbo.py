"""The training loss: the negative ELBO of a minibatch, two ways that agree exactly.

``trace_elbo_loss`` runs the Pyro model and guide under ``poutine.trace``/``replay``: the
reference, equal to ``pyro.infer.Trace_ELBO`` (``tests/inference/test_elbo.py``).
``site_elbo_loss`` computes the same quantity site by site from the same objects, without
tracing: the guide's variational distributions (``PALGuide.population_dists``,
``user_dists``), the model's priors (``PALModel.population_priors``, ``user_priors``)
and its answer distribution (``PALModel.label_dist``), the very functions the Pyro model
and guide are made of. It draws from the guide in the guide's order, so under the same
random state it reads the same random numbers and returns the same value and gradients as
``Trace_ELBO`` (tested for PAL-A, PAL-B, SVI and MAP), and it is a plain tensor function,
so ``torch.compile`` can trace it once and replay it (``compiled_loss``). Per-step tracing
is what made a Pyro step cost 1.5-1.7x a hand-written PyTorch step.

Scales, as Pyro's plates give them: population sites 1; each batch user's terms
``(U / B) * user_scale`` (the user plate's subsample and the per-comparison attribution,
``bayespal.model.pal``); the answers ``N / B`` (the comparison plate's subsample).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable

import torch
from pyro import poutine
from pyro.poutine.subsample_messenger import _Subsample

from bayespal.inference.guides import PALGuide
from bayespal.model import Batch, PALModel


def site_elbo_loss(model: PALModel, guide: PALGuide, batch: Batch,
                   num_particles: int = 1, data_scale: float = 1.0,
                   n_comparisons: int | None = None) -> torch.Tensor:
    """Negative ELBO estimate (differentiable), site by site without Pyro's tracing.

    Parameters
    ----------
    model, guide:
        The PAL model and its guide.
    batch:
        A minibatch (``user_scale`` and ``index`` set: the unbiased minibatch ELBO) or,
        with ``user_scale=None``, all comparisons under the plain generative model.
    num_particles:
        Draws averaged.
    data_scale:
        A factor on the data terms (the users' terms and the answers), the global sites'
        terms as they are: a rank's loss in a users-sharded fit
        (``bayespal.inference.distributed.ShardLoss``).
    n_comparisons:
        The comparisons the minibatch is drawn from (None: ``model.n_comparisons``; a
        rank's share in a users-sharded fit).
    """
    minibatch = batch.user_scale is not None
    if minibatch and batch.index is None:
        raise ValueError("batch.index: got None with user_scale set; expected the "
                         "minibatch's comparison ids")
    n_batch = len(batch.user)
    n_total = model.n_comparisons if n_comparisons is None else n_comparisons
    label_scale = data_scale * (n_total / n_batch if minibatch else 1.0)
    total: torch.Tensor | float = 0.0
    for _ in range(num_particles):
        priors = model.population_priors()
        values: dict[str, torch.Tensor] = {}
        loss: torch.Tensor | float = 0.0
        for name, q in guide.population_dists().items():  # the guide's order: its draws
            value = q.rsample()
            values[name] = value
            loss = loss + q.log_prob(value) - priors[name].log_prob(value)
        user_priors, local = model.user_priors(), {}
        for name, q in guide.user_dists(batch.user if minibatch else None).items():
            drawn = q.rsample()
            user_terms = q.log_prob(drawn) - user_priors[name].log_prob(drawn)
            if minibatch:
                loss = loss + (user_terms * batch.user_scale).sum() * (
                    data_scale * guide.n_users / n_batch)
                local[name] = drawn
            else:
                loss = loss + user_terms.sum() * data_scale
                local[name] = drawn.index_select(-2 if name == "weights" else -1, batch.user)
        weights = local.get("weights")
        if weights is None:  # one prototype
            weights = batch.user.new_ones((n_batch, 1), dtype=torch.float32)
        fn, obs, _ = model.label_dist(batch, values, weights, local.get("cutpoint_log_scale"))
        loss = loss - fn.log_prob(obs).sum() * label_scale
        total = total + loss
    return total / num_particles


def trace_elbo_loss(model: PALModel, guide: PALGuide, batch: Batch,
                    num_particles: int = 1) -> torch.Tensor:
    """Negative ELBO estimate (differentiable) through Pyro's ``poutine.trace``/``replay``.

    The same quantity as ``pyro.infer.Trace_ELBO().differentiable_loss``, built from
    ``Trace.log_prob_sum``, but without its per-step ``.item()`` and NaN check, which
    force a host round trip every step on a GPU. Every guide site here (Normal,
    LogNormal, Dirichlet, Delta) is reparameterised, so no score-function term is needed.

    Parameters
    ----------
    model, guide:
        The PAL model and its guide.
    batch:
        The minibatch.
    num_particles:
        Draws averaged.
    """
    total: torch.Tensor | float = 0.0
    for _ in range(num_particles):
        guide_tr = poutine.trace(guide.guide).get_trace(batch)
        model_tr = poutine.trace(poutine.replay(model.model, trace=guide_tr)).get_trace(batch)
        total = total + (guide_tr.log_prob_sum(_scored) - model_tr.log_prob_sum(_scored))
    return total / num_particles


def _scored(name: str, site: dict) -> bool:
    """Skip the plates' subsample sites: their log-probability is a constant 0 that Pyro
    builds with ``torch.tensor(0.0, device=...)``, a host-to-device copy every step."""
    return not isinstance(site["fn"], _Subsample)


def compile_supported(device: torch.device) -> tuple[bool, str]:
    """Whether ``torch.compile`` can build the training step on ``device``, and why not.

    Parameters
    ----------
    device:
        The training device.
    """
    if not hasattr(torch, "compile"):
        return False, "this torch has no torch.compile"
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return False, "torch.compile on CUDA needs triton (not installed)"
        return True, ""
    if device.type == "cpu":
        if shutil.which("c++") is None and shutil.which("g++") is None:
            return False, "torch.compile on the CPU needs a C++ compiler (none on PATH)"
        return True, ""
    return False, f"torch.compile is not supported here on {device.type!r}"


def compiled_loss(model: PALModel, guide: PALGuide, num_particles: int = 1
                  ) -> Callable[[Batch], torch.Tensor]:
    """``site_elbo_loss`` for this model and guide, compiled by ``torch.compile`` (traced
    once per batch shape and replayed; the backward pass is compiled with it).

    Parameters
    ----------
    model, guide:
        The PAL model and its guide.
    num_particles:
        Draws averaged.
    """

    def loss(batch: Batch) -> torch.Tensor:
        return site_elbo_loss(model, guide, batch, num_particles)

    return torch.compile(loss, dynamic=False)
