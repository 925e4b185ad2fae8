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
    """Mean and standard error of ``reps`` loss estimates: the site-by-site loss, which is
    Pyro's Trace_ELBO (test_site_elbo_equals_pyro_trace_elbo) at a fraction of its cost."""
    from bayespal.inference.elbo import site_elbo_loss

    torch.manual_seed(5)
    with torch.no_grad():
        vals = np.array([float(site_elbo_loss(model, guide, make_batch()))
                         for _ in range(reps)])
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

    from bayespal.inference.elbo import trace_elbo_loss

    model, guide, dd = setup
    batch = dd.batch(torch.arange(10))
    pyro.set_rng_seed(9)
    ours = trace_elbo_loss(model, guide, batch)
    pyro.set_rng_seed(9)
    ref = Trace_ELBO(max_plate_nesting=1).differentiable_loss(model.model, guide.guide, batch)
    assert torch.allclose(ours, ref, rtol=1e-6)
    g_ours = torch.autograd.grad(ours, guide.weights_raw_concentration)[0]
    g_ref = torch.autograd.grad(ref, guide.weights_raw_concentration)[0]
    assert torch.allclose(g_ours, g_ref, rtol=1e-5, atol=1e-7)


def _variant(kind: str, point: bool):
    """A small model, guide and data of one kind (PAL-A, PAL-B, graded, choices, item
    effects, K = 1), every parameter moved off its initial value."""
    rng = np.random.default_rng(11)
    n, m, users = 60, 12, 8
    user = rng.integers(0, users, n)
    user[:users] = np.arange(users)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    label = rng.integers(0, 2, n).astype(float)
    extra: dict = {}
    cfg: dict = dict(k=3, pref_dim=3, hidden=(8,), concentration=None)
    if kind == "pal-b":
        extra = dict(prompt=rng.integers(0, 4, n), prompts=rng.normal(size=(4, 5)))
        cfg.update(prompt_dim=2, prompt_hidden=(6,))
    elif kind in ("graded", "user-cutpoints", "user-cutpoints-k1"):
        label = rng.integers(0, 5, n) / 4
        extra = dict(levels=5)
        cfg.update(levels=5, user_cutpoints=kind != "graded",
                   k=1 if kind == "user-cutpoints-k1" else 3)
    elif kind == "choices":
        extra = dict(others=[[int((x + 2) % m), int((x + 3) % m)] if i % 2 else []
                             for i, x in enumerate(a)])
        b = (a + rng.integers(4, m - 1, n)) % m
    elif kind == "item-effects":
        cfg.update(item_effects=True)
    elif kind == "k1":
        cfg.update(k=1)
    elif kind == "mixture-prior":  # the weights' prior a mixture of Dirichlets
        cfg.update(weight_prior="mixture")
    d = PreferenceData.from_arrays(user, a, b, label, rng.normal(size=(m, 5)), **extra)
    mc = ModelConfig(**cfg)
    torch.manual_seed(0)
    model = PALModel(mc, 5, d.n_users, d.n_comparisons,
                     prompt_embed_dim=5 if kind == "pal-b" else None,
                     n_items=m if kind == "item-effects" else None)
    guide = PALGuide(mc, d.n_users, torch.Generator().manual_seed(1), point=point,
                     n_items=m if kind == "item-effects" else None)
    with torch.no_grad():
        for p in [*model.parameters(), *guide.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    return model, guide, DeviceData.from_data(d, torch.device("cpu"))


def _value_and_grads(loss_fn, model, guide, batch, seed):
    import pyro

    params = [p for p in [*model.parameters(), *guide.parameters()] if p.requires_grad]
    pyro.set_rng_seed(seed)
    loss = loss_fn(batch)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in
                           zip(params, grads, strict=True)]


KINDS = [("pal-a", False), ("pal-a", True), ("pal-b", False), ("pal-b", True),
         ("graded", False), ("choices", False), ("item-effects", False), ("k1", False),
         ("k1", True), ("user-cutpoints", False), ("user-cutpoints-k1", False),
         ("mixture-prior", False), ("mixture-prior", True)]


