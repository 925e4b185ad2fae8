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


# Converged fits (the full schedule): CPU and GPU draw different random streams, so the
# same seed gives different fits; converged ones agree to within seed-to-seed spread.
CONVERGED = dict(k=3, pref_dim=4, hidden=(16,), epochs=400, patience=10**6, seed=0,
                 lr_schedule="cosine", lr_final_factor=0.05, validation_fraction=0,
                 progress=False)


def test_fit_on_cuda_keeps_everything_on_the_device_and_predicts_as_well(syn3):
    gpu = bayespal.fit(syn3.train, device="cuda", **CONVERGED)
    assert all(p.is_cuda for p in gpu.guide.parameters())
    assert all(p.is_cuda for p in gpu.model.parameters())
    cpu = bayespal.fit(syn3.train, device="cpu", **CONVERGED)
    acc_gpu = accuracy(gpu.predict_proba(syn3.test), syn3.test.label)
    acc_cpu = accuracy(cpu.predict_proba(syn3.test), syn3.test.label)
    print(f"held-out accuracy: cuda {acc_gpu:.4f}, cpu {acc_cpu:.4f}")
    assert abs(acc_gpu - acc_cpu) < 0.015
    assert np.isfinite(gpu.user_weights()["mean"].values).all()


def test_pal_b_on_cuda_fits_places_users_and_suggests():
    from bayespal.datasets import synthetic_prompted
    from bayespal.users.active import suggest
    from bayespal.users.newuser import NewUser

    data = synthetic_prompted(prompt_strength=1.0, seed=0)
    fit = bayespal.fit(data.train, k=2, pref_dim=4, hidden=(16,), prompt_dim=8, device="cuda",
                       seed=0, progress=False)
    assert all(p.is_cuda for p in fit.model.parameters())
    acc = accuracy(fit.predict_proba(data.test), data.test.label)
    print(f"PAL-B on cuda: held-out accuracy {acc:.4f}")
    assert acc > 0.85
    user = NewUser(fit).observe([0, 2], [1, 3], [1, 0], prompt=[0, 1])
    assert len(suggest(user, np.array([[0, 1, 2], [4, 5, 6], [7, 8, 9]]), n=2)) == 2


@pytest.mark.parametrize("variant", ["PAL-A", "PAL-B"])
def test_training_steps_make_no_host_round_trip(syn, variant):
    from bayespal.models import PALConfig, build

    from bayespal.datasets import synthetic_prompted
    from bayespal.inference.trainer import DeviceData, Trainer

    dev = torch.device("cuda")
    if variant == "PAL-A":
        data, cfg = syn.train, PALConfig(k=3, pref_dim=4)
    else:
        data, cfg = synthetic_prompted(seed=0).train, PALConfig(k=2, pref_dim=4, prompt_dim=8)
    gen = torch.Generator().manual_seed(0)
    model, guide = build(cfg, data.embed_dim, data.n_users, data.n_comparisons, gen,
                         None if data.prompts is None else data.prompts.shape[1])
    model, guide = model.to(dev), guide.to(dev)
    trainer = Trainer(model, guide, DeviceData.from_data(data, dev), batch_size=512, epochs=2,
                      lr=0.01, lr_schedule="cosine", lr_final_factor=0.1, num_particles=1,
                      weight_decay=0.0, patience=5, tol=1e-3, generator=gen)
    perm = torch.randperm(len(data)).to(dev)
    trainer._steps(perm)  # warm-up (lazy initialisation may synchronise once)
    # ``_steps`` itself switches Pyro's argument validation off (it reads values back)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        total = trainer._steps(perm)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert total.is_cuda and torch.isfinite(total).item()
