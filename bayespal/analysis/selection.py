"""How many kinds of people: ``select_k`` chooses the number of prototypes from the data
and shows the evidence.

Every candidate K is fitted (self-tuned, as ``bayespal.fit``) to the comparisons of
the *seen* users, a random ``1 - unseen_fraction`` of the users, with an internal
validation split of each seen user's comparisons and no refit, so two held-out scores are
honest:

- **seen**: the posterior-predictive log-loss of the seen users' validation comparisons
  (how well K prototypes describe the people they were fitted to);
- **unseen**: the log-loss of the *unseen* users' remaining comparisons after each was
  placed from ``shots`` of their answers (how well the K prototypes and the learned
  population describe people the fit never saw: the question "how many kinds of people"
  asks).

The criterion is the sum of the two means. Its standard error against the best K is
computed from per-user *paired* differences (the same people are scored under every K),
and the chosen K is the smallest within one standard error of the best (the one-standard-
error rule: a larger K must earn its keep). Before that, if 1 is a candidate, the K = 1
fit's posterior predictive heterogeneity check
(``heterogeneity_check``, of pairs, graded answers or choices from sets) asks whether one
reward model reproduces how much the seen users' answers differ; if it does (p above
``HETEROGENEITY_LEVEL``), K = 1 is chosen: held-out log-losses of larger K then differ
only by the luck of each fit (measured: a K = 4 fit of one-type data scored 0.009 better
than K = 1, beyond one paired standard error of 0.008). The chosen K is then refitted on
all users.
The table also shows the share of the seen users' weight each prototype carries and the
effective number of prototypes in use, ``exp(entropy of the shares)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bayespal.analysis.diagnostics import heterogeneity_check
from bayespal.analysis.evaluation import predict_answers
from bayespal.checks import check_int, check_real, fail
from bayespal.data import PreferenceData
from bayespal.inference import tuning
from bayespal.metrics import answer_nll
from bayespal.posterior import Posterior, fit
from bayespal.posterior.fitting import configs
from bayespal.users import place_users

DEFAULT_KS = (1, 2, 3, 4, 5)
HETEROGENEITY_LEVEL = 0.05
"""K = 1 is chosen when its heterogeneity check's p-value exceeds this."""


@dataclass(frozen=True)
class KSelection:
    """The evidence per K and the chosen fit, from ``select_k``.

    Attributes
    ----------
    table:
        One row per K: ``seen_log_loss``, ``unseen_log_loss``, ``criterion`` (their sum),
        ``se_vs_best`` (paired standard error of its difference to the best K),
        ``weight_share`` (each prototype's share of the seen users' weight, largest
        first), ``smallest_share``, ``effective_prototypes``, ``seconds``, ``chosen``.
    k:
        The chosen number of prototypes.
    fit:
        The chosen K fitted to all users.
    reason:
        One sentence: why this K.
    """

    table: pd.DataFrame
    k: int
    fit: Posterior
    reason: str


def _per_user_log_loss(prob: np.ndarray, data: PreferenceData) -> pd.Series:
    """Each user's mean log-loss of ``P(a)`` ``(n,)``, of level probabilities ``(n, L)``
    or of choice probabilities over ``(item_b, item_a, others)`` ``(n, 2 + m)``."""
    nll = answer_nll(prob, data.label, choices=data.others is not None)
    return pd.Series(nll).groupby(data.user_ids[data.user]).mean()


def _shots(data: PreferenceData, shots: int, seed: int
           ) -> tuple[PreferenceData, PreferenceData] | None:
    """Per unseen user with more than ``shots`` answers: ``shots`` random ones to place
    the user from, the rest to score."""
    counts = data.answers_per_user()
    rank = data.rank_within_users(np.random.default_rng(seed))
    enough = (counts > shots)[data.user]
    if not enough.any():
        return None
    return data.subset(enough & (rank < shots)), data.subset(enough & (rank >= shots))


