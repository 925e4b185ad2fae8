"""Batch reward scoring throughput: responses scored per second by a RewardModel
(posterior mean and sd over 256 draws) for 100k response embeddings at D = 384.

    python -m benchmarks.reward_throughput [--n 100000] [--draws 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import bayespal
from bayespal.analysis.reward import RewardModel
from benchmarks.fit_throughput import make_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--draws", type=int, default=256)
    args = ap.parse_args()
    data = make_data(20_000, 1_000, 5_000, 384)
    fit = bayespal.fit(data, k=3, pref_dim=16, epochs=2, progress=False, device="cpu")
    rng = np.random.default_rng(0)
    responses = rng.normal(size=(args.n, 384)).astype(np.float32)
    rows = []
    for name, kw in (("known user", {"user": fit.user_ids[0]}), ("population", {}),
                     ("fixed weights", {"weights": [0.2, 0.3, 0.5]})):
        model = RewardModel(fit, num_samples=args.draws, **kw)
        model.reward(responses[:1000])  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.reward(responses)
            times.append(time.perf_counter() - t0)
        rows.append((name, float(np.median(times))))
    print(f"{args.n} responses, D=384, {args.draws} posterior draws, "
          f"threads={torch.get_num_threads()}")
    print(f"{'weights from':<16}{'s (median of 3)':>16}{'responses/s':>14}")
    for name, sec in rows:
        print(f"{name:<16}{sec:>16.3f}{args.n / sec:>14.0f}")


if __name__ == "__main__":
    main()
