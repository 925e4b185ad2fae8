"""Active learning for new users: held-out accuracy after 1..30 answered queries chosen by
information gain (BALD), predictive uncertainty, or at random.

A population is fitted on 500 synthetic users (K = 3); 100 new users with known true
weights then answer queries from their own pool of 500 candidate pairs, labels drawn
from the truth. Accuracy is the *expected* accuracy on 200 held-out pairs per user
(the truth's probability of the predicted answer), so label noise does not blur the
curves. Prints mean and standard error per step, the first step reaching 90% of the
Bayes-optimal accuracy, and writes ``active_learning.png``.

    python benchmarks/active_learning.py [--out active_learning.png]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import bayespal  # noqa: E402
from bayespal.datasets import synthetic  # noqa: E402
from bayespal.users.active import STRATEGIES, acquisition  # noqa: E402
from bayespal.users.newuser import NewUserPosteriors  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="active_learning.png")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--pool", type=int, default=500)
    args = ap.parse_args()

    syn = synthetic(n_users=500 + args.users, k=3, n_train=40, n_test=0, seed=0)
    seen = syn.data.subset(syn.data.user < 500)
    fit = bayespal.fit(seen, k=3, pref_dim=4, seed=0, progress=False)
    rng = np.random.default_rng(1)
    new_ids = np.arange(500, 500 + args.users)
    truth = syn.true_weights[new_ids]
    m = syn.data.n_items

    def pairs(n):
        a = rng.integers(0, m, (args.users, n))
        return a, (a + rng.integers(1, m, (args.users, n))) % m

    pool_a, pool_b = pairs(args.pool)
    test_a, test_b = pairs(200)
    p_test = np.stack([syn.true_probability(truth[u], test_a[u], test_b[u])
                       for u in range(args.users)])
    bayes = float(np.maximum(p_test, 1 - p_test).mean())
    answer_noise = rng.random((args.users, args.pool))

    curves = {}
    for strategy in STRATEGIES:
        post = NewUserPosteriors(fit, new_ids, num_samples=2048, seed=0)
        asked = np.zeros((args.users, args.pool), bool)
        acc = np.zeros((args.queries + 1, args.users))
        for t in range(args.queries + 1):
            pred = post.predict_proba(np.repeat(new_ids, 200), test_a.ravel(), test_b.ravel())
            pred = pred.reshape(args.users, 200)
            acc[t] = np.where(pred > 0.5, p_test, 1 - p_test).mean(1)
            if t == args.queries:
                break
            choice = np.empty(args.users, int)
            for u, uid in enumerate(new_ids):  # per-user scoring: each user has their own pool
                s = acquisition(post, pool_a[u], pool_b[u], strategy, user=uid, seed=1000 * t + u)
                s[asked[u]] = -np.inf
                choice[u] = int(np.argmax(s))
            asked[np.arange(args.users), choice] = True
            a, b = pool_a[np.arange(args.users), choice], pool_b[np.arange(args.users), choice]
            p = np.array([syn.true_probability(truth[u], a[u:u + 1], b[u:u + 1])[0]
                          for u in range(args.users)])
            y = (answer_noise[np.arange(args.users), choice] < p).astype(int)
            post.observe(new_ids, a, b, y)
        curves[strategy] = acc

    target = 0.9 * bayes
    print(f"Bayes-optimal accuracy {bayes:.4f}; 90% of it {target:.4f}; "
          f"{args.users} new users, pools of {args.pool}")
    print(f"{'queries':>7}" + "".join(f"{s:>26}" for s in STRATEGIES))
    for t in range(args.queries + 1):
        cells = "".join(
            f"{curves[s][t].mean():>17.4f} +- {curves[s][t].std() / np.sqrt(args.users):.4f}"
            for s in STRATEGIES)
        print(f"{t:>7}{cells}")
    first = {}
    for s in STRATEGIES:
        hit = np.flatnonzero(curves[s].mean(1) >= target)
        first[s] = int(hit[0]) if len(hit) else None
        print(f"{s}: first reaches {target:.4f} after {first[s]} queries")
    ig, rnd = first["information_gain"], first["random"]
    if ig is not None and rnd is not None:
        print(f"information gain needs {ig} vs random {rnd}: "
              f"{'meets' if 2 * ig <= rnd else 'misses'} the target (<= half)")

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = np.arange(args.queries + 1)
    for s in STRATEGIES:
        mean, se = curves[s].mean(1), curves[s].std(1) / np.sqrt(args.users)
        ax.plot(steps, mean, label=s)
        ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
    ax.axhline(bayes, color="k", ls="--", lw=1, label="Bayes-optimal")
    ax.axhline(target, color="gray", ls=":", lw=1, label="90% of Bayes-optimal")
    ax.set(xlabel="answered queries", ylabel="expected held-out accuracy",
           title="Active queries for new users (synthetic, K = 3)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
