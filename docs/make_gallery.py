"""Draw every figure of ``bayespal.analysis.plots`` (and the report's) for docs/gallery.md.

Run from the repository root: ``python docs/make_gallery.py`` (about 3 minutes on 2 CPU
cores). It fits the Persona demo the package ships (and a K = 1..4 selection for the
evidence per K) and writes one PNG per figure to ``docs/gallery/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import bayespal
from bayespal.analysis import diagnostics, plots
from bayespal.analysis.evaluation import evaluate_fewshot
from bayespal.datasets import persona_demo

OUT = Path(__file__).resolve().parent / "gallery"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    syn = persona_demo(n_users=200, k=3, n_train=40, n_test=20, seed=0)
    seen, unseen = syn.data.split_users(0.2, seed=0)
    in_seen = np.isin(syn.data.user_ids[syn.data.user], seen.user_ids)
    train = syn.data.subset(in_seen & ~syn.is_test)
    test = syn.data.subset(in_seen & syn.is_test)
    fit = bayespal.fit(train, k=3, seed=0)
    figures = {
        "plot_loss": plots.plot_loss(fit),
        "plot_users_simplex": plots.plot_users_simplex(fit),
        "plot_prototype_items": plots.plot_prototype_items(fit),
        "plot_calibration": plots.plot_calibration(fit.predict_proba(test), test.label),
        "plot_user_posterior": plots.plot_user_posterior(fit, fit.user_ids[0]),
        "plot_heterogeneity": plots.plot_heterogeneity(diagnostics.heterogeneity_check(fit)),
        "plot_fewshot": plots.plot_fewshot(evaluate_fewshot(fit, unseen, seen_test=test,
                                                            shots=(1, 2, 5, 10, 20))),
    }
    report = fit.report(test, unseen)
    _, weights = fit.posterior_draws(num_samples=200)
    figures["plot_prototype_shares"] = plots.plot_prototype_shares(
        weights.mean(1).cpu().numpy())
    selection = bayespal.select_k(train, ks=(1, 2, 3, 4), seed=0)
    figures["plot_k_selection"] = plots.plot_k_selection(selection.table)
    for name, fig in figures.items():
        fig.savefig(OUT / f"{name}.png", dpi=80)
        print("wrote", OUT / f"{name}.png")
    report.save(OUT / "report.html", overwrite=True)
    print("wrote", OUT / "report.html")


if __name__ == "__main__":
    main()
