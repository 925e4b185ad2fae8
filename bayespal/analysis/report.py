"""A pluralism report: one self-contained HTML page about a fit's people.

``pluralism_report(fit)`` (or ``fit.report()``, or ``bayespal report MODEL``) answers five
questions, one section each (the section ids are ``SECTIONS``):

- ``kinds``: how many kinds of people are there? The evidence per K where the fit has it
  (``bayespal.fit(data, k="auto")``), and how much of the users' weight each prototype
  carries, with posterior intervals, and the effective number of prototypes in use.
- ``users``: who is where? The users' posterior weights on the simplex with their
  uncertainty; how many hold mostly one prototype and how many are mixed.
- ``prototypes``: what does each prototype prefer? Its top and bottom items (with their
  texts where the fit knows them) and the items the prototypes disagree on most.
- ``calibration``: can the probabilities be trusted? Accuracy, log-loss, expected
  calibration error and a reliability diagram on held-out comparisons (``test``), or, said
  plainly, on the training comparisons where no held-out ones are given.
- ``new-users``: how fast is a new person placed? Held-out accuracy against the number of
  answers, for real unseen users (``unseen``) or, where none are given, for people
  simulated from the fitted population (their answers drawn from the model itself, so the
  curve shows how fast placement is *if the model is right*).

Figures are embedded as PNG (base64) and the page has no external references, so it can be
mailed or opened offline. In a notebook the report displays itself (``_repr_html_``).
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from bayespal._version import __version__
from bayespal.analysis import plots
from bayespal.analysis.diagnostics import MAX_PROMPTS, item_rewards
from bayespal.analysis.evaluation import (
    SHOTS,
    answer_metrics,
    evaluate_fewshot,
    predict_answers,
    reliability_points,
)
from bayespal.checks import check_int, fail
from bayespal.data import EmbeddingTable, PreferenceData
from bayespal.files import write_bytes_atomic
from bayespal.metrics import (
    expected_calibration_error,
    expected_label,
    tie_calibration,
)
from bayespal.rng import keeps_global_rng

SECTIONS = ("kinds", "users", "prototypes", "calibration", "new-users")
SINGLE_TYPE = 0.8
"""A user whose largest posterior-mean weight is at least this holds mostly one prototype."""
TEXT_CHARS = 160
"""Item texts longer than this are shortened in the report's tables."""


@dataclass
class Section:
    """One question of the report and its answer.

    Attributes
    ----------
    id, title:
        The anchor (one of ``SECTIONS``) and the heading.
    paragraphs:
        The answer in words (plain text; escaped when rendered).
    tables:
        ``(caption, DataFrame)`` pairs.
    figures:
        ``(caption, PNG bytes)`` pairs.
    """

    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)

    def figure(self, caption: str, fig: Figure) -> None:
        """Add a matplotlib figure (rendered to PNG now).

        Parameters
        ----------
        caption:
            What the figure shows.
        fig:
            The figure.
        """
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        self.figures.append((caption, buf.getvalue()))