@pytest.mark.parametrize(("kind", "point"), KINDS)
@pytest.mark.parametrize("minibatch", [True, False])
def test_site_elbo_equals_pyro_trace_elbo(kind, point, minibatch):
    """The site-by-site loss the trainer steps on is Pyro's Trace_ELBO: the same value and
    the same gradient of every parameter under the same random state."""
    from bayespal.inference.elbo import site_elbo_loss

    model, guide, dd = _variant(kind, point)
    batch = dd.batch(torch.tensor([3, 17, 5, 40, 22, 9, 31])) if minibatch else dd.batch()
    ours, g_ours = _value_and_grads(lambda b: site_elbo_loss(model, guide, b, 2), model,
                                    guide, batch, 4)
    theirs, g_ref = _value_and_grads(
        lambda b: Trace_ELBO(num_particles=2, max_plate_nesting=1).differentiable_loss(
            model.model, guide.guide, b), model, guide, batch, 4)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-4), (ours, theirs)
    assert any(float(g.abs().max()) > 0 for g in g_ours)
    for g, h in zip(g_ours, g_ref, strict=True):
        assert torch.allclose(g, h, rtol=1e-4, atol=1e-5), (g, h)
    # another random state gives another value (the draws are used, not fixed)
    if not point:
        other, _ = _value_and_grads(lambda b: site_elbo_loss(model, guide, b, 2), model,
                                    guide, batch, 5)
        assert not torch.allclose(other, ours)


def test_compile_setting_is_checked_and_resolved(monkeypatch):
    from bayespal.inference import TrainConfig
    from bayespal.inference import elbo as elbo_mod
    from bayespal.inference.trainer import _use_compile

    with pytest.raises(ValueError, match=r"compile: got 'yes'.*True, False or 'auto'"):
        TrainConfig(compile="yes")
    cpu = torch.device("cpu")
    assert _use_compile("auto", cpu) is False  # the CPU: arithmetic-bound, compile costs
    assert _use_compile(False, cpu) is False
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "compile": True}).compile is True
    old = TrainConfig().to_dict()
    old.pop("compile")
    assert TrainConfig.from_dict(old).compile is False  # files from before: uncompiled
    monkeypatch.setattr(elbo_mod.shutil, "which", lambda name: None)
    assert elbo_mod.compile_supported(cpu) == (
        False, "torch.compile on the CPU needs a C++ compiler (none on PATH)")
    with pytest.raises(ValueError, match=r"compile: got True on cpu.*C\+\+ compiler"):
        _use_compile(True, cpu)


def test_compiled_fit_equals_uncompiled_fit(inference="svi"):
    """compile=True traces the same step: with the compiler told to draw its random numbers
    as eager PyTorch does, a whole fit (PAL-B) ends at the same parameters as compile=False
    (its value and gradients are the ELBO's; test_site_elbo_equals_pyro_trace_elbo)."""
    import torch._inductor.config as inductor_config

    import bayespal

    if not bayespal.inference.elbo.compile_supported(torch.device("cpu"))[0]:
        pytest.skip("torch.compile cannot run here")
    rng = np.random.default_rng(2)
    n, m = 96, 20  # n a multiple of the batch: compiled and uncompiled batches coincide
    user = np.arange(n) % 12
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    d = PreferenceData.from_arrays(user, a, b, rng.integers(0, 2, n), rng.normal(size=(m, 6)),
                                   prompt=rng.integers(0, 3, n),
                                   prompts=rng.normal(size=(3, 4)))
    opts = dict(k=2, pref_dim=3, hidden=(8,), prompt_dim=2, inference=inference,
                batch_size=32, epochs=3, validation_fraction=0.0, local_epochs=0,
                device="cpu", progress=False, seed=3)
    with inductor_config.patch(fallback_random=True):
        compiled = bayespal.fit(d, compile=True, **opts)
    plain = bayespal.fit(d, compile=False, **opts)
    assert len(compiled.loss_history) == 3
    np.testing.assert_allclose(compiled.loss_history, plain.loss_history, rtol=1e-5)
    for (name, p), (_, q) in zip(compiled.guide.state_dict().items(),
                                 plain.guide.state_dict().items(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
    for (name, p), (_, q) in zip(compiled.model.state_dict().items(),
                                 plain.model.state_dict().items(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
