"""Issue 15: known-truth recovery for every kind of answer, one default fit each.

Synthetic truths (``bayespal.datasets.synthetic``, K = 2, 300 users, half single-type)
fitted on the truth's own features (``hidden=()``: the model family holds the truth), with
``bayespal.fit`` defaults otherwise. Per kind: held-out accuracy against the Bayes-optimal
accuracy and log-loss against the truth's (choices from sets: of the chosen item; graded
answers: of the observed level, accuracy over the decided comparisons), the 90% weight
intervals' coverage of the mixed users' true weights, and each cutpoint's 90% interval
against the truth's cutpoint.

    python -m benchmarks.recovery [--kinds pairs ties graded best-of-4 ranking-4 own-ties]
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

KINDS = {  # synthetic() options and fit options of each kind of answer
    "pairs": (dict(n_train=40), {}),
    "ties": (dict(n_train=40, cutpoints=(-0.8, 0.8)), {}),
    "graded": (dict(n_train=40, cutpoints=(-2.0, -0.7, 0.7, 2.0)), {}),
    "best-of-4": (dict(n_train=20, set_size=4, ranked=1), {}),
    "ranking-4": (dict(n_train=15, set_size=4), {}),
    "own-ties": (dict(n_train=40, cutpoints=(-0.8, 0.8), cutpoint_spread=0.6),
                 {"user_cutpoints": True}),
}


def run(kind: str, seed: int) -> dict:
    make, options = KINDS[kind]
    syn = synthetic(n_users=300, k=2, n_test=10, n_items=1000, sharpness=2.0, seed=seed,
                    **make)
    d = syn.data
    others = None if d.others is None else [r[r >= 0].tolist() for r in d.others]
    data = PreferenceData.from_arrays(d.user, d.item_a, d.item_b, d.label,
                                      syn.true_features.astype(np.float32),
                                      user_ids=np.arange(d.n_users), levels=d.levels,
                                      others=others, question=d.question)
    train, test = data.subset(~syn.is_test), data.subset(syn.is_test)
    t0 = time.perf_counter()
    fit = bayespal.fit(train, 2, hidden=(), seed=seed, progress=False, **options)
    seconds = time.perf_counter() - t0
    scores = answer_metrics(predict_answers(fit, test), test)
    truth = answer_metrics(syn.true_outcome_probs[syn.is_test] if syn.true_outcome_probs
                           is not None else syn.true_prob[syn.is_test], test)
    w = fit.user_weights(ci=0.9)
    true_w = syn.true_weights[:, match_prototypes(w["mean"].values.T, syn.true_weights.T)]
    inside = (w["lower"].values <= true_w) & (true_w <= w["upper"].values)
    row = {"kind": kind, "answers": train.n_comparisons, "accuracy": scores["accuracy"],
           "Bayes": syn.bayes_accuracy(syn.is_test), "log-loss": scores["log_loss"],
           "truth log-loss": truth["log_loss"], "cover mixed": inside[syn.group < 0].mean(),
           "cutpoints": "", "seconds": seconds}
    if data.levels > 2:
        cut = fit.cutpoints(ci=0.9)
        upper = [(float(lo), float(hi), float(t)) for lo, hi, t in
                 zip(cut["lower"].values, cut["upper"].values, syn.true_cutpoints,
                     strict=True) if t > 0]
        row["cutpoints"] = "; ".join(f"{t:g} in [{lo:.3f}, {hi:.3f}]"
                                     f"{'' if lo <= t <= hi else ' (outside)'}"
                                     for lo, hi, t in upper)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for kind in args.kinds:
        rows.append(run(kind, args.seed))
        print(f"{kind}: {rows[-1]['seconds']:.0f} s", flush=True)
    table = pd.DataFrame(rows).set_index("kind")
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(table.round(4).to_string())


if __name__ == "__main__":
    main()
