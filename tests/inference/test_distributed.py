"""Distributed SVI: 2 gloo processes under torchrun match a single-process fit within
the spread between single-process fits with different seeds."""

import itertools
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bayespal
from bayespal.analysis.diagnostics import align_prototypes
from bayespal.datasets import synthetic
from bayespal.metrics import accuracy

# 0.2's fixed recipe (a cosine schedule of 200 epochs): distributed fits are compared with
# single-process ones, not tuned
RECIPE = dict(lr_schedule="cosine", epochs=200, lr_final_factor=0.05, patience=10)

pytestmark = pytest.mark.slow  # every test here fits a model

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_fit_matches_single_process(tmp_path):
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           str(HERE / "dist_fit_script.py"), str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (np.load(f"{out}.rank{r}.npz") for r in (0, 1))
    # replicas stay identical across ranks
    np.testing.assert_array_equal(r0["weights"], r1["weights"])
    np.testing.assert_array_equal(r0["prob"], r1["prob"])

    syn = synthetic(n_users=200, k=3, n_train=40, n_test=20, seed=2)
    singles = [bayespal.fit(syn.train, k=3, pref_dim=4, hidden=(64,), validation_fraction=0,
                            batch_size=512, **RECIPE, seed=s, progress=False) for s in (0, 1)]
    acc = [accuracy(f.predict_proba(syn.test, seed=0), syn.test.label) for f in singles]
    acc_dist = accuracy(r0["prob"], syn.test.label)
    print(f"held-out accuracy: distributed {acc_dist:.4f}, single {acc[0]:.4f} / {acc[1]:.4f}")
    # Monte Carlo error of a held-out accuracy: binomial se; two independent fits differ by
    # sqrt(2) se in sd; allow 3 sd (or the seed-to-seed spread, if larger)
    se = np.sqrt(acc[0] * (1 - acc[0]) / len(syn.test))
    assert abs(acc_dist - acc[0]) <= max(3 * np.sqrt(2) * se, 2 * abs(acc[0] - acc[1]))

    w0 = singles[0].user_weights()["mean"].values
    w1 = singles[1].user_weights()["mean"].values[:, align_prototypes(singles[0], singles[1])]
    wd = r0["weights"]
    perm = min(itertools.permutations(range(3)), key=lambda q: np.abs(wd[:, list(q)] - w0).sum())
    seed_gap = np.abs(w1 - w0).mean()
    dist_gap = np.abs(wd[:, list(perm)] - w0).mean()
    print(f"mean |weight difference|: distributed vs single {dist_gap:.4f}, "
          f"seed 0 vs seed 1 {seed_gap:.4f}")
    assert dist_gap <= max(0.03, 2 * seed_gap)
