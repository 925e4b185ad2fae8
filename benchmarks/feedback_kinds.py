"""Issue 15: how fast a new user is placed by each kind of question. Unseen users answer
questions of one kind (a pair, the best of four, a ranking of four), drawn from the truth's
Plackett-Luce model; after ``n`` questions their posterior (``NewUserPosteriors``, the
population fixed) predicts held-out pairs. The table gives held-out accuracy (mean and
standard error over users) against ``n``, the Bayes-optimal accuracy of the same pairs, and
the questions (and items read: a pair shows 2, the others 4) needed to reach 90% of the way
from chance (0.5) to Bayes-optimal.

Questions are chosen by information gain (``suggest_set``: greedy over a fresh random pool
of ``--pool`` items per question; a pair is the best of ``--pairs`` pool pairs) or at random
(``--select random``). The population is a default fit of the training users' pairs
(synthetic truth, tanh map, D = 16, K = 3, 400 users x 40 pairs).

    python -m benchmarks.feedback_kinds [--users 100] [--select information_gain] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayespal
from bayespal.data import ranking_stages
from bayespal.datasets import synthetic
from bayespal.users import NewUserPosteriors, suggest_set

KINDS = {"pair": (2, "best_of"), "best of 4": (4, "best_of"), "ranking of 4": (4, "ranking")}
SHOTS = (1, 2, 3, 4, 6, 8, 12, 16, 24)
HELD_OUT = 40


def _answer(rng, weights, rewards, sharpness, sets, kind):
    """The truth's answers to showing each user ``sets (U, n)`` as choices (Gumbel max on
    the utilities; best-of keeps the first place only)."""
    utility = sharpness * np.einsum("uk,kun->un", weights, rewards[:, sets])
    order = np.argsort(-(utility + rng.gumbel(size=utility.shape)), 1)
    take = 1 if kind == "best_of" else sets.shape[1] - 1
    ranks = np.full(sets.shape, np.inf)
    np.put_along_axis(ranks, order[:, :take], np.arange(1.0, take + 1)[None].repeat(len(sets), 0),
                      1)
    return ranking_stages(sets, ranks, rng)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--select", choices=("information_gain", "random"),
                    default="information_gain")
    ap.add_argument("--pool", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    syn = synthetic(n_users=400 + args.users, k=3, n_train=40, n_test=0, seed=args.seed)
    fit = bayespal.fit(syn.data.subset(syn.data.user < 400), 3, seed=args.seed, progress=False)
    weights = syn.true_weights[400:]
    rng = np.random.default_rng(args.seed + 1)
    n_items = syn.true_rewards.shape[1]
    hu = np.repeat(np.arange(args.users), HELD_OUT)  # held-out pairs of every unseen user
    ha = rng.integers(0, n_items, hu.size)
    hb = (ha + rng.integers(1, n_items, hu.size)) % n_items
    p_true = syn.true_probability(weights[hu], ha, hb)
    hy = rng.random(hu.size) < p_true
    bayes = float(np.maximum(p_true, 1 - p_true).mean())
    goal = 0.5 + 0.9 * (bayes - 0.5)
    rows, reach = [], {}
    for name, (size, kind) in KINDS.items():
        t0 = time.perf_counter()
        nu = NewUserPosteriors(fit, np.arange(args.users), items=syn.data.items, seed=0)
        for t in range(1, max(SHOTS) + 1):
            sets = np.empty((args.users, size), dtype=np.int64)
            for u in range(args.users):  # each user their own next question
                pool = rng.choice(n_items, args.pool, replace=False)
                if args.select == "random":
                    sets[u] = pool[:size]
                    continue
                q = suggest_set(nu, pool, size, kind, user=u, max_pairs=args.pairs,
                                num_draws=256, seed=t, rows=True)
                sets[u] = q.iloc[0, :size].to_numpy(dtype=np.int64)
            user, a, b, label, others = _answer(rng, weights, syn.true_rewards,
                                                syn.true_sharpness, sets, kind)
            nu.observe(user, a, b, label, rows=True,
                       others=others if size > 2 else None)
            if t in SHOTS:
                p = nu.predict_proba(hu, ha, hb, rows=True)
                right = ((p > 0.5) == hy).reshape(args.users, HELD_OUT).mean(1)
                rows.append({"kind": name, "questions": t, "accuracy": right.mean(),
                             "se": right.std(ddof=1) / np.sqrt(args.users)})
        hit = [r["questions"] for r in rows if r["kind"] == name and r["accuracy"] >= goal]
        reach[name] = hit[0] if hit else None
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    table = frame.pivot(index="questions", columns="kind", values="accuracy")
    se = frame.pivot(index="questions", columns="kind", values="se")
    print(f"{args.users} unseen users, {HELD_OUT} held-out pairs each, questions by "
          f"{args.select}; Bayes-optimal accuracy {bayes:.4f}; 90% of the way from chance: "
          f"{goal:.4f}")
    print((table.map(lambda v: f"{v:.4f}") + " +- " + se.map(lambda v: f"{v:.4f}"))
          [list(KINDS)].to_string())
    print()
    print(pd.DataFrame({"kind": list(KINDS),
                        "questions to 90%": [reach[k] for k in KINDS],
                        "items read": [None if reach[k] is None else reach[k] * KINDS[k][0]
                                       for k in KINDS]}).to_string(index=False))


if __name__ == "__main__":
    main()
