"""Issue 13: does ``select_k`` (``fit(k="auto")``) find the number of kinds of people?

Synthetic data with a known number of prototypes K_true, from both generators
(``synthetic``: tanh of unit-norm 16-d items; ``synthetic_deep``: a GELU network of
Gaussian 48-d items), several seeds each. A run counts as right when it chooses K_true,
or a larger K whose extra prototypes (beyond the K_true largest) carry < 2% of the users'
weight. With K_true = 1 the chosen fit's held-out accuracy is compared with a K = 1 fit
(Bradley-Terry on the mapped items).

    python -m benchmarks.select_k [--k-true 1 2 3 5] [--seeds 0 1 2 3 4] [--users 300]
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

import bayespal
from bayespal.datasets import synthetic, synthetic_deep
from bayespal.metrics import accuracy

GENERATORS = {"tanh": synthetic, "gelu": synthetic_deep}
KS = (1, 2, 3, 4, 5, 6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k-true", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--generators", nargs="+", default=list(GENERATORS))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for gen in args.generators:
        for k_true in args.k_true:
            for seed in args.seeds:
                syn = GENERATORS[gen](n_users=args.users, k=k_true, n_train=40, n_test=10,
                                      seed=seed)
                t0 = time.perf_counter()
                res = bayespal.select_k(syn.train, ks=KS, seed=seed)
                seconds = time.perf_counter() - t0
                share = res.table.loc[res.table["k"] == res.k, "weight_share"].iloc[0]
                extra = float(sum(share[k_true:]))
                row = {"generator": gen, "k_true": k_true, "seed": seed, "chosen": res.k,
                       "extra share": extra,
                       "right": res.k == k_true or (res.k > k_true and extra < 0.02),
                       "seconds": seconds,
                       "candidates seconds": float(res.table["seconds"].sum())}
                if k_true == 1:
                    one = bayespal.fit(syn.train, k=1, seed=seed, progress=False)
                    row["acc auto"] = accuracy(res.fit.predict_proba(syn.test), syn.test.label)
                    row["acc K=1"] = accuracy(one.predict_proba(syn.test), syn.test.label)
                rows.append(row)
                print(f"{gen} K_true={k_true} seed {seed}: chose {res.k} (extra share "
                      f"{extra:.3f}) in {seconds:.0f} s\n"
                      + res.table.drop(columns="weight_share").round(4).to_string(index=False),
                      flush=True)
    table = pd.DataFrame(rows)
    print("\nper run\n" + table.round(4).to_string(index=False))
    summary = table.groupby(["generator", "k_true"]).agg(
        right=("right", "sum"), runs=("right", "size"), chosen=("chosen", list),
        seconds=("seconds", "median"))
    print("\nright out of runs\n" + summary.to_string())
    if "acc auto" in table:
        one = table.dropna(subset=["acc auto"])
        print("\nK_true = 1: auto vs K = 1 accuracy (points): "
              + ", ".join(f"{100 * (a - b):+.2f}" for a, b in
                          zip(one["acc auto"], one["acc K=1"], strict=True)))


if __name__ == "__main__":
    main()
