"""Time per epoch of ``bayespal.fit`` vs a plain PyTorch MAP loop on the same network.

200k comparisons, 10k users, D = 384, same batch size and mapping; PAL-A and PAL-B (4
prompts, prompt_dim 4); SVI and MAP, each with the compiled step (``compile=True``) and
the uncompiled one (``compile=False``). Prints a table of median seconds per epoch (the
first epoch, which holds the compilation, is not counted for the medians; the compile
column is its excess over the median) and the ratio to the plain loop of the same variant
(issue 16: targets <= 1.15 SVI and <= 1.05 MAP).

    python benchmarks/fit_throughput.py [--n 200000] [--users 10000] [--epochs 4]
        [--variants pal-a,pal-b] [--no-compile]
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


def make_data(n: int, users: int, items: int, dim: int, prompts: int = 0,
              seed: int = 0) -> PreferenceData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(items, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    u = rng.integers(0, users, n)
    u[:users] = np.arange(users)  # every user present
    a = rng.integers(0, items, n)
    b = (a + rng.integers(1, items, n)) % items
    extra = {}
    if prompts:
        extra = dict(prompt=rng.integers(0, prompts, n),
                     prompts=rng.normal(size=(prompts, dim)).astype(np.float32))
    return PreferenceData.from_arrays(u, a, b, rng.integers(0, 2, n), x, **extra)


def plain_map_loop(data: PreferenceData, k: int, pref_dim: int, hidden, batch_size: int,
                   epochs: int, lr: float, prompt_dim: int | None = None) -> list[float]:
    """The same network and likelihood, MAP by hand: no Pyro, no priors (PAL-B with
    ``prompt_dim``)."""
    torch.manual_seed(0)
    mapping = Mapping(data.embed_dim, pref_dim, hidden)
    protos = torch.nn.Parameter(torch.randn(k, pref_dim))
    logits_w = torch.nn.Parameter(torch.zeros(data.n_users, k))
    log_beta = torch.nn.Parameter(torch.zeros(()))
    params = [*mapping.parameters(), protos, logits_w, log_beta]
    prompted = prompt_dim is not None
    if prompted:
        prompt_map = Mapping(data.prompts.shape[1], prompt_dim, hidden)
        loadings = torch.nn.Parameter(0.01 * torch.randn(k, pref_dim, prompt_dim))
        params += [*prompt_map.parameters(), loadings]
        prompts = torch.as_tensor(data.prompts)
        prompt = torch.as_tensor(data.prompt)
    opt = torch.optim.Adam(params, lr=lr)
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
            extra = {}
            if prompted:
                extra = dict(loadings=loadings, pc=prompt_map(prompts[prompt[i]]))
            diff, _ = pair_terms(protos, log_beta.exp(), mapping(items[a[i]]),
                                 mapping(items[b[i]]), **extra)
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
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--variants", default="pal-a,pal-b")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    args = ap.parse_args()
    print(f"N={args.n} users={args.users} items={args.items} D={args.dim} K={args.k} "
          f"batch={args.batch_size} epochs={args.epochs} threads={torch.get_num_threads()}")
    print(f"{'variant':<8}{'method':<34}{'s/epoch (median)':>18}{'compile s':>11}{'ratio':>8}")
    compiles = (False,) if args.no_compile else (False, True)
    for variant in args.variants.split(","):
        prompt_dim = 4 if variant == "pal-b" else None
        data = make_data(args.n, args.users, args.items, args.dim,
                         prompts=4 if prompt_dim else 0)
        common = dict(k=args.k, pref_dim=16, hidden=(64,), prompt_dim=prompt_dim,
                      prompt_hidden=(64,) if prompt_dim else ())
        plain = plain_map_loop(data, args.k, 16, (64,), args.batch_size, args.epochs, 0.01,
                               prompt_dim)
        base = float(np.median(plain[1:]))
        rows = []
        for mode in ("svi", "map"):
            for comp in compiles:
                fit = bayespal.fit(data, **common, inference=mode,
                                   batch_size=args.batch_size, epochs=args.epochs,
                                   patience=10**6, progress=False, device="cpu",
                                   compile=comp, validation_fraction=0.0, local_epochs=0)
                sec = fit.epoch_seconds
                med = float(np.median(sec[1:]))
                name = f"bayespal.fit ({mode}, {'compiled' if comp else 'uncompiled'})"
                rows.append((name, med, sec[0] - med))
        rows.append(("plain PyTorch MAP loop", base, plain[0] - base))
        for name, sec, first in rows:
            print(f"{variant:<8}{name:<34}{sec:>18.3f}{first:>11.1f}{sec / base:>8.2f}")


if __name__ == "__main__":
    main()
