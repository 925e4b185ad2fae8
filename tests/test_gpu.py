"""The GPU path. Runs where CUDA is available, skipped elsewhere (CI machines have none)."""

import numpy as np
import pytest
import torch

import bayespal
from bayespal.datasets import synthetic
from bayespal.metrics import accuracy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def syn():
    return synthetic(n_users=200, k=3, n_train=40, n_test=20, seed=0)


def test_fit_on_cuda_keeps_everything_on_the_device_and_predicts_as_well(syn):
    gpu = bayespal.fit(syn.train, k=3, pref_dim=4, device="cuda", seed=0, progress=False)
    assert all(p.is_cuda for p in gpu.guide.parameters())
    assert all(p.is_cuda for p in gpu.model.parameters())
    cpu = bayespal.fit(syn.train, k=3, pref_dim=4, device="cpu", seed=0, progress=False)
    acc_gpu = accuracy(gpu.predict_proba(syn.test), syn.test.label)
    acc_cpu = accuracy(cpu.predict_proba(syn.test), syn.test.label)
    assert abs(acc_gpu - acc_cpu) < 0.02
    assert np.isfinite(gpu.user_weights()["mean"].values).all()


def test_training_steps_make_no_host_round_trip(syn):
    from bayespal.inference import DeviceData, Trainer
    from bayespal.models import IdealPointGuide, IdealPointModel, PALConfig

    dev = torch.device("cuda")
    data = syn.train
    cfg = PALConfig(k=3, pref_dim=4)
    gen = torch.Generator().manual_seed(0)
    model = IdealPointModel(cfg, data.embed_dim, data.n_users, data.n_comparisons).to(dev)
    guide = IdealPointGuide(cfg, data.n_users, gen).to(dev)
    trainer = Trainer(model, guide, DeviceData.from_data(data, dev), batch_size=512, epochs=2,
                      lr=0.01, lr_schedule="cosine", lr_final_factor=0.1, num_particles=1,
                      weight_decay=0.0, patience=5, tol=1e-3, generator=gen)
    perm = torch.randperm(len(data)).to(dev)
    trainer._steps(perm)  # warm-up (lazy initialisation may synchronise once)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        total = trainer._steps(perm)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert total.is_cuda and torch.isfinite(total).item()
