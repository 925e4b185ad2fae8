"""Users sharded across processes: bytes communicated per step, and seconds per epoch.

Two tables, each from real ``torchrun`` launches on gloo (CPU, one thread per process):

1. **Bytes all-reduced per training step against the number of users** (2 processes, 10
   comparisons per user, D = 64, K = 3, SVI). "sharded (measured)": the bytes DDP
   all-reduces, counted by a communication hook around DDP's own all-reduce on the
   training step ``bayespal.inference.distributed`` runs. "replicated (before)": the one
   flat all-reduce of every parameter's gradient that the earlier data-parallel mode
   (every rank a replica of every user) sent each step — the size of that buffer.
2. **Seconds per epoch of ``bayespal.fit(..., distributed=True)``** with 1, 2 and 4
   processes (``--n`` comparisons, ``--users`` users, D = 384, per-rank batch
   ``--batch / W`` so the global batch is the same; median of the epochs after the first).

    python -m benchmarks.distributed [--user-counts 1000 10000 100000] [--procs 1 2 4]
        [--n 200000] [--users 10000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
               "--master_addr=127.0.0.1", f"--master_port={_port()}", "-m",
               "benchmarks.distributed", "--worker", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-3000:])
        return json.loads(out.read_text())


def _data(n: int, users: int, dim: int, seed: int = 0):
    from benchmarks.fit_throughput import make_data
    return make_data(n, users, max(2 * users, 2000), dim, seed=seed)


def _bytes_worker(out: str, users: int, steps: int) -> None:
    """Run ``steps`` sharded training steps; rank 0 writes the bytes DDP all-reduced."""
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from bayespal.inference import distributed
    from bayespal.inference.train import build
    from bayespal.inference.trainer import DeviceData
    from bayespal.model import ModelConfig

    rank, world, dev = distributed.setup("cpu")
    data = _data(10 * users, users, 64)
    config = ModelConfig(k=3, pref_dim=8, hidden=(64,))
    model, guide = build(config, "svi", data.embed_dim, data.n_users, data.n_comparisons,
                         generator=torch.Generator().manual_seed(0))
    replicated = 4 * sum(p.numel() for m in (model, guide) for p in m.parameters()
                         if p.requires_grad)
    owner = distributed.assign_users(data.comparisons_per_user(), world)
    shard = data.subset(owner[data.user] == rank)
    part = guide.restricted(np.flatnonzero(owner == rank))
    del guide
    local = DeviceData.from_data(shard, dev)
    loss = distributed.ShardLoss(model, part, world, len(local))
    ddp = distributed.wrap(loss)
    sent = {"bytes": 0}

    def counting(state, bucket):
        buf = bucket.buffer()
        state["bytes"] += buf.numel() * buf.element_size()
        return default_hooks.allreduce_hook(None, bucket)

    ddp.register_comm_hook(sent, counting)
    optim = torch.optim.AdamW(list(model.parameters()) + list(part.parameters()), lr=1e-3)
    gen = torch.Generator().manual_seed(rank)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(local), (256,), generator=gen)
        value = ddp(local.batch(idx))
        optim.zero_grad()
        value.backward()
        loss.scale_local_gradients()
        optim.step()
    seconds = (time.perf_counter() - start) / steps
    if rank == 0:
        Path(out).write_text(json.dumps({"sharded": sent["bytes"] / steps,
                                         "replicated": replicated, "step_s": seconds,
                                         "local_users": int((owner == rank).sum())}))
    dist.barrier()  # no rank leaves while another still communicates
    dist.destroy_process_group()


def _epoch_worker(out: str, n: int, users: int, epochs: int, batch: int) -> None:
    """``bayespal.fit(..., distributed=True)`` for ``epochs`` epochs; rank 0 writes the
    seconds per epoch."""
    import resource

    import torch

    import bayespal

    torch.set_num_threads(1)
    world = int(os.environ["WORLD_SIZE"])
    data = _data(n, users, 384)
    fit = bayespal.fit(data, k=3, pref_dim=16, hidden=(64,), validation_fraction=0,
                       epochs=epochs, patience=10**6, batch_size=batch // world,
                       local_epochs=0, seed=0, progress=False, distributed=world > 1,
                       device="cpu")
    rss = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2] * 2)
    if world > 1:  # the largest and the mean peak RSS over the ranks
        torch.distributed.all_reduce(rss[:1], op=torch.distributed.ReduceOp.MAX)
        torch.distributed.all_reduce(rss[1:])
        rss[1] /= world
    if int(os.environ["RANK"]) == 0:
        Path(out).write_text(json.dumps({"seconds": fit.epoch_seconds.tolist(),
                                         "rss_max": float(rss[0]), "rss_mean": float(rss[1])}))
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user-counts", type=int, nargs="*", default=[1000, 10000, 100000],
                    help="users of the bytes table (none: skip it)")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1024, help="global batch (all ranks)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out, env = args.worker[0], os.environ  # the launcher passes the sizes here
        if env["BENCH_KIND"] == "bytes":
            _bytes_worker(out, int(env["BENCH_USERS"]), int(env["BENCH_STEPS"]))
        else:
            _epoch_worker(out, int(env["BENCH_N"]), int(env["BENCH_USERS"]),
                          int(env["BENCH_EPOCHS"]), int(env["BENCH_BATCH"]))
        return

    if args.user_counts:
        print("Bytes all-reduced per step (2 processes, 10 comparisons per user, K = 3, "
              "D = 64)\n")
        print("| users | sharded: DDP all-reduce (measured) | replicated: every gradient "
              "(before) | s/step |")
        print("|---|---|---|---|")
    for users in args.user_counts:
        os.environ.update(BENCH_KIND="bytes", BENCH_USERS=str(users))
        os.environ["BENCH_STEPS"] = str(args.steps)
        r = _launch(2)
        print(f"| {users:,} | {r['sharded'] / 1e3:,.1f} kB | {r['replicated'] / 1e3:,.1f} kB "
              f"| {r['step_s']:.4f} |", flush=True)

    print(f"\nSeconds per epoch of fit(distributed=True) ({args.n:,} comparisons, "
          f"{args.users:,} users, D = 384, global batch {args.batch}, median of epochs "
          f"2-{args.epochs})\n")
    print("| processes | s/epoch | ratio to 1 | peak RSS per rank GB (largest / mean) |")
    print("|---|---|---|---|")
    base = None
    for w in args.procs:
        os.environ.update(BENCH_KIND="epochs", BENCH_N=str(args.n), BENCH_USERS=str(args.users),
                          BENCH_EPOCHS=str(args.epochs), BENCH_BATCH=str(args.batch))
        r = _launch(w)
        med = float(np.median(r["seconds"][1:]))
        base = base or med
        print(f"| {w} | {med:.3f} | {med / base:.2f} | {r['rss_max']:.2f} / "
              f"{r['rss_mean']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
