"""Time per epoch of ``bayespal.fit`` vs a plain PyTorch MAP loop on the same network.

200k comparisons, 10k users, D = 384, same batch size and mapping. Prints a table of
median seconds per epoch and the ratio (issue 2: target <= 2, later <= 1.5).

    python benchmarks/fit_throughput.py [--n 200000] [--users 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import bayespal
from bayespal.data import PreferenceData
from bayespal.model.likelihood import mixture_logits, pair_terms
from bayespal.model.nets import Mapping


def make_data(n: int, users: int, items: int, dim: int, seed: int = 0) -> PreferenceData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(items, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    u = rng.integers(0, users, n)
    u[:users] = np.arange(users)  # every user present
    a = rng.integers(0, items, n)
    b = (a + rng.integers(1, items, n)) % items
    return PreferenceData.from_arrays(u, a, b, rng.integers(0, 2, n), x)


def plain_map_loop(data: PreferenceData, k: int, pref_dim: int, hidden, batch_size: int,
                   epochs: int, lr: float) -> list[float]:
    """The same PAL-A network and likelihood, MAP by hand: no Pyro, no priors."""
    torch.manual_seed(0)
    mapping = Mapping(data.embed_dim, pref_dim, hidden)
    protos = torch.nn.Parameter(torch.randn(k, pref_dim))
    logits_w = torch.nn.Parameter(torch.zeros(data.n_users, k))
    log_beta = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam([*mapping.parameters(), protos, logits_w, log_beta], lr=lr)
    items = torch.as_tensor(data.items)
    u, a, b = (torch.as_tensor(x) for x in (data.user, data.item_a, data.item_b))
    y = torch.as_tensor(data.label)
    n = len(y)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(0, n, batch_size):
            i = perm[s : s + batch_size]
            w = logits_w[u[i]].softmax(-1)
            diff, _ = pair_terms(protos, log_beta.exp(), mapping(items[a[i]]),
                                 mapping(items[b[i]]))
            logit = mixture_logits(w, diff)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    data = make_data(args.n, args.users, args.items, args.dim)
    common = dict(k=args.k, pref_dim=16, hidden=(64,))
    rows = []
    for mode in ("svi", "map"):
        fit = bayespal.fit(data, **common, inference=mode, batch_size=args.batch_size,
                           epochs=args.epochs, patience=10**6, progress=False, device="cpu")
        rows.append((f"bayespal.fit ({mode})", float(np.median(fit.epoch_seconds))))
    plain = plain_map_loop(data, args.k, 16, (64,), args.batch_size, args.epochs, 0.01)
    rows.append(("plain PyTorch MAP loop", float(np.median(plain))))
    base = rows[-1][1]
    print(f"N={args.n} users={args.users} items={args.items} D={args.dim} K={args.k} "
          f"batch={args.batch_size} epochs={args.epochs} threads={torch.get_num_threads()}")
    print(f"{'method':<26}{'s/epoch (median)':>18}{'ratio':>8}")
    for name, sec in rows:
        print(f"{name:<26}{sec:>18.3f}{sec / base:>8.2f}")


if __name__ == "__main__":
    main()
