"""Matplotlib figures of a fit. Every function returns its figure, already closed in
pyplot: a notebook shows the returned figure exactly once (pyplot's own display at the end
of a cell skips closed figures), and nothing accumulates in pyplot's list of open figures;
tests read the data each one draws. Layouts are constrained, so no label is clipped."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from scipy import stats

from bayespal.analysis.diagnostics import item_rewards


def plot_loss(fit, ax=None) -> Figure:
    """The loss (negative ELBO per comparison) by epoch.

    Parameters
    ----------
    fit:
        A fitted posterior (an ensemble: one curve per member).
    ax:
        Axes to draw on (default: a new figure).
    """
    fig, ax = _axes(ax)
    for i, history in enumerate(_losses(fit)):
        ax.plot(np.arange(1, len(history) + 1), history, marker=".",
                label=f"member {i}" if i or len(_losses(fit)) > 1 else None)
    if len(_losses(fit)) > 1:
        ax.legend()
    ax.set(xlabel="epoch", ylabel="-ELBO per comparison", title="SVI convergence")
    return fig


def _ternary_xy(w: np.ndarray) -> np.ndarray:
    """Barycentric (K = 3) to 2-d: corners (0, 0), (1, 0), (1/2, sqrt(3)/2)."""
    return np.stack([w[:, 1] + 0.5 * w[:, 2], np.sqrt(3) / 2 * w[:, 2]], -1)


def plot_users_simplex(fit, users: Sequence | None = None, ax=None) -> Figure:
    """Users' posterior mean weights with their uncertainty: a ternary plot for K = 3
    (a marker's area grows with the user's posterior sd, averaged over the weights; its
    colour is the mean weights as RGB; a legend gives the sizes), otherwise a heatmap of
    the means.

    Parameters
    ----------
    fit:
        A fitted posterior.
    users:
        User ids to show (default: all).
    ax:
        Axes to draw on (default: a new figure).
    """
    w = fit.user_weights()
    if users is not None:
        w = w.sel(user=list(users))
    mean, sd = w["mean"].values, w["sd"].values.mean(1)
    fig, ax = _axes(ax)
    if fit.k == 3:
        xy = _ternary_xy(mean)
        corners = _ternary_xy(np.eye(3))
        ax.add_patch(Polygon(corners, fill=False, color="k", lw=1))
        for j, (x, y) in enumerate(corners):
            ax.annotate(f"prototype {j}", (x, y), ha="center", va="bottom" if j == 2 else "top")
        ax.scatter(xy[:, 0], xy[:, 1], s=_sd_size(sd), alpha=0.4, c=mean, edgecolors="none")
        for ref in (0.02, 0.1, 0.2):  # the size legend: markers of reference sds
            ax.scatter([], [], s=_sd_size(np.array(ref)), c="grey", alpha=0.4,
                       edgecolors="none", label=f"sd {ref:g}")
        ax.legend(title="posterior sd", loc="upper right", frameon=False, fontsize="small")
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title("users' mixture weights (size = posterior sd)")
    else:
        im = ax.imshow(mean, aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, label="posterior mean weight")
        ax.set(xlabel="prototype", ylabel="user", title="users' mixture weights")
    return fig


def plot_prototype_items(fit, items=None, labels: Sequence[str] | None = None,
                         top: int = 5) -> Figure:
    """For each prototype, the ``top`` items it rewards most (centred reward in logits;
    PAL-B: averaged over the training prompts).

    Parameters
    ----------
    fit:
        A fitted posterior.
    items:
        The items (default: the fit's training items): an
        ``EmbeddingTable``, a DataFrame of embeddings indexed by id, or a
        bare ``(M, D)`` array (named by row number).
    labels:
        A label per item (default: the items' ids).
    top:
        Items shown per prototype.
    """
    table = fit.item_table(items)
    r = item_rewards(fit, table.embeddings)
    labels = [str(i) for i in table.ids] if labels is None else list(labels)
    if len(labels) != len(table):
        raise ValueError(f"labels: got {len(labels)}; expected {len(table)}, one per item")
    fig = _figure((3.2 * fit.k, 2.8))
    axes = fig.subplots(1, fit.k, squeeze=False)
    for k, ax in enumerate(axes[0]):
        best = np.argsort(-r[k])[:top]
        ax.barh(np.arange(len(best))[::-1], r[k, best])
        ax.set_yticks(np.arange(len(best))[::-1], [labels[i] for i in best])
        ax.set(title=f"prototype {k}", xlabel="centred reward (logits)")
    return fig


def plot_prototype_shares(shares: np.ndarray, ax=None) -> Figure:
    """How much of the users' weight each prototype carries: the posterior mean share with
    its 90% interval (from draws of the shares, e.g. the report's).

    Parameters
    ----------
    shares:
        ``(draws, K)``: per posterior draw, each prototype's mean weight over the users.
    ax:
        Axes to draw on (default: a new figure).
    """
    shares = np.asarray(shares, dtype=float)
    if shares.ndim != 2:
        raise ValueError(f"shares: got shape {shares.shape}; expected (draws, K)")
    mean = shares.mean(0)
    lo, hi = np.quantile(shares, [0.05, 0.95], axis=0)
    fig, ax = _axes(ax)
    k = np.arange(shares.shape[1])
    ax.bar(k, mean, color=[colormaps["tab10"](j % 10) for j in k], alpha=0.8)
    ax.errorbar(k, mean, yerr=[mean - lo, hi - mean], fmt="none", ecolor="k", capsize=4,
                label="90% interval")
    ax.axhline(1 / len(k), color="grey", lw=1, ls=":", label="equal shares")
    ax.set(xlabel="prototype", ylabel="share of the users' weight", xticks=k,
           title="weight carried by each prototype", ylim=(0, 1.3 * max(hi.max(), 1 / len(k))))
    ax.legend(frameon=False, fontsize="small", loc="upper right", ncols=2)
    return fig


def plot_calibration(prob: np.ndarray, label: np.ndarray, n_bins: int = 10, ax=None) -> Figure:
    """Reliability diagram: observed share of ``a`` preferred vs predicted probability in
    equal-width bins, marker size by count. (``arviz_plots.plot_ppc_pava`` draws the
    PAVA-based version from a DataTree; see the diagnostics notebook.)

    Parameters
    ----------
    prob:
        Predicted P(a preferred).
    label:
        Observed labels (1 = a).
    n_bins:
        Equal-width bins.
    ax:
        Axes to draw on (default: a new figure).
    """
    p, y = np.asarray(prob), np.asarray(label)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    keep = count > 0
    pred = np.bincount(bins, p, n_bins)[keep] / count[keep]
    obs = np.bincount(bins, y, n_bins)[keep] / count[keep]
    fig, ax = _axes(ax)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(pred, obs, "-")
    ax.scatter(pred, obs, s=20 + 200 * count[keep] / count.max())
    ax.set(xlabel="predicted P(a preferred)", ylabel="observed share a preferred",
           title="calibration", xlim=(0, 1), ylim=(0, 1))
    return fig


def plot_user_posterior(fit, user, ax=None) -> Figure:
    """One user's marginal posterior of each mixture weight (Beta marginals of q).

    Parameters
    ----------
    fit:
        A fitted posterior.
    user:
        A user seen in training.
    ax:
        Axes to draw on (default: a new figure).
    """
    w = fit.user_weights().sel(user=user)
    fig, ax = _axes(ax)
    grid = np.linspace(0, 1, 401)
    conc = fit.weight_concentration([user])
    conc = None if conc is None else conc[0]
    for k in range(fit.k):
        if conc is not None:
            ax.plot(grid, stats.beta.pdf(grid, conc[k], conc.sum() - conc[k]),
                    label=f"prototype {k}")
        else:
            ax.axvline(float(w["mean"][k]), label=f"prototype {k} ("
                       f"{'point estimate' if float(w['sd'][k]) == 0 else 'posterior mean'})")
    ax.set(xlabel="mixture weight", ylabel="posterior density", title=f"user {user!r}")
    ax.legend()
    return fig


def plot_heterogeneity(check: xr.Dataset, ax=None) -> Figure:
    """The heterogeneity check: replicated statistic vs the observed one.

    Parameters
    ----------
    check:
        The result of heterogeneity_check.
    ax:
        Axes to draw on (default: a new figure).
    """
    fig, ax = _axes(ax)
    ax.hist(check["replicated"].values, bins=30, alpha=0.7, label="replicated")
    ax.axvline(float(check["observed"]), color="k", label="observed")
    ax.set(xlabel=check.attrs["statistic"], ylabel="draws",
           title=f"heterogeneity check (p = {float(check['p_value']):.3f})")
    ax.legend()
    return fig


def plot_k_selection(table, axes=None) -> Figure:
    """How many kinds of people: the evidence per K from ``select_k``.

    Left: the criterion (seen + unseen held-out log-loss) per K with its paired standard
    error against the best K, the chosen K marked. Right: each prototype's share of the
    users' weight per K (stacked, largest at the bottom): a K whose extra prototypes carry
    almost no weight describes no more kinds of people than a smaller one.

    Parameters
    ----------
    table:
        ``KSelection.table`` (or ``fit.k_selection`` of a ``k="auto"`` fit).
    axes:
        Two axes to draw on (default: a new figure).
    """
    if axes is None:
        fig = _figure((9, 3.5))
        axes = fig.subplots(1, 2)
    else:
        fig = axes[0].figure
    ks = table["k"].to_numpy()
    left, right = axes
    left.errorbar(ks, table["criterion"], yerr=table["se_vs_best"], marker="o", capsize=3,
                  label="seen + unseen log-loss")
    chosen = table[table["chosen"]]
    left.scatter(chosen["k"], chosen["criterion"], s=150, facecolors="none",
                 edgecolors="C3", linewidths=2, zorder=3, label=f"chosen K = {int(chosen['k'].iloc[0])}")
    left.set(xlabel="K (prototypes)", ylabel="held-out log-loss (sum)", xticks=ks,
             title="evidence per K")
    left.legend()
    for k, shares in zip(ks, table["weight_share"], strict=True):
        bottom = 0.0
        for j, s in enumerate(shares):
            right.bar(k, s, bottom=bottom, color=colormaps["tab10"](j % 10), edgecolor="white")
            bottom += s
    right.set(xlabel="K (prototypes)", ylabel="share of users' weight", xticks=ks,
              title="weight carried by each prototype")
    return fig


def plot_fewshot(table, ax=None) -> Figure:
    """How fast a new person is placed: accuracy on held-out comparisons against the number
    of answers ``n`` a new user was placed from (``evaluate_fewshot``'s unseen rows), with
    the best accuracy reachable where the table knows it (a ``bayes_optimal`` column).

    Parameters
    ----------
    table:
        ``evaluate_fewshot``'s table (or the report's few-shot table).
    ax:
        Axes to draw on (default: a new figure).
    """
    rows = table[table["group"] == "unseen"] if "group" in table else table
    if len(rows) == 0:
        raise ValueError("table: got no unseen rows; expected evaluate_fewshot's table")
    fig, ax = _axes(ax)
    n = rows["n_shots"].to_numpy(float)
    ax.plot(n, rows["accuracy"], marker="o", label="placed from n answers")
    if "bayes_optimal" in rows:
        ax.plot(n, rows["bayes_optimal"], "k--", lw=1, label="knowing the weights")
    if "seen" in set(table.get("group", [])):
        seen = table[table["group"] == "seen"]["accuracy"].iloc[0]
        ax.axhline(seen, color="C2", lw=1, ls=":", label="seen users")
    ax.set_xscale("log")
    ax.set_xticks(n, [f"{int(v)}" for v in n])
    ax.set(xlabel="answers n (log scale)", ylabel="held-out accuracy",
           title="how fast a new person is placed")
    ax.legend(frameon=False, fontsize="small")
    return fig


def _losses(fit) -> list[np.ndarray]:
    """Each member's loss history (one for a single fit)."""
    history = fit.loss_history
    return [np.asarray(h) for h in history] if isinstance(history, list) else [np.asarray(history)]


def _figure(size: tuple[float, float]) -> Figure:
    """A new figure with a constrained layout, closed in pyplot (see the module docstring).
    Made through pyplot so that a notebook's display backend is set up."""
    fig = plt.figure(figsize=size, layout="constrained")
    plt.close(fig)
    return fig


def _sd_size(sd: np.ndarray) -> np.ndarray:
    """Marker area (points^2) for a posterior sd: grows with the sd."""
    return 400 * (0.02 + sd)


def _axes(ax):
    if ax is None:
        fig = _figure((5, 3.5))
        ax = fig.subplots()
        return fig, ax
    return ax.figure, ax
