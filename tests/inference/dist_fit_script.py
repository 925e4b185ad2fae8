"""Run by tests/test_distributed.py under torchrun: a 2-process gloo fit."""

import sys

import numpy as np
import torch

import bayespal
from bayespal.datasets import synthetic

# 0.2's fixed recipe (a cosine schedule of 200 epochs): distributed fits are compared with
# single-process ones, not tuned
RECIPE = dict(lr_schedule="cosine", epochs=200, lr_final_factor=0.05, patience=10)

torch.set_num_threads(1)
syn = synthetic(n_users=200, k=3, n_train=40, n_test=20, seed=2)
fit = bayespal.fit(syn.train, k=3, pref_dim=4, hidden=(64,), validation_fraction=0,
                   batch_size=256, **RECIPE, seed=0, progress=False, distributed=True, device="cpu")
rank = torch.distributed.get_rank()
p = fit.predict_proba(syn.test, seed=0)
np.savez(f"{sys.argv[1]}.rank{rank}.npz", prob=p, weights=fit.user_weights()["mean"].values,
         epochs=len(fit.loss_history))
torch.distributed.destroy_process_group()
