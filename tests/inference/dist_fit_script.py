"""Run by tests/inference/test_distributed.py under torchrun: a users-sharded gloo fit.

Usage: ``dist_fit_script.py OUT MODE [CHECKPOINT]``; MODE ``compare`` (0.2's fixed
recipe, no validation), ``default`` (every default: validation split, two mapping
candidates, local refinement; per-rank batch 256) or ``resume`` (validated, checkpointed
every epoch, slowed so that the test can kill a rank mid-fit; each rank writes its pid to
``OUT.pid<rank>``).
"""

import os
import sys
import time

import numpy as np
import torch

import bayespal
from bayespal.datasets import synthetic

# 0.2's fixed recipe (a cosine schedule): distributed fits are compared with
# single-process ones, not tuned
RECIPE = dict(k=3, pref_dim=4, hidden=(64,), lr_schedule="cosine", epochs=120,
              lr_final_factor=0.05, patience=10, seed=int(os.environ.get("FIT_SEED", 0)),
              progress=False, device="cpu")


class Slow:
    """Sleep at every epoch's end, so a test can kill a rank between epochs."""

    def on_epoch_end(self, info):
        time.sleep(0.25)


torch.set_num_threads(1)
out, mode = sys.argv[1], sys.argv[2]
world = int(os.environ["WORLD_SIZE"])
rank = int(os.environ["RANK"])
syn = synthetic(n_users=200, k=3, n_train=40, n_test=20, seed=2)
if mode == "compare":
    fit = bayespal.fit(syn.train, validation_fraction=0, batch_size=512 // world, **RECIPE,
                       distributed=True)
elif mode == "default":
    fit = bayespal.fit(syn.train, k=3, batch_size=256, seed=0, progress=False, device="cpu",
                       distributed=True)
    with open(f"{out}.reason{rank}", "w") as f:
        f.write(fit.selection.reason)
else:
    with open(f"{out}.pid{rank}", "w") as f:
        f.write(str(os.getpid()))
    fit = bayespal.fit(syn.train, validation_fraction=0.1, batch_size=256,
                       **{**RECIPE, "epochs": 30, "patience": 1000}, distributed=True,
                       checkpoint=sys.argv[3], checkpoint_every=1, callbacks=[Slow()])
assert fit.user_weights()["mean"].shape[0] == syn.train.n_users  # gathered: every user
np.savez(f"{out}.rank{rank}.npz", prob=fit.predict_proba(syn.test, seed=0),
         weights=fit.user_weights()["mean"].values, loss=fit.loss_history,
         validation=fit.validation_history)
torch.distributed.barrier()  # no rank leaves while another still communicates
torch.distributed.destroy_process_group()
