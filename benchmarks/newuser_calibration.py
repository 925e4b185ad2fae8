"""Few-shot calibration of new users (PAL's protocol on synthetic data, K = 3):

- the Bayesian few-shot posterior with the population integrated over posterior draws
  (``population="draws"``) vs plugged in at its mean (``"mean"``);
- the reference recipe: a MAP population fit and maximum-likelihood few-shot weights.

Prints one table per method (accuracy, log-loss, ECE at n in {1, 2, 5, 10, 20, 50}) and
the Bayes-optimal accuracy of the same held-out comparisons.

    python benchmarks/newuser_calibration.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import bayespal
from bayespal.analysis.evaluation import evaluate_fewshot, fewshot_split
from bayespal.datasets import synthetic
from bayespal.metrics import accuracy


def main() -> None:
    syn = synthetic(n_users=500, k=3, n_train=40, n_test=20, seed=0)
    seen, unseen = syn.data.split_users(0.2, seed=0)
    sel = np.isin(syn.data.user_ids[syn.data.user], seen.user_ids)
    train, seen_test = syn.data.subset(sel & ~syn.is_test), syn.data.subset(sel & syn.is_test)
    svi = bayespal.fit(train, k=3, pref_dim=4, seed=0, progress=False)
    map_fit = bayespal.fit(train, k=3, pref_dim=4, inference="map", seed=0, progress=False)
    runs = {
        "bayes, population draws": evaluate_fewshot(svi, unseen, seen_test=seen_test),
        "bayes, population mean": evaluate_fewshot(svi, unseen, seen_test=seen_test,
                                                   population="mean"),
        "MAP fit + ML few-shot (reference)": evaluate_fewshot(map_fit, unseen,
                                                              seen_test=seen_test, method="point"),
    }
    # Bayes-optimal accuracy on exactly these held-out comparisons
    _, _, test = fewshot_split(unseen, 10, seed=0)
    key = pd.MultiIndex.from_arrays([syn.data.user_ids[syn.data.user], syn.data.item_a,
                                     syn.data.item_b])
    pos = key.get_indexer(pd.MultiIndex.from_arrays([test.user_ids[test.user], test.item_a,
                                                     test.item_b]))
    print(f"Bayes-optimal accuracy, unseen held-out: {accuracy(syn.true_prob[pos], test.label):.4f}; "
          f"seen held-out: {accuracy(syn.true_prob[syn.is_test & sel], seen_test.label):.4f}")
    for name, table in runs.items():
        print(f"\n{name}")
        print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
