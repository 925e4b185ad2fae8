"""Checkpoints survive SIGKILL; a resumed fit ends exactly where an uninterrupted one ends."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import bayespal
from bayespal import files as checkpoint
from bayespal.datasets import synthetic

SCRIPT = """
import sys, bayespal
from bayespal.datasets import synthetic
syn = synthetic(n_users=300, n_train=30, n_test=0, seed=1)
bayespal.fit(syn.data, k=3, pref_dim=4, hidden=(16,), validation_fraction=0, epochs=30,
             patience=1000, batch_size=128, seed=3, progress=False, checkpoint=sys.argv[1],
             checkpoint_every=1)
"""


def fit_args():
    syn = synthetic(n_users=300, n_train=30, n_test=0, seed=1)
    return syn.data, dict(k=3, pref_dim=4, hidden=(16,), validation_fraction=0, epochs=30,
                          patience=1000, batch_size=128, seed=3, progress=False)


@pytest.mark.slow
def test_killed_fit_resumes_to_the_same_result(tmp_path):
    path = tmp_path / "fit.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)])
    deadline = time.time() + 120
    epochs_done = 0
    while time.time() < deadline:  # wait for a few epochs' checkpoints, then kill -9
        if path.exists():
            _, meta = checkpoint.read(path, "checkpoint")
            epochs_done = meta["epochs_done"]
            if epochs_done >= 3:
                break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= epochs_done < 30, epochs_done
    data, kw = fit_args()
    resumed = bayespal.fit(data, **kw, checkpoint=path)
    uninterrupted = bayespal.fit(data, **kw)
    assert len(resumed.loss_history) == 30
    np.testing.assert_array_equal(resumed.loss_history, uninterrupted.loss_history)
    for a, b in zip(resumed.guide.state_dict().values(), uninterrupted.guide.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(resumed.predict_proba(data),
                                  uninterrupted.predict_proba(data))


@pytest.mark.slow
def test_checkpoint_from_another_fit_is_refused(tmp_path):
    data, kw = fit_args()
    path = tmp_path / "fit.ckpt"
    bayespal.fit(data, **{**kw, "epochs": 2}, checkpoint=path)
    with pytest.raises(checkpoint.FileFormatError, match="train_config"):
        bayespal.fit(data, **{**kw, "epochs": 3}, checkpoint=path)
    with pytest.raises(checkpoint.FileFormatError, match="model_config"):
        bayespal.fit(data, **{**kw, "epochs": 2, "k": 2}, checkpoint=path)


@pytest.mark.slow
def test_a_self_tuning_fit_checkpoints_each_candidate_and_resumes_from_them(tmp_path):
    syn = synthetic(n_users=60, n_train=40, n_test=0, seed=1)
    kw = dict(k=2, pref_dim=4, epochs=6, patience=1000, batch_size=128, seed=3, progress=False)
    path = tmp_path / "fit.ckpt"
    first = bayespal.fit(syn.data, checkpoint=path, **kw)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["fit.candidate0.ckpt", "fit.candidate1.ckpt"]  # no refit: no third
    again = bayespal.fit(syn.data, checkpoint=path, **kw)  # every stage resumes as finished
    np.testing.assert_array_equal(again.loss_history, first.loss_history)
    assert again.selection.candidates.drop(columns="seconds").equals(
        first.selection.candidates.drop(columns="seconds"))


def test_tampered_and_truncated_files_are_refused(tmp_path):
    path = tmp_path / "x.bp"
    checkpoint.write_atomic(path, {"a": torch.arange(10.0)}, {"n": 1}, kind="checkpoint")
    tensors, meta = checkpoint.read(path, "checkpoint")
    assert meta == {"n": 1} and torch.equal(tensors["a"], torch.arange(10.0))
    blob = bytearray(path.read_bytes())
    (tmp_path / "trunc.bp").write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(checkpoint.FileFormatError, match="truncated"):
        checkpoint.read(tmp_path / "trunc.bp", "checkpoint")
    blob[-3] ^= 0xFF  # flip bits inside the tensor data
    (tmp_path / "tamper.bp").write_bytes(bytes(blob))
    with pytest.raises(checkpoint.FileFormatError, match="checksum"):
        checkpoint.read(tmp_path / "tamper.bp", "checkpoint")
    with pytest.raises(checkpoint.FileFormatError, match="kind 'checkpoint'; expected a bayespal model"):
        checkpoint.read(path, "model")
    (tmp_path / "foreign.bp").write_bytes(b"not a safetensors file at all")
    with pytest.raises(checkpoint.FileFormatError):
        checkpoint.read(tmp_path / "foreign.bp", "checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["x.bp", "trunc.bp", "tamper.bp", "foreign.bp"])  # no temp files left behind
