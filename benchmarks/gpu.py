"""The same fit on CPU and on the GPU: seconds per epoch (median), comparisons per
second, and the ratio. Small enough for a few minutes on one GPU.

    python -m benchmarks.gpu [--n 200000] [--users 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import bayespal
from benchmarks.fit_throughput import make_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4096)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    data = make_data(args.n, args.users, args.items, 384)
    rows = []
    for device in ("cpu", "cuda"):
        fit = bayespal.fit(data, k=3, pref_dim=16, batch_size=args.batch_size, epochs=args.epochs,
                           patience=10**6, progress=False, device=device)
        sec = float(np.median(fit.epoch_seconds[1:] if args.epochs > 1 else fit.epoch_seconds))
        rows.append((device, sec, args.n / sec))
    print(f"GPU: {torch.cuda.get_device_name()}; N={args.n}, users={args.users}, "
          f"batch={args.batch_size}, CPU threads={torch.get_num_threads()}")
    print(f"{'device':<8}{'s/epoch':>10}{'comparisons/s':>16}")
    for device, sec, rate in rows:
        print(f"{device:<8}{sec:>10.3f}{rate:>16.0f}")
    print(f"GPU speed-up: x{rows[0][1] / rows[1][1]:.1f}")


if __name__ == "__main__":
    main()