@dataclass(repr=False)
class PluralismReport:
    """The report: its sections, the headline numbers, and their HTML.

    Attributes
    ----------
    title:
        The page's title.
    sections:
        Section id -> ``Section``, in ``SECTIONS`` order.
    numbers:
        The headline numbers (``k``, ``users``, ``effective_prototypes``, ``ece``, ...),
        for scripts and tests.
    """

    title: str
    sections: dict[str, Section]
    numbers: dict

    def to_html(self) -> str:
        """The report as one self-contained HTML page (no external references).

        Returns
        -------
        str
            The page.
        """
        body = [f"<h1>{html.escape(self.title)}</h1>", self._glance(), _CONTENTS.format(
            "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>'
                    for s in self.sections.values()))]
        body += [_section_html(s) for s in self.sections.values()]
        body.append(f'<footer>bayespal {html.escape(__version__)}</footer>')
        return _PAGE.format(title=html.escape(self.title), style=_STYLE, body="\n".join(body))

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.numbers.items()
                          if isinstance(v, (int, float, str)) and not k.endswith("_text"))
        return f"PluralismReport({self.title!r}; sections {list(self.sections)}; {shown})"

    def _glance(self) -> str:
        rows = [(label, self.numbers[key]) for key, label in _GLANCE if key in self.numbers]
        cells = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"
                        for label, value in rows)
        return f'<table class="glance">{cells}</table>'

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the HTML page atomically.

        Parameters
        ----------
        path:
            The file to write.
        overwrite:
            Replace an existing file (default: refuse, naming it).

        Returns
        -------
        Path
            The file written.
        """
        path = Path(path)
        if path.is_file() and not overwrite:
            raise ValueError(f"path: got {str(path)!r}, which exists; expected a new file name "
                             "(or overwrite=True)")
        write_bytes_atomic(path, self.to_html().encode("utf-8"))
        return path


_GLANCE = (("k", "prototypes (K)"), ("chosen_k", "K chosen from the data"),
           ("users", "users in training"), ("comparisons", "comparisons trained on"),
           ("effective_prototypes_text", "effective prototypes in use"),
           ("single_type_share_text", "users holding mostly one prototype"),
           ("calibration_text", "calibration"), ("placement_text", "a new person placed"))

_CONTENTS = '<nav><ol>{}</ol></nav>'

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body><main>
{body}
</main></body></html>
"""

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       background: #fafafa; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 1.5em 2em 3em; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: .3em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
table.glance th { background: #f6f6f6; font-weight: 600; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: .85em; color: #555; }
nav ol { columns: 2; }
footer { margin-top: 3em; font-size: .8em; color: #888; }
"""


def _section_html(s: Section) -> str:
    parts = [f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>']
    parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
    for caption, table in s.tables:
        t = table.to_html(index=False, escape=True, border=0, na_rep="",
                          float_format=lambda v: f"{v:.3f}")
        end = t.index(">") + 1  # after pandas' opening <table ...> tag
        parts.append(f"{t[:end]}<caption>{html.escape(caption)}</caption>{t[end:]}")
    for caption, png in s.figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{html.escape(caption)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
                     "</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- sections
@keeps_global_rng
@torch.no_grad()
def _kinds(fit, num_samples: int, numbers: dict) -> Section:
    s = Section("kinds", "How many kinds of people?")
    draws, weights = fit.posterior_draws(num_samples=num_samples, seed=fit.seed)
    shares = weights.mean(1).cpu().numpy()  # (P, K): each draw's share of the users' weight
    safe = np.clip(shares, 1e-12, 1)
    effective = np.exp(-(safe * np.log(safe)).sum(1))
    lo, hi = np.quantile(effective, [0.05, 0.95])
    numbers["effective_prototypes"] = float(effective.mean())
    numbers["effective_prototypes_text"] = (f"{effective.mean():.2f} of {fit.k} "
                                            f"(90% interval {lo:.2f}-{hi:.2f})")
    mean_w = fit.user_weights()["mean"].values
    mostly = np.bincount(mean_w.argmax(1)[mean_w.max(1) >= SINGLE_TYPE], minlength=fit.k)
    s.tables.append(("Each prototype's share of the users' weight (posterior mean and 90% "
                     "interval) and the users who hold mostly it", pd.DataFrame({
                         "prototype": np.arange(fit.k),
                         "share": shares.mean(0),
                         "lower": np.quantile(shares, 0.05, 0),
                         "upper": np.quantile(shares, 0.95, 0),
                         f"users with weight >= {SINGLE_TYPE:g}": mostly})))
    s.figure("Each prototype's share of the users' weight, with its 90% posterior interval.",
             plots.plot_prototype_shares(shares))
    table = getattr(fit, "k_selection", None)
    if table is not None:
        chosen = int(table.loc[table["chosen"], "k"].iloc[0])
        numbers["chosen_k"] = chosen
        s.paragraphs.append(
            f"K was chosen from the data: each candidate K was fitted to most users and "
            f"scored on held-out comparisons of those users (seen) and of users the fit never "
            f"saw, placed from a few answers (unseen). The chosen K = {chosen} is the smallest "
            "within one paired standard error of the best held-out log-loss.")
        shown = table.drop(columns=["weight_share"]).copy()
        s.tables.append(("The evidence per K (held-out log-loss; lower is better)", shown))
        s.figure("Left: held-out log-loss per K with its paired standard error against the "
                 "best; right: the weight each prototype carries per K.",
                 plots.plot_k_selection(table))
    else:
        s.paragraphs.append(
            f"This fit was given K = {fit.k}; it holds no evidence on other values. Fit with "
            'k="auto" (bayespal.fit(data, k="auto") or bayespal fit --k auto) to choose K '
            "from held-out comparisons and see the evidence here.")
    s.paragraphs.append(
        f"Of the {fit.k} prototypes, {effective.mean():.2f} are in use (90% interval "
        f"{lo:.2f}-{hi:.2f}): the exponential of the entropy of the prototypes' shares of the "
        "users' weight. A prototype carrying almost no weight describes almost nobody.")
    return s


def _users(fit, numbers: dict) -> Section:
    s = Section("users", "Who is where?")
    w = fit.user_weights(ci=0.9)
    mean = w["mean"].values
    width = (w["upper"] - w["lower"]).values.mean(1)
    single = mean.max(1) >= SINGLE_TYPE
    numbers["users"] = int(len(mean))
    numbers["single_type_share"] = float(single.mean())
    numbers["single_type_share_text"] = (f"{single.mean():.0%} (largest weight >= "
                                         f"{SINGLE_TYPE:g}); the others are mixed")
    s.paragraphs.append(
        f"{len(mean)} users: {single.sum()} ({single.mean():.0%}) hold mostly one prototype "
        f"(posterior-mean weight >= {SINGLE_TYPE:g}); {(~single).sum()} mix several. The "
        f"median width of a user's 90% weight interval is {np.median(width):.2f}: how sure "
        "the fit is of where each person stands.")
    s.figure("Users' posterior mean weights (K = 3: on the simplex, marker area growing with "
             "the posterior sd; otherwise a heatmap).", plots.plot_users_simplex(fit))
    order = np.argsort(-width)[:5]
    s.tables.append(("The users the fit is least sure about (widest 90% weight intervals)",
                     pd.DataFrame({"user": [str(u) for u in w["user"].values[order]],
                                   "mean weights": [_vector(mean[i]) for i in order],
                                   "interval width": width[order]})))
    return s


def _prototypes(fit, table: EmbeddingTable, top: int, numbers: dict) -> Section:
    s = Section("prototypes", "What does each prototype prefer?")
    r = item_rewards(fit, table.embeddings)  # (K, M), centred, logits
    n_prompts = (0 if fit.prompt_embed_dim is None
                 else min(len(fit.embeddings("prompts")), MAX_PROMPTS))
    texts = table.texts
    top = min(top, len(table))
    if n_prompts > 1:
        s.paragraphs.append(f"PAL-B: rewards averaged over {n_prompts} of the training prompts.")
    s.paragraphs.append(
        "Rewards are in logits (times the sharpness) and centred over the items: a difference "
        "of 1 between two items means odds of e:1 for a person wholly of that prototype."
        + ("" if texts is not None else " The fit knows no texts for its items (build the "
           "data with PreferenceData.from_texts or from_pairs to see them here)."))
    for k in range(fit.k):
        order = np.argsort(-r[k])
        rows = np.concatenate([order[:top], order[::-1][:top]])
        frame = pd.DataFrame({"": ["top"] * top + ["bottom"] * top,
                              "item": [str(i) for i in table.ids[rows]],
                              "reward": r[k, rows]})
        if texts is not None:
            frame.insert(2, "text", [_short(texts[i]) for i in rows])
        s.tables.append((f"Prototype {k}: the {top} items it rewards most and least", frame))
    s.figure("Each prototype's most rewarded items (by id).",
             plots.plot_prototype_items(fit, table, top=top))
    # disagreement on a common scale: each prototype's percentile rank of every item
    pct = 100 * (np.argsort(np.argsort(r, 1), 1) + 0.5) / len(table)
    contested = np.argsort(-(pct.max(0) - pct.min(0)), kind="stable")[:top]
    frame = pd.DataFrame({"item": [str(i) for i in table.ids[contested]],
                          **{f"prototype {k} (percentile)": np.round(pct[k, contested])
                             .astype(int) for k in range(fit.k)}})
    if texts is not None:
        frame.insert(1, "text", [_short(texts[i]) for i in contested])
    s.tables.append(("The items the prototypes disagree on most: each prototype's percentile "
                     "rank of the item (100 = its favourite)", frame))
    return s


def _calibration(fit, test: PreferenceData | None, numbers: dict) -> Section:
    s = Section("calibration", "Can the probabilities be trusted?")
    data, where = test, "held-out comparisons"
    if data is None and getattr(fit, "training_data", None) is not None:
        data, where = fit.training_data, "the training comparisons (in-sample: optimistic)"
    if data is None:
        s.paragraphs.append("No comparisons to score: pass test= (or --test) with held-out "
                            "comparisons to see the calibration.")
        return s
    q = predict_answers(fit, data)
    scores = answer_metrics(q, data)
    acc, ll = scores["accuracy"], scores["log_loss"]
    # graded answers: the expected label; choices from sets: every item shown (one-vs-rest)
    p, y = reliability_points(q, data)
    ece = expected_calibration_error(p, y)  # the ECE of the reliability diagram's points
    numbers.update(accuracy=acc, log_loss=ll, ece=ece, calibration_on=where)
    if fit.levels % 2 == 1:  # an odd scale has a middle level, a tie
        numbers["tie_ece"] = tie_calibration(q, data.label)
    numbers["calibration_text"] = f"ECE {ece:.3f}, accuracy {acc:.3f} on {where}"
    if test is None:
        s.paragraphs.append("No held-out comparisons were given (test=), so the fit is scored "
                            "on its own training comparisons: expect the real error to be "
                            "larger than shown.")
    s.paragraphs.append(
        f"On {len(data)} {where}: accuracy {acc:.3f}, log-loss {ll:.3f}, expected calibration "
        f"error (10 bins) {ece:.3f}. A calibrated fit's points lie on the diagonal: of the "
        "comparisons it gives 70%, about 70% go its way."
        + ("" if fit.levels == 2 else
           f" The answers have {fit.levels} levels: the probability shown is the expected "
           "label (a tie counts half), accuracy is over the comparisons that were not tied"
           + (f", and the predicted probability of a tie has ECE {numbers['tie_ece']:.3f}"
              if "tie_ece" in numbers else "") + "."))
    bins = np.minimum((p * 10).astype(int), 9)
    count = np.bincount(bins, minlength=10)
    keep = count > 0
    s.tables.append(("Reliability by bin", pd.DataFrame({
        "predicted": (np.bincount(bins, p, 10)[keep] / count[keep]),
        "observed": (np.bincount(bins, y, 10)[keep] / count[keep]),
        "comparisons" if data.others is None else "items shown": count[keep]})))
    s.figure("Reliability diagram: observed share preferred (choices: chosen) against "
             "predicted probability.", plots.plot_calibration(p, y))
    return s


def _new_users(fit, unseen: PreferenceData | None, shots: Sequence[int], n_test: int,
               simulated_users: int, seed: int, numbers: dict) -> Section:
    s = Section("new-users", "How fast is a new person placed?")
    if unseen is not None:
        pool = int(unseen.answers_per_user().max()) - n_test
        table = evaluate_fewshot(fit, unseen, shots=[n for n in shots if n <= pool],
                                 n_test=n_test, seed=seed)
        s.paragraphs.append(
            f"{unseen.n_users} users the fit never saw, each placed from their first n "
            f"answers (the population held fixed) and scored on {n_test} other comparisons.")
    else:
        data, bayes = simulate_new_users(fit, simulated_users, max(shots) + n_test, seed=seed)
        table = evaluate_fewshot(fit, data, shots=shots, n_test=n_test, seed=seed)
        table["bayes_optimal"] = bayes
        s.paragraphs.append(
            f"No unseen users were given (unseen=), so {simulated_users} new people were "
            "simulated from the fitted population: weights drawn from its prior, answers drawn "
            "from the model. The curve shows how fast placement works if the model is right; "
            "'knowing the weights' is the accuracy of the true simulated weights.")
        reached = table[table["accuracy"] >= bayes - 0.02]
        if len(reached):
            numbers["answers_to_place"] = int(reached["n_shots"].iloc[0])
    rows = table[table["group"] == "unseen"]
    first, last = rows.iloc[0], rows.iloc[-1]
    numbers["placement_text"] = (f"accuracy {first['accuracy']:.3f} after "
                                 f"{int(first['n_shots'])} answer(s), {last['accuracy']:.3f} "
                                 f"after {int(last['n_shots'])}")
    if "answers_to_place" in numbers:
        s.paragraphs.append(f"Within 2 points of knowing the weights after "
                            f"{numbers['answers_to_place']} answers.")
    s.paragraphs.append("Questions chosen by information gain (bayespal.suggest) place people "
                        "faster than the random questions used here.")
    s.tables.append(("Held-out accuracy, log-loss and calibration after n answers",
                     rows.drop(columns=["group"])))
    s.figure("Held-out accuracy against the number of answers a new person gave.",
             plots.plot_fewshot(table))
    numbers["fewshot"] = rows.drop(columns=["group"]).to_dict(orient="records")
    return s


@keeps_global_rng
@torch.no_grad()
def simulate_new_users(fit, n_users: int = 200, n_answers: int = 40, seed: int = 0
                       ) -> tuple[PreferenceData, float]:
    """People drawn from the fitted population answering random pairs of the fit's items:
    weights from the population prior ``Dirichlet(alpha)`` (and, with ``user_cutpoints``,
    cutpoint factors from theirs), answers from the model at its posterior mean (PAL-B:
    under random training prompts).

    Parameters
    ----------
    fit:
        A fitted posterior holding its item table.
    n_users, n_answers:
        How many people, and comparisons each.
    seed:
        Seeds the people, the pairs and the answers.

    Returns
    -------
    tuple
        The comparisons (``PreferenceData``; ``meta["true_prob"]`` holds each one's
        probability, ``meta["true_weights"]`` each person's weights, with
        ``user_cutpoints`` ``meta["true_cutpoint_log_scale"]`` their factors) and the
        accuracy of predicting them from the true simulated weights (the expected accuracy
        of the Bayes-optimal predictor).
    """
    n_users, n_answers = check_int("n_users", n_users), check_int("n_answers", n_answers)
    table = fit.item_table()
    if len(table) < 2:
        raise fail("items", f"{len(table)} item", "at least 2 items to simulate comparisons")
    rng = np.random.default_rng(seed)
    draws = fit.population_draws(1, "mean", seed=seed)
    weights = fit.sample_prior_weights(n_users, rng)
    user = np.repeat(np.arange(n_users), n_answers)
    a = rng.integers(len(table), size=user.size)
    b = (a + rng.integers(1, len(table), size=user.size)) % len(table)  # never a itself
    extra, pc = {}, None
    if draws.takes_prompts:
        prompts = fit.prompt_table()
        c = rng.integers(len(prompts), size=user.size)
        pc = draws.prompt_features(prompts.embeddings[c])
        extra = dict(prompt=prompts.ids[c], prompts=prompts.embeddings, prompt_ids=prompts.ids)
    w = torch.as_tensor(weights[user], dtype=torch.float32, device=draws.device)
    offset = None
    if draws.has_item_effects:  # the training items' own effects (rows of the table)
        effects = draws.item_offsets(np.arange(len(table)))
        offset = effects[:, a] - effects[:, b]
    graded = draws.levels > 2
    # user_cutpoints: each person's own cutpoint factor, from the prior too
    factors = draws.prior_cutpoint_log_scales((n_users,), torch.Generator().manual_seed(seed))
    q = draws.probs(w.expand(draws.size, -1, -1), draws.features(table.embeddings[a]),
                    draws.features(table.embeddings[b]), pc, offset=offset, outcomes=graded,
                    cutpoint_log_scale=None if factors is None else
                    factors[:, torch.as_tensor(user, device=factors.device)]
                    ).mean(0).cpu().numpy()
    if graded:  # each answer's level drawn from its levels' probabilities
        level = (rng.random(user.size)[:, None] > q.cumsum(1)[:, :-1]).sum(1)
        label, prob = level / (draws.levels - 1), expected_label(q)
        below, above = q[:, : draws.levels // 2].sum(1), q[:, (draws.levels + 1) // 2:].sum(1)
        bayes = float(np.maximum(below, above).sum() / (below + above).sum())
    else:
        prob = q
        label = (rng.random(user.size) < prob).astype(np.int64)
        bayes = float(np.maximum(prob, 1 - prob).mean())
    data = PreferenceData.from_arrays([f"simulated {u}" for u in user], table.ids[a],
                                      table.ids[b], label, table.embeddings, table.ids, **extra,
                                      levels=draws.levels)
    data.meta["true_prob"] = prob
    data.meta["true_weights"] = weights
    if factors is not None:
        data.meta["true_cutpoint_log_scale"] = factors[0].cpu().numpy()
    return data, bayes


# ------------------------------------------------------------------------------ the report
def pluralism_report(fit, test: PreferenceData | None = None,
                     unseen: PreferenceData | None = None, *, items=None, top: int = 5,
                     shots: Sequence[int] = SHOTS[:-1], n_test: int = 10,
                     simulated_users: int = 200, num_samples: int = 200, seed: int = 0,
                     title: str | None = None) -> PluralismReport:
    """The pluralism report of a fit (see the module docstring for its five sections).

    Parameters
    ----------
    fit:
        A fitted posterior (``bayespal.fit`` or ``bayespal.load``).
    test:
        Held-out comparisons of the training users, for the calibration section (default:
        the training comparisons, said to be in-sample; none after ``bayespal.load``).
    unseen:
        Comparisons of users the fit never saw, for the few-shot curve (default: people
        simulated from the fitted population).
    items:
        The item table (an ``EmbeddingTable``, with texts where known; default: the fit's).
    top:
        Items shown per prototype at the top and at the bottom.
    shots:
        Numbers of answers on the few-shot curve.
    n_test:
        Held-out comparisons per new user.
    simulated_users:
        Simulated new people, where ``unseen`` is not given.
    num_samples:
        Posterior draws for the shares' intervals.
    seed:
        Seeds the draws, the split and the simulation.
    title:
        The page's title.

    Returns
    -------
    PluralismReport
        ``.to_html()``, ``.save(path)``, ``.sections``, ``.numbers``.
    """
    top, n_test = check_int("top", top), check_int("n_test", n_test)
    shots = sorted({check_int("shots", n) for n in shots})
    for name, data in (("test", test), ("unseen", unseen)):
        if data is not None and not isinstance(data, PreferenceData):
            raise fail(name, type(data).__name__, "a PreferenceData or None")
    table = fit.item_table(items)
    numbers: dict = {"k": int(fit.k), "comparisons": int(_comparisons(fit))}
    sections = [_kinds(fit, num_samples, numbers), _users(fit, numbers),
                _prototypes(fit, table, top, numbers), _calibration(fit, test, numbers),
                _new_users(fit, unseen, shots, n_test, simulated_users, seed, numbers)]
    name = getattr(fit, "model_config", None)
    kind = name.name if name is not None else "an ensemble"
    return PluralismReport(title or f"Pluralism report: {kind}, K = {fit.k}",
                           {s.id: s for s in sections}, numbers)


def _comparisons(fit) -> int:
    members = getattr(fit, "members", None)
    return (members[0] if members else fit).model.n_comparisons


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "\u2026"


def _vector(w: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.2f}" for x in w) + ")"


__all__ = ["SECTIONS", "PluralismReport", "Section", "pluralism_report", "simulate_new_users"]
