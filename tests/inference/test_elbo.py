"""The minibatch ELBO is an unbiased estimate of the full-data ELBO."""

import numpy as np
import pytest
import torch
from pyro.infer import Trace_ELBO

from bayespal.data import PreferenceData
from bayespal.inference import PALGuide
from bayespal.inference.trainer import DeviceData
from bayespal.model import Batch, ModelConfig, PALModel

pytestmark = pytest.mark.slow  # thousands of ELBO evaluations


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 15, size=25)  # very unequal comparisons per user
    user = np.repeat(np.arange(25), counts)
    a = rng.integers(0, 40, user.size)
    b = (a + rng.integers(1, 40, user.size)) % 40
    d = PreferenceData.from_arrays(user, a, b, rng.integers(0, 2, user.size),
                                   rng.normal(size=(40, 5)))
    cfg = ModelConfig(k=3, pref_dim=3, hidden=(64,))
    torch.manual_seed(0)
    model = PALModel(cfg, 5, d.n_users, d.n_comparisons)
    guide = PALGuide(cfg, d.n_users, torch.Generator().manual_seed(1))
    with torch.no_grad():  # concentrated q(w): user terms (KL) of a few nats each
        guide.weights_raw_concentration.add_(torch.rand(d.n_users, 1) * 20)
    return model, guide, DeviceData.from_data(d, torch.device("cpu"))


def estimates(model, guide, make_batch, reps):
    elbo = Trace_ELBO(max_plate_nesting=1)
    torch.manual_seed(5)
    with torch.no_grad():
        vals = np.array([elbo.loss(model.model, guide.guide, make_batch()) for _ in range(reps)])
    return vals.mean(), vals.std() / np.sqrt(reps)


def test_minibatch_elbo_is_unbiased(setup):
    model, guide, dd = setup
    n = len(dd)
    full, se_full = estimates(model, guide, lambda: dd.batch(), 800)
    mb, se_mb = estimates(model, guide, lambda: dd.batch(torch.randperm(n)[:12]), 3000)
    z = (mb - full) / np.hypot(se_full, se_mb)
    assert abs(z) < 4, (full, mb, se_full, se_mb)


def test_naive_user_scaling_is_detected_as_biased(setup):
    """Power check: scaling every batch user's term by a constant (ignoring how many
    comparisons each user has) is biased, and the comparison above would see it."""
    model, guide, dd = setup
    n = len(dd)
    full, se_full = estimates(model, guide, lambda: dd.batch(), 800)

    def naive():
        idx = torch.randperm(n)[:12]
        b = dd.batch(idx)
        const = torch.full_like(b.user_scale, float(dd.user_scale.mean()))
        return Batch(b.items, b.user, b.item_a, b.item_b, b.label, idx, const)

    mb, se_mb = estimates(model, guide, naive, 3000)
    assert abs(mb - full) / np.hypot(se_full, se_mb) > 6


def test_sync_free_loss_equals_pyro_trace_elbo(setup):
    import pyro

    from bayespal.inference.trainer import elbo_loss

    model, guide, dd = setup
    batch = dd.batch(torch.arange(10))
    pyro.set_rng_seed(9)
    ours = elbo_loss(model.model, guide.guide, batch)
    pyro.set_rng_seed(9)
    ref = Trace_ELBO(max_plate_nesting=1).differentiable_loss(model.model, guide.guide, batch)
    assert torch.allclose(ours, ref, rtol=1e-6)
    g_ours = torch.autograd.grad(ours, guide.weights_raw_concentration)[0]
    g_ref = torch.autograd.grad(ref, guide.weights_raw_concentration)[0]
    assert torch.allclose(g_ours, g_ref, rtol=1e-5, atol=1e-7)
