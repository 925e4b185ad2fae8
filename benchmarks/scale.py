"""Scale on one machine: time per epoch and peak memory (RSS) as the data grows.

N in {10k, 100k, 1M} comparisons, 10 per user (so 1k, 10k, 100k users), items growing
to 200k at D = 384 stored as float16 (``--items``: a fixed number instead, e.g. 1M for the
10M-comparison row), batch 4096. Each size runs in its own process so peak RSS is its own
(the data's generation included). With ``--converge`` the fits run to the plateau stop
with the defaults and report epochs, total time and held-out accuracy against the
Bayes-optimal accuracy; without it, ``--epochs`` epochs of one given mapping
(``hidden=(64,)``, no validation split, no local refinement) are timed.

    python benchmarks/scale.py [--converge] [--sizes 10000,100000,1000000] [--items N]
    python benchmarks/scale.py --sizes 10000000 --items 1000000 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def one(n: int, converge: bool, epochs: int, n_items: int | None = None) -> dict:
    import torch

    import bayespal
    from bayespal.data import PreferenceData
    from bayespal.datasets import synthetic
    from bayespal.metrics import accuracy

    users = n // 10
    items = n_items or min(200_000, max(2_000, n // 5))
    t0 = time.perf_counter()
    syn = synthetic(n_users=users, k=3, n_train=10, n_test=2, n_items=items, embed_dim=384,
                    pref_dim=8, seed=0)
    d = syn.data
    d = PreferenceData(d.user, d.item_a, d.item_b, d.label, d.items.astype(np.float16),
                       d.user_ids, d.item_ids)  # the item table held once, in float16
    train, test = d.subset(~syn.is_test), d.subset(syn.is_test)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    true_test = syn.true_prob[syn.is_test]
    del syn, d  # the float32 table: only the float16 one is needed from here
    timed = {} if converge else dict(hidden=(64,), validation_fraction=0, local_epochs=0)
    fit = bayespal.fit(train, k=3, pref_dim=8, batch_size=4096, lr=0.01, seed=0,
                       epochs=200 if converge else epochs, patience=5 if converge else 10**6,
                       tol=1e-3, progress=False, device="cpu", **timed)
    fit_s = time.perf_counter() - t0
    row = {"N": len(train), "users": users, "items": items, "epochs": len(fit.loss_history),
           "s_per_epoch": float(np.median(fit.epoch_seconds)), "fit_s": fit_s,
           "gen_s": gen_s, "threads": torch.get_num_threads()}
    if converge:
        row["accuracy"] = accuracy(fit.predict_proba(test), test.label)
        row["bayes"] = accuracy(true_test, test.label)
    row["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--converge", action="store_true")
    ap.add_argument("--epochs", type=int, default=3, help="epochs timed without --converge")
    ap.add_argument("--items", type=int, help="items (default: N / 5, 2k to 200k)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.converge, args.epochs, args.items)))
        return
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--epochs", str(args.epochs)]
        cmd += ["--items", str(args.items)] if args.items else []
        out = subprocess.run(cmd + (["--converge"] if args.converge else []),
                             capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    cols = ["N", "users", "items", "epochs", "s_per_epoch", "fit_s", "peak_rss_gb"]
    if args.converge:
        cols += ["accuracy", "bayes"]
    print("".join(f"{c:>13}" for c in cols))
    for r in rows:
        print("".join(f"{r[c]:>13.3f}" if isinstance(r[c], float) else f"{r[c]:>13}"
                      for c in cols))
    base = rows[0]
    for r in rows[1:]:
        print(f"N x{r['N'] / base['N']:.0f}: time per epoch x{r['s_per_epoch'] / base['s_per_epoch']:.1f}")


if __name__ == "__main__":
    main()
