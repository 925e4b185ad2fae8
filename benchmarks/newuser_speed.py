"""New-user speed (issue 3 targets), medians of repeated timings:

- one ``update`` for K in {2, 4, 8} with n = 100 answers already in: <= 20 ms
- 10,000 candidate pairs scored by information gain: <= 100 ms
- 1,000 new users with 10 comparisons each placed in one call: <= 2 s

    python benchmarks/newuser_speed.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

import bayespal
from bayespal.active import score
from bayespal.datasets import synthetic
from bayespal.newuser import NewUser, NewUsers


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for k in (2, 4, 8):
        syn = synthetic(n_users=100, k=k, n_train=20, n_test=0, n_items=2000, seed=k)
        fit = bayespal.fit(syn.data, k=k, pref_dim=8, epochs=5, progress=False)
        nu = NewUser(fit)
        a = rng.integers(0, 2000, 100)
        nu.update(a, (a + 1) % 2000, rng.integers(0, 2, 100))
        state = {"n": 0}

        def one_update(nu=nu, state=state):
            i = state["n"] = state["n"] + 1
            return nu.update(i % 2000, (i + 7) % 2000, i % 2).ess  # .ess forces the lazy work

        rows.append((f"update, K={k}, n>=100 answers", median_ms(one_update, 15), 20))
        ca = rng.integers(0, 2000, 10_000)
        cb = (ca + rng.integers(1, 2000, 10_000)) % 2000
        rows.append((f"score 10k pairs (IG), K={k}",
                     median_ms(lambda nu=nu, ca=ca, cb=cb: score(nu, ca, cb), 15), 100))
        ids = np.arange(1000)
        users = np.repeat(ids, 10)
        pa = rng.integers(0, 2000, 10_000)
        pb = (pa + 3) % 2000
        y = rng.integers(0, 2, 10_000)

        def place(fit=fit, ids=ids, users=users, pa=pa, pb=pb, y=y):
            NewUsers(fit, ids, num_samples=1024).observe(users, pa, pb, y).weights()

        rows.append((f"place 1000 users x 10, K={k}", median_ms(place, 5), 2000))
    print(f"threads={torch.get_num_threads()}")
    print(f"{'operation':<34}{'median ms':>11}{'target ms':>11}")
    for name, ms, target in rows:
        print(f"{name:<34}{ms:>11.1f}{target:>11}")


if __name__ == "__main__":
    main()
