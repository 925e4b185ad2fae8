"""PAL-B vs PAL-A on prompt-dependent and prompt-free synthetic data (issue 5).

``synthetic_prompted``: 300 users of K = 2 types, 40 training + 20 held-out comparisons
each, 40 prompts; ``prompt_strength`` 1 makes the preferred response depend on the
prompt, 0 makes prompts irrelevant. Held-out accuracy and log-loss of PAL-A, PAL-B
(squared distance) and PAL-B with the reference's cosine score, with the Bayes-optimal.

    python -m benchmarks.pal_b [--seed 0]
"""

from __future__ import annotations

import argparse

import bayespal
from bayespal.datasets import synthetic_prompted
from bayespal.metrics import accuracy, log_loss

MODELS = {"PAL-A": {}, "PAL-B": {"prompt_dim": 8}, "PAL-B cosine": {"prompt_dim": 8,
                                                                      "score": "cosine"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{'prompt_strength':<17}{'model':<15}{'accuracy':>10}{'log-loss':>10}")
    for strength in (1.0, 0.0):
        syn = synthetic_prompted(prompt_strength=strength, seed=args.seed)
        test, truth = syn.test, syn.true_prob[syn.is_test]
        for name, kw in MODELS.items():
            fit = bayespal.fit(syn.train, k=2, pref_dim=4, hidden=(16,), seed=args.seed,
                               progress=False, **kw)
            p = fit.predict_proba(test)
            print(f"{strength:<17}{name:<15}{accuracy(p, test.label):>10.4f}"
                  f"{log_loss(p, test.label):>10.4f}")
        print(f"{strength:<17}{'Bayes-optimal':<15}{accuracy(truth, test.label):>10.4f}"
              f"{log_loss(truth, test.label):>10.4f}")


if __name__ == "__main__":
    main()
