"""The Persona report (issue 5): seen and unseen users, K = 1 and K = 3, Bayesian and MAP.

The shipped Persona demo data (Anthropic persona statements, CC-BY-4.0; MiniLM
embeddings): ``--users`` users of 3 preference types, 60 comparisons each. 20% of the
users are unseen. Seen users: 40 training comparisons, 20 held out. Unseen users: placed
from n in {1, 2, 5, 10, 20, 50} of their comparisons (the population fixed, no refit),
scored on 10 others. "Bayesian" is the SVI fit with posterior placement; "MAP" is point
estimates everywhere with the reference PAL's maximum-likelihood placement. Prints
accuracy, log-loss and expected calibration error (ECE, 10 bins), and the Bayes-optimal
(true probabilities) on the same comparisons.

    python -m benchmarks.persona_report [--users 250] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import bayespal
from bayespal.analysis.evaluation import SHOTS, _metrics, evaluate_fewshot, fewshot_split
from bayespal.datasets import persona_demo

N_TEST_UNSEEN = 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    syn = persona_demo(n_users=args.users, k=3, n_train=40, n_test=20, seed=args.seed)
    seen, unseen = syn.data.split_users(0.2, seed=args.seed)
    in_seen = np.isin(syn.data.user_ids[syn.data.user], seen.user_ids)
    train = syn.data.subset(in_seen & ~syn.is_test)
    test = syn.data.subset(in_seen & syn.is_test)
    _, _, held = fewshot_split(unseen, N_TEST_UNSEEN, args.seed)  # what evaluate_fewshot holds out

    def truth(d) -> np.ndarray:
        return syn.true_probability(syn.true_weights[d.user_ids[d.user]], d.item_a, d.item_b)

    rows = [{"model": "Bayes-optimal", "group": "seen", **_metrics(truth(test), test.label)}]
    rows += [{"model": "Bayes-optimal", "group": "unseen", **_metrics(truth(held), held.label)}]
    print(f"Persona: {syn.data.n_items} statements, {train.n_users} seen users "
          f"({len(train)} training comparisons), {unseen.n_users} unseen users, 3 true types")
    for k in (1, 3):
        for inference, method in (("svi", "bayes"), ("map", "point")):
            name = f"K={k} {'Bayesian' if inference == 'svi' else 'MAP'}"
            t0 = time.perf_counter()
            fit = bayespal.fit(train, k=k, pref_dim=8, inference=inference, seed=args.seed,
                               progress=False)
            table = evaluate_fewshot(fit, unseen, seen_test=test, shots=SHOTS,
                                     n_test=N_TEST_UNSEEN, method=method, seed=args.seed)
            print(f"{name}: fitted and evaluated in {time.perf_counter() - t0:.1f} s")
            for _, r in table.iterrows():
                group = "seen" if r.group == "seen" else f"unseen n={int(r.n_shots)}"
                rows.append({"model": name, "group": group, "accuracy": r.accuracy,
                             "log_loss": r.log_loss, "ece": r.ece})
    report = pd.DataFrame(rows)
    order = ["seen"] + [f"unseen n={n}" for n in SHOTS] + ["unseen"]
    for metric in ("accuracy", "log_loss", "ece"):
        wide = report.pivot(index="model", columns="group", values=metric)
        wide = wide[[c for c in order if c in wide.columns]]
        print(f"\n{metric}")
        print(wide.round(4).to_string(na_rep="-"))


if __name__ == "__main__":
    main()
