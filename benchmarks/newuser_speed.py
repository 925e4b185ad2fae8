"""New-user speed, load and exactness, medians of repeated timings:

- one ``update`` for K in {2, 4, 8} with n = 100 answers already in: <= 20 ms
- 10,000 candidate pairs scored by information gain: <= 100 ms
- 1,000 new users with 10 comparisons each placed in one call: <= 2 s
- 10,000 new users with 20 answers each in one call: <= 20 s and <= 2 GB (peak RSS of a
  fresh process, which includes Python, torch and the fit)
- one ``update`` + ``weights()`` with 1,000 answers already in: <= 20 ms
- the posterior with n = 200 and 1,000 answers against NUTS (mean and 90% interval within
  0.02), and the spread of the posterior mean over sampler seeds at n = 1,000 (<= 0.01)

    python benchmarks/newuser_speed.py
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import torch

import bayespal
from bayespal.datasets import synthetic
from bayespal.users.active import acquisition
from bayespal.users.newuser import NewUser, NewUserPosteriors

LOAD_SCRIPT = """
import resource, sys, time, numpy as np, bayespal
from bayespal.datasets import synthetic
from bayespal.users.newuser import NewUserPosteriors
syn = synthetic(n_users=200, k=3, n_train=20, n_test=0, n_items=2000, seed=0)
fit = bayespal.fit(syn.data, k=3, pref_dim=8, epochs=5, progress=False)
rng = np.random.default_rng(0)
u = 10_000
users = np.repeat(np.arange(u), 20)
a = rng.integers(0, 2000, 20 * u)
b = (a + rng.integers(1, 2000, 20 * u)) % 2000
y = rng.integers(0, 2, 20 * u)
t0 = time.perf_counter()
NewUserPosteriors(fit, np.arange(u)).observe(users, a, b, y).weights()
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def nuts(dr: torch.Tensor, y: np.ndarray, prior, seed: int) -> np.ndarray:
    import pyro
    import pyro.distributions as dist
    from pyro.infer import MCMC, NUTS

    obs = torch.as_tensor(y, dtype=torch.float32)

    def model():
        w = pyro.sample("w", prior)
        with pyro.plate("n", len(obs)):
            pyro.sample("y", dist.Bernoulli(logits=dr @ w), obs=obs)

    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model), num_samples=3000, warmup_steps=500, disable_progbar=True)
    mcmc.run()
    return mcmc.get_samples()["w"].numpy()


def exactness_rows() -> list[tuple]:
    rows = []
    for k in (2, 4):
        syn = synthetic(n_users=60, k=k, n_train=20, n_test=0, n_items=300, seed=k)
        fit = bayespal.fit(syn.data, k=k, pref_dim=4, epochs=40, seed=0, progress=False)
        for n in (200, 1000):
            rng = np.random.default_rng(10 * k + n)
            a = rng.integers(0, 300, n)
            b = (a + rng.integers(1, 300, n)) % 300
            nu = NewUser(fit, population="mean", seed=1)
            dr = nu.pop.terms(torch.as_tensor(a), torch.as_tensor(b))[0][0]
            w_true = torch.as_tensor(rng.dirichlet(np.ones(k)), dtype=torch.float32)
            y = (rng.random(n) < torch.sigmoid(dr @ w_true).numpy()).astype(int)
            ours = nu.observe(a, b, y).weights(ci=0.9)
            ref = nuts(dr, y, nu.pop.draws.weights_prior(0), n)
            err = max(np.abs(ours["mean"].values[0] - ref.mean(0)).max(),
                      np.abs(ours["lower"].values[0] - np.quantile(ref, 0.05, 0)).max(),
                      np.abs(ours["upper"].values[0] - np.quantile(ref, 0.95, 0)).max())
            means = [NewUser(fit, seed=s).observe(a, b, y).weights()["mean"].values[0]
                     for s in range(5)]
            spread = float(np.ptp(np.array(means), 0).max())
            rows.append((k, n, err, float(ours["ess"].values[0]), nu.num_samples, spread))
    return rows


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for k in (2, 4, 8):
        syn = synthetic(n_users=100, k=k, n_train=20, n_test=0, n_items=2000, seed=k)
        fit = bayespal.fit(syn.data, k=k, pref_dim=8, epochs=5, progress=False)
        nu = NewUser(fit)
        a = rng.integers(0, 2000, 100)
        nu.observe(a, (a + 1) % 2000, rng.integers(0, 2, 100))
        state = {"n": 0}

        def one_update(nu=nu, state=state):
            i = state["n"] = state["n"] + 1
            return nu.observe(i % 2000, (i + 7) % 2000, i % 2).ess  # .ess forces the lazy work

        rows.append((f"update, K={k}, n>=100 answers", median_ms(one_update, 15), 20))
        ca = rng.integers(0, 2000, 10_000)
        cb = (ca + rng.integers(1, 2000, 10_000)) % 2000
        rows.append((f"score 10k pairs (IG), K={k}",
                     median_ms(lambda nu=nu, ca=ca, cb=cb: acquisition(nu, ca, cb), 15), 100))
        ids = np.arange(1000)
        users = np.repeat(ids, 10)
        pa = rng.integers(0, 2000, 10_000)
        pb = (pa + 3) % 2000
        y = rng.integers(0, 2, 10_000)

        def place(fit=fit, ids=ids, users=users, pa=pa, pb=pb, y=y):
            NewUserPosteriors(fit, ids, num_samples=1024).observe(users, pa, pb, y).weights()

        rows.append((f"place 1000 users x 10, K={k}", median_ms(place, 5), 2000))
        if k == 4:  # sequential answers up to 1,000: the last 100 update + weights() calls
            seq = NewUser(fit, seed=0)
            a = rng.integers(0, 2000, 1100)
            b = (a + rng.integers(1, 2000, 1100)) % 2000
            y = rng.integers(0, 2, 1100)
            times = []
            for i in range(1100):
                t0 = time.perf_counter()
                seq.observe(a[i], b[i], y[i]).weights()
                times.append(time.perf_counter() - t0)
            late = np.array(times[1000:]) * 1000
            rows.append(("update+weights at 1000 answers, K=4", float(np.median(late)), 20))
            rows.append(("  (same, slowest of those 100)", float(late.max()), None))
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT], capture_output=True, text=True,
                         check=True).stdout.split()
    print(f"threads={torch.get_num_threads()}")
    print(f"{'operation':<40}{'median ms':>11}{'target ms':>11}")
    for name, ms, target in rows:
        print(f"{name:<40}{ms:>11.1f}{'' if target is None else target:>11}")
    print(f"\n10,000 users x 20 answers, one call (fresh process): {float(out[0]):.1f} s "
          f"(target 20), peak RSS {float(out[1]):.2f} GB (target 2)")
    print("\nexactness (population='mean' vs NUTS; seed spread with the defaults)")
    print(f"{'K':>3}{'n':>6}{'max |err|':>11}{'ESS':>9}{'draws':>7}{'seed spread':>13}")
    for k, n, err, ess, s, spread in exactness_rows():
        print(f"{k:>3}{n:>6}{err:>11.4f}{ess:>9.0f}{s:>7}{spread:>13.4f}")


if __name__ == "__main__":
    main()
