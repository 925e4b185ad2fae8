"""The weights' population prior: the learned mixture of Dirichlets (the default) against
one learned Dirichlet, on populations of single-type users, mixed users and both.

Synthetic truths (``bayespal.datasets.synthetic``, 400 users x 40 answers, sharpness 2),
fitted on the truth's own features (``hidden=()``: the model family holds the truth, so
what differs is the prior alone) with ``bayespal.fit`` defaults otherwise, on 300 users;
the other 100 are new users placed from 5 and from 20 of their answers. Per population,
prior and seed: seen users' held-out accuracy (and the Bayes-optimal), log-loss and ECE;
the 90% weight intervals' coverage of the mixed users' true weights; new users' log-loss
and ECE after 5 and 20 answers, and the coverage of their 90% intervals after 20. Then
the means over seeds.

    python -m benchmarks.weight_prior [--seeds 0 1 2 3] [--populations half mixed ...]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayespal
from bayespal.analysis.evaluation import answer_metrics, predict_answers
from bayespal.data import PreferenceData
from bayespal.datasets import synthetic
from bayespal.model.matching import match_prototypes
from bayespal.users.newuser import place_users

POPULATIONS = {  # synthetic() options: K, share of single-type users, mixed users' Dirichlet
    "half": dict(k=2, partition_fraction=0.5),
    "mixed": dict(k=2, partition_fraction=0.0),
    "mixed-dense": dict(k=2, partition_fraction=0.0, mixture_concentration=4.0),
    "singles": dict(k=2, partition_fraction=1.0),
    "k3-half": dict(k=3, partition_fraction=0.5),
}
SEEN = 300


def _cover(w, true_w: np.ndarray, mixed: np.ndarray) -> float:
    inside = (w["lower"].values <= true_w) & (true_w <= w["upper"].values)
    return float(inside[mixed].mean()) if mixed.any() else float("nan")


def run(population: str, prior: str, seed: int) -> dict:
    opts = dict(POPULATIONS[population])
    k = opts.pop("k")
    syn = synthetic(n_users=SEEN + 100, k=k, n_train=40, n_test=10, n_items=1000,
                    sharpness=2.0, seed=seed, **opts)
    d = syn.data
    data = PreferenceData.from_arrays(d.user, d.item_a, d.item_b, d.label,
                                      syn.true_features.astype(np.float32),
                                      user_ids=np.arange(d.n_users))
    new = d.user >= SEEN
    train, test = data.subset(~syn.is_test & ~new), data.subset(syn.is_test & ~new)
    t0 = time.perf_counter()
    fit = bayespal.fit(train, k, hidden=(), seed=seed, progress=False, weight_prior=prior)
    seconds = time.perf_counter() - t0
    seen = answer_metrics(predict_answers(fit, test), test)
    w = fit.user_weights(ci=0.9)
    ids = w["user"].values.astype(int)
    perm = match_prototypes(w["mean"].values.T, syn.true_weights[ids].T)
    row = {"population": population, "prior": prior, "seed": seed,
           "accuracy": seen["accuracy"], "Bayes": syn.bayes_accuracy(syn.is_test & ~new),
           "log-loss": seen["log_loss"], "ECE": seen["ece"],
           "cover mixed": _cover(w, syn.true_weights[ids][:, perm], syn.group[ids] < 0)}
    pool = data.subset(~syn.is_test & new)
    rank = pool.rank_within_users(np.random.default_rng(seed))
    held = data.subset(syn.is_test & new)
    for n in (5, 20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # low-ESS notes
            placed = place_users(fit, pool.subset(rank < n), seed=seed)
            scores = answer_metrics(predict_answers(placed, held), held)
        row[f"new {n} log-loss"], row[f"new {n} ECE"] = scores["log_loss"], scores["ece"]
        if n == 20:
            pw = placed.weights(ci=0.9)
            pids = np.asarray(placed.ids).astype(int)
            row["new 20 cover mixed"] = _cover(pw, syn.true_weights[pids][:, perm],
                                               syn.group[pids] < 0)
    row["seconds"] = seconds
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--populations", nargs="+", default=list(POPULATIONS),
                    choices=list(POPULATIONS))
    args = ap.parse_args()
    rows = []
    for population in args.populations:
        for seed in args.seeds:
            for prior in ("mixture", "dirichlet"):
                rows.append(run(population, prior, seed))
                print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False, header=False),
                      flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print("\nper seed\n", table.round(4).to_string(index=False))
    mean = table.drop(columns="seed").groupby(["population", "prior"], sort=False).mean()
    print(f"\nmeans over seeds {args.seeds}\n", mean.round(4).to_string())


if __name__ == "__main__":
    main()
