"""Command line: ``bayespal demo`` (the README's main job)."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import bayespal
    from bayespal import diagnostics, plots
    from bayespal.datasets import persona_demo
    from bayespal.evaluation import evaluate_fewshot
    from bayespal.metrics import accuracy, expected_calibration_error, log_loss

    syn = persona_demo(n_users=args.users, k=args.k, n_train=40, n_test=20, seed=args.seed)
    seen, unseen = syn.data.split_users(0.2, seed=args.seed)
    in_seen = np.isin(syn.data.user_ids[syn.data.user], seen.user_ids)
    train = syn.data.subset(in_seen & ~syn.is_test)
    test = syn.data.subset(in_seen & syn.is_test)
    print(f"Persona demo (Anthropic persona statements, CC-BY-4.0; MiniLM embeddings): "
          f"{syn.data.n_items} statements, {train.n_users} seen + {unseen.n_users} unseen "
          f"users of {args.k} preference types, {len(train)} training comparisons")
    t0 = time.perf_counter()
    fit = bayespal.fit(train, k=args.k, pref_dim=8, seed=args.seed, progress=not args.quiet)
    print(f"fitted {fit!r} in {time.perf_counter() - t0:.1f} s")
    p = fit.predict_proba(test)
    bayes = syn.true_prob[in_seen & syn.is_test]
    print(f"\nseen users, held-out comparisons\n{'':<24}{'accuracy':>10}{'log-loss':>10}{'ECE':>8}")
    for name, q in (("bayespal (posterior)", p), ("Bayes-optimal (truth)", bayes)):
        print(f"{name:<24}{accuracy(q, test.label):>10.4f}{log_loss(q, test.label):>10.4f}"
              f"{expected_calibration_error(q, test.label):>8.4f}")
    table = evaluate_fewshot(fit, unseen, shots=(1, 5, 10, 20), n_test=10, seed=args.seed)
    print("\nunseen users placed from n answers (population fixed, no refit)")
    print(table[["n_shots", "users", "accuracy", "log_loss", "ece"]].round(4).to_string(index=False))
    w = fit.user_weights(ci=0.9)["mean"].values
    perm = list(min(itertools.permutations(range(args.k)),
                    key=lambda q: ((w[:, list(q)] - syn.true_weights[train.user_ids]) ** 2).sum()))
    part = syn.group[train.user_ids] >= 0
    assigned = (w[:, perm][part].argmax(1) == syn.group[train.user_ids][part]).mean()
    print(f"\nsingle-type users assigned to their true type: {assigned:.1%}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots.plot_elbo(fit).savefig(out / "elbo.png", dpi=100)
    plots.plot_users_simplex(fit).savefig(out / "users.png", dpi=100)
    plots.plot_calibration(p, test.label).savefig(out / "calibration.png", dpi=100)
    diagnostics.to_datatree(fit, num_samples=200, seed=args.seed).to_netcdf(out / "posterior.nc")
    print(f"wrote plots and the posterior DataTree to {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayespal", description="Bayesian pluralistic preference modeling (PAL)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit the built-in Persona demo data; print seen and unseen accuracy and calibration",
        description="Fit PAL-A to the built-in Persona demo (semi-synthetic preferences over "
        "real statements, known truth); compare with the Bayes-optimal predictor, place "
        "unseen users from a few answers, and write plots and the DataTree.",
    )
    demo.add_argument("--users", type=int, default=250, help="number of users (default 250)")
    demo.add_argument("--out", default="bayespal-demo", help="output folder (default bayespal-demo)")
    demo.add_argument("--k", type=int, default=3, help="number of prototypes (default 3)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad input: a clear message and a non-zero exit
        print(f"bayespal: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

