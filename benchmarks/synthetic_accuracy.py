"""Issue 2's synthetic benchmark: K = 3, 400 users x 40 training + 20 held-out comparisons.

Held-out accuracy against the Bayes-optimal (true probabilities), log-loss, partition
users assigned to their true prototype, and the coverage of nominal 90% intervals of the
mixture users' weights (the mean-field q, and the exact conditional posterior given the
fitted population by importance sampling, ``place_users``), for:

- ``default``: ``bayespal.fit`` defaults (learned alpha, hidden (64,), plateau stopping);
- ``benchmark``: a fixed uniform prior (alpha = 1), hidden (16,), lr 0.03 and
  the whole learning-rate schedule (400 epochs, no plateau stop): the tests' configuration;
- ``benchmark, learned alpha``: the same with alpha learned by empirical Bayes;
- ``ensemble of 3``: three ``benchmark`` fits averaged (``fit(..., ensemble=3)``).

    python -m benchmarks.synthetic_accuracy [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd

import bayespal
from bayespal.datasets import synthetic
from bayespal.metrics import accuracy, log_loss
from bayespal.posterior.ensemble import EnsemblePAL
from bayespal.users.newuser import place_users

BENCHMARK = dict(hidden=(16,), concentration=1.0, lr=0.03, lr_final_factor=0.01, epochs=400,
                 patience=10**6)
SETTINGS = {
    "default": {},
    "benchmark": BENCHMARK,
    "benchmark, learned alpha": {**BENCHMARK, "concentration": None},
}


def _coverage(w, syn) -> tuple[float, float]:
    """Partition users assigned, and 90% interval coverage of mixture users (best perm)."""
    mean = w["mean"].values
    perm = list(min(itertools.permutations(range(mean.shape[1])),
                    key=lambda p: ((mean[:, list(p)] - syn.true_weights) ** 2).sum()))
    part = syn.group >= 0
    assigned = (mean[:, perm][part].argmax(1) == syn.group[part]).mean()
    lo, hi = w["lower"].values[:, perm], w["upper"].values[:, perm]
    cover = ((syn.true_weights >= lo) & (syn.true_weights <= hi))[~part].mean()
    return float(assigned), float(cover)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    syn = synthetic(n_users=400, k=3, n_train=40, n_test=20, seed=0)
    test = syn.test
    bayes = accuracy(syn.true_prob[syn.is_test], test.label)
    print(f"Bayes-optimal held-out accuracy {bayes:.4f} (expected {syn.bayes_accuracy(syn.is_test):.4f})")
    rows = []
    for seed in args.seeds:
        fits = {}
        for name, options in SETTINGS.items():
            fits[name] = bayespal.fit(syn.train, k=3, pref_dim=4, seed=seed, progress=False,
                                      **options)
        members = [fits["benchmark"]] + [
            bayespal.fit(syn.train, k=3, pref_dim=4, seed=seed + 100 * m, progress=False,
                         **BENCHMARK) for m in (1, 2)]
        fits["ensemble of 3"] = EnsemblePAL.from_members(members)
        for name, fit in fits.items():
            p = fit.predict_proba(test)
            assigned, cover = _coverage(fit.user_weights(ci=0.9), syn)
            exact = np.nan
            if not isinstance(fit, EnsemblePAL):
                _, exact = _coverage(place_users(fit, syn.train).weights(ci=0.9), syn)
            rows.append({"setting": name, "seed": seed, "accuracy": accuracy(p, test.label),
                         "gap (points)": 100 * (bayes - accuracy(p, test.label)),
                         "log_loss": log_loss(p, test.label), "assigned": assigned,
                         "coverage q": cover, "coverage exact": exact})
            print(f"seed {seed} {name:<26} accuracy {rows[-1]['accuracy']:.4f}", flush=True)
    table = pd.DataFrame(rows)
    print("\nper seed\n" + table.round(4).to_string(index=False))
    summary = table.drop(columns="seed").groupby("setting", sort=False).agg(["mean", "min", "max"])
    print("\nover seeds\n" + summary.round(4).to_string())


if __name__ == "__main__":
    main()