def select_k(data: PreferenceData, ks: Sequence[int] = DEFAULT_KS, *,
             unseen_fraction: float = 0.2, shots: int = 5, progress: bool = False,
             **options) -> KSelection:
    """Choose the number of prototypes K from the data (see the module docstring).

    Parameters
    ----------
    data:
        The comparisons.
    ks:
        Candidate numbers of prototypes (distinct positive integers).
    unseen_fraction:
        Share of the users held out as unseen for the few-shot score.
    shots:
        Answers each unseen user is placed from.
    progress:
        Show the fits' progress bars.
    **options:
        Settings of every fit (fields of ModelConfig / TrainConfig, ``ensemble``,
        ``model=``, ``train=``), as for ``bayespal.fit``.

    Returns
    -------
    KSelection
        KSelection: the table per K, the chosen K and its fit on all users.
    """
    if not isinstance(data, PreferenceData):
        raise fail("data", type(data).__name__, "a PreferenceData")
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise fail("ks", ks, "a sequence of candidate K (positive integers)")
    ks = sorted({check_int("ks", k) for k in ks})
    if not ks:
        raise fail("ks", ks, "at least one candidate K")
    unseen_fraction = check_real("unseen_fraction", unseen_fraction, low=0, high=1,
                                 low_open=True, high_open=True)
    shots = check_int("shots", shots)
    if "k" in options:
        raise fail("k", options["k"], "no k with select_k (the candidates are ks)")
    ensemble = options.pop("ensemble", 1)
    model_config, train_config = configs(1, options.pop("model", None),
                                         options.pop("train", None), **options)
    seen, unseen = data.split_users(unseen_fraction, seed=train_config.seed)
    split = _shots(unseen, shots, train_config.seed)
    if split is None:
        raise fail("shots", shots, f"fewer than the unseen users' answers (each of the "
                   f"{unseen.n_users} unseen users has at most {shots})")
    shot, scored = split
    if train_config.validation_fraction == 0:
        raise fail("validation_fraction", 0, "a share > 0: the seen users' score is their "
                   "held-out comparisons")
    # the candidates' own validation split (the same data, fraction and seed)
    _, held = tuning.validation_split(seen, train_config.validation_fraction,
                                      train_config.seed)
    if held is None:
        raise fail("data", f"{int(data.answers_per_user().sum())} answers", "enough answers "
                   f"to hold out at least {tuning.MIN_VALIDATION} for validation")
    rows, per_user, het_p = [], {}, math.nan
    for k in ks:
        start = time.perf_counter()
        cand = fit(seen, model=replace(model_config, k=k),
                   train=replace(train_config, refit=False), ensemble=ensemble,
                   progress=progress)
        seen_loss = _per_user_log_loss(predict_answers(cand, held), held)
        placed = place_users(cand, shot, seed=train_config.seed)
        unseen_loss = _per_user_log_loss(predict_answers(placed, scored), scored)
        per_user[k] = (seen_loss, unseen_loss)
        if k == 1:  # does one reward model reproduce how users differ?
            het_p = float(heterogeneity_check(cand, seen, seed=train_config.seed)["p_value"])
        share = np.sort(np.asarray(cand.user_weights()["mean"].mean("user")))[::-1]
        entropy = -float(np.sum(share * np.log(np.clip(share, 1e-12, None))))
        rows.append({"k": k, "seen_log_loss": float(seen_loss.mean()),
                     "unseen_log_loss": float(unseen_loss.mean()),
                     "weight_share": [round(float(s), 4) for s in share],
                     "smallest_share": float(share[-1]),
                     "effective_prototypes": math.exp(entropy),
                     "seconds": time.perf_counter() - start})
    table = pd.DataFrame(rows)
    table["criterion"] = table["seen_log_loss"] + table["unseen_log_loss"]
    best = int(table["criterion"].idxmin())
    kb = ks[best]
    se = []
    for k in ks:
        d_seen = per_user[k][0] - per_user[kb][0]
        d_unseen = per_user[k][1] - per_user[kb][1]
        var = sum(float(d.var(ddof=1)) / len(d) if len(d) > 1 else 0.0
                  for d in (d_seen, d_unseen))
        se.append(math.sqrt(var))
    table["se_vs_best"] = se
    within = table["criterion"] - table["criterion"][best] <= table["se_vs_best"]
    chosen_row = int(np.flatnonzero(within.to_numpy())[0])
    one_fits = ks[0] == 1 and het_p > HETEROGENEITY_LEVEL
    if one_fits:
        chosen_row = 0
    k_star = ks[chosen_row]
    table["heterogeneity_p"] = [het_p if k == 1 else math.nan for k in ks]
    table["chosen"] = np.arange(len(table)) == chosen_row
    table = table[["k", "seen_log_loss", "unseen_log_loss", "criterion", "se_vs_best",
                   "heterogeneity_p", "weight_share", "smallest_share",
                   "effective_prototypes", "seconds", "chosen"]]
    rule = (f"the K = 1 fit reproduces how much the users differ (heterogeneity check p = "
            f"{het_p:.3f} > {HETEROGENEITY_LEVEL})" if one_fits else
            f"the smallest K within one paired standard error of the best criterion (k={kb}, "
            f"seen + unseen log-loss {table['criterion'][best]:.4f})")
    reason = (f"k={k_star}: {rule}; "
              f"{seen.n_users} seen users ({held.n_comparisons} validation comparisons), "
              f"{shot.n_users} unseen users placed from {shots} answers each")
    final = fit(data, model=replace(model_config, k=k_star), train=train_config,
                ensemble=ensemble, progress=progress)
    final.k_selection = table
    return KSelection(table, k_star, final, reason)
