"""Diagnostics with ArviZ: DataTree export, PSIS-LOO and model comparison, posterior
predictive checks for pairwise preferences, and label alignment between fits."""

from __future__ import annotations

import json
from collections.abc import Mapping

import arviz_base
import arviz_stats
import numpy as np
import pandas as pd
import pyro.distributions as dist
import torch
import xarray as xr
from scipy import sparse

from bayespal._version import __version__
from bayespal.checks import check_table
from bayespal.data import PreferenceData
from bayespal.model import PopulationDraws
from bayespal.model.likelihood import choice_logits
from bayespal.model.matching import match_prototypes
from bayespal.model.pal import OrderedOutcome
from bayespal.rng import keeps_global_rng

CHUNK = 4096


def _data(posterior, data: PreferenceData | None, what: str) -> PreferenceData:
    """``data``, or the fit's training comparisons, or a clear error after ``load``."""
    if data is None:
        data = posterior.training_data
        if data is None:
            raise ValueError(f"data: got None; expected PreferenceData ({what} needs "
                             "comparisons, and this fit holds none: it was loaded from a file)")
    if not isinstance(data, PreferenceData):
        raise ValueError(f"data: got {type(data).__name__}; expected PreferenceData")
    return data


def _comparison_logits(draws: PopulationDraws, weights: torch.Tensor, users: np.ndarray,
                       data: PreferenceData, posterior) -> torch.Tensor:
    """Per-draw logits ``(P, N)`` of ``data``'s comparisons (users at ``users``); for choices
    from larger sets (``data.others``) the categorical logits ``(P, N, 2 + m)`` over
    ``(item_b, item_a, others)`` (``likelihood.choice_logits``)."""
    out = []
    filled = data.other_rows()
    for s in range(0, len(users), CHUNK):
        sl = slice(s, s + CHUNK)
        ea, eb = data.items[data.item_a[sl]], data.items[data.item_b[sl]]
        fa, fb = draws.features(ea), draws.features(eb)
        pc = None if data.prompt is None else draws.prompt_features(
            data.prompts[data.prompt[sl]])
        offset = None
        if draws.has_item_effects:
            offset = draws.pair_offsets(
                posterior.training_rows(data.item_ids[data.item_a[sl]], ea),
                posterior.training_rows(data.item_ids[data.item_b[sl]], eb))
        w = weights[:, torch.as_tensor(users[sl], device=weights.device)]
        logits = draws.logits(w, fa, fb, pc, offset)
        if filled is not None:
            eo = data.items[filled[sl]]
            o_off = None
            if draws.has_item_effects:
                ro = posterior.training_rows(data.item_ids[filled[sl]].reshape(-1),
                                             eo.reshape(-1, eo.shape[-1]))
                o_off = (draws.item_offsets(ro).reshape(draws.size, *filled[sl].shape)
                         - draws.item_offsets(posterior.training_rows(
                             data.item_ids[data.item_b[sl]], eb)).unsqueeze(-1))
            o_diff, o_gram = draws.other_terms(draws.features(eo), fb, pc, o_off)
            others = torch.as_tensor(data.others[sl], device=logits.device)
            logits = choice_logits(w.expand(logits.shape[0], -1, -1), logits, o_diff, o_gram,
                                   others)
        out.append(logits)
    return torch.cat(out, 1)


@keeps_global_rng
@torch.no_grad()
def to_datatree(posterior, data: PreferenceData | None = None, num_samples: int = 500,
                seed: int | None = None) -> xr.DataTree:
    """The fit as an ArviZ ``DataTree``.

    Groups: ``posterior`` (prototypes, sharpness, PAL-B loadings, weights; real user ids as
    coordinates), ``posterior_predictive`` and ``log_likelihood`` of every comparison's
    label, ``observed_data``, ``constant_data`` (user and item indices, the population
    prior of the weights: ``prior_proportion`` and ``prior_concentration``, dims
    ``(component, prototype)``, see ``Posterior.population_prior``), and attrs (bayespal
    version, both configurations and their hashes, K).
    Where comparisons are grouped into answers (``data.question``: the choices of one
    ranking), ``log_likelihood`` also holds ``answer``, each answer's log-likelihood (the
    sum over its choices, dim ``question``, the data's question ids;
    ``constant_data.answer_of`` maps comparisons to positions along it), and ``loo`` leaves
    out whole answers.
    Draws are from the (variational) posterior, one chain per ensemble member (chains of
    different mappings are not comparable by R-hat).

    Parameters
    ----------
    posterior:
        A fitted posterior.
    data:
        Comparisons of the fit's users (default: the training data, which a loaded fit does
        not hold).
    num_samples:
        Draws (per member).
    seed:
        Seeds the draws (default: the fit's seed).
    """
    data = _data(posterior, data, "to_datatree")
    users = posterior.user_index(data.user_ids[data.user])
    if (users < 0).any():
        bad = data.user_ids[data.user][np.flatnonzero(users < 0)[0]]
        raise ValueError(f"data: got user {bad!r}, not in the fit; expected the fit's users "
                         "(diagnostics condition on each user's posterior)")
    draws, weights = posterior.posterior_draws(num_samples * posterior.n_members, seed)
    logits = _comparison_logits(draws, weights, users, data, posterior)
    chains = draws.n_members
    level = np.rint(data.label * (data.levels - 1)).astype(np.int64)  # binary: the label
    obs = torch.as_tensor(level, device=logits.device, dtype=torch.float64)
    # float64: no log-likelihood saturates to 0
    if data.others is not None:  # choices from sets: which item (0: item_b, 1: item_a)
        answer = dist.Categorical(logits=logits.double())
    elif draws.levels == 2:
        answer = dist.Bernoulli(logits=logits.double())
    else:
        shift = posterior.user_cutpoint_draws(draws, seed=seed)  # (P, U) or None
        cuts = (draws.cuts()[:, None, :] if shift is None
                else draws.user_cuts(shift[:, torch.as_tensor(users, device=shift.device)]))
        answer = OrderedOutcome(logits.double(), cuts.double())
    log_lik = answer.log_prob(obs)  # (S, N)
    per_answer, answer_of = {}, None
    if data.question is not None:  # one ranking's choices make one observation
        answer_of = np.unique(data.question, return_inverse=True)[1].reshape(-1)
        index = torch.as_tensor(answer_of, device=log_lik.device)
        summed = log_lik.new_zeros(log_lik.shape[0], int(answer_of.max()) + 1)
        per_answer = {"answer": summed.index_add_(1, index, log_lik)}
    torch.manual_seed(posterior.seed if seed is None else seed)

    def chained(x: torch.Tensor) -> np.ndarray:
        return x.reshape(chains, -1, *x.shape[1:]).cpu().numpy()

    site = {"prototypes": draws.prototypes, "sharpness": draws.sharpness}
    if draws.loadings is not None:
        site["loadings"] = draws.loadings
    if draws.cutpoints is not None:
        site["cutpoints"] = draws.cutpoints
    if posterior.k > 1:
        site["weights"] = weights
    cfg = posterior.model_config
    prior = posterior.population_prior()
    tree = arviz_base.from_dict(
        {
            "posterior": {name: chained(v) for name, v in site.items()},
            "posterior_predictive": {"label": chained(answer.sample().long())},
            "log_likelihood": {"label": chained(log_lik),
                               **{k: chained(v) for k, v in per_answer.items()}},
            "observed_data": {"label": level},
            "constant_data": {
                "user": users.astype(np.int64),
                "item_a": data.item_a.astype(np.int64),
                "item_b": data.item_b.astype(np.int64),
                "prior_proportion": prior["proportion"].values,
                "prior_concentration": prior["concentration"].values,
                **({"prompt": data.prompt.astype(np.int64)} if data.prompt is not None else {}),
                **({"answer_of": answer_of.astype(np.int64)} if answer_of is not None else {}),
            },
        },
        dims={
            "prototypes": ["prototype", "pref_dim"],
            "loadings": ["prototype", "pref_dim", "prompt_dim"],
            "cutpoints": ["cutpoint"],
            "prompt": ["comparison"],
            "weights": ["user", "prototype"],
            "label": ["comparison"],
            "answer": ["question"],
            "answer_of": ["comparison"],
            "user": ["comparison"],
            "item_a": ["comparison"],
            "item_b": ["comparison"],
            "prior_proportion": ["component"],
            "prior_concentration": ["component", "prototype"],
        },
        coords={
            "user": np.asarray(posterior.user_ids),
            "prototype": np.arange(posterior.k),
            "component": prior["component"].values,
            "pref_dim": np.arange(cfg.pref_dim),
            "comparison": np.arange(len(data)),
            **({"question": np.unique(data.question)} if per_answer else {}),
            **({"prompt_dim": np.arange(draws.loadings.shape[-1])}
               if draws.loadings is not None else {}),
        },
    )
    tree.attrs.update({
        "bayespal_version": __version__,
        "model": cfg.name,
        "k": posterior.k,
        "inference": posterior.train_config.inference,
        "members": chains,
        "model_config": json.dumps(cfg.to_dict(), sort_keys=True),
        "model_config_hash": cfg.hash(),
        "train_config": json.dumps(posterior.train_config.to_dict(), sort_keys=True),
        "train_config_hash": posterior.train_config.hash(),
    })
    return tree


def loo(source, num_samples: int = 500, seed: int | None = None) -> arviz_stats.ELPDData:
    """PSIS-LOO of a fit (or of a DataTree from ``to_datatree``) with ``arviz_stats.loo``:
    one observation per answer (a comparison, or a whole ranking where the data group
    choices into answers, ``PreferenceData.question``).

    Comparisons whose log-likelihood is the same in every draw (to 1e-9 nats: a MAP
    fit, or probabilities saturated near 0 or 1) make PSIS fail; for them leaving one out changes
    nothing, so their importance weights are uniform and their Pareto k is 0 (exact), and
    ArviZ gets these with the PSIS weights of the others.

    Parameters
    ----------
    source:
        A fitted posterior or a DataTree from to_datatree.
    num_samples, seed:
        Draws for to_datatree when a fit is given.
    """
    tree = source if isinstance(source, xr.DataTree) else to_datatree(source, None, num_samples,
                                                                         seed)
    var = "answer" if "answer" in tree["log_likelihood"].data_vars else "label"
    ll = tree["log_likelihood"][var]
    dim = ll.dims[-1]  # "comparison" or "question"
    sample_dims = ["chain", "draw"]
    # "constant" to 1e-9 nats: saturated probabilities vary by ~1e-12, which breaks PSIS's
    # Pareto fit and changes no elpd visibly
    const = (ll.max(sample_dims) - ll.min(sample_dims)) <= 1e-9
    n_draws = ll.sizes["chain"] * ll.sizes["draw"]
    log_weights = xr.full_like(ll, -np.log(n_draws))
    pareto_k = xr.zeros_like(ll.isel(chain=0, draw=0, drop=True))
    varying = ~const.values
    if varying.any():
        sub = ll.isel({dim: varying})
        lw, k = sub.azstats.psislw(r_eff=1.0, dim=sample_dims)
        log_weights[{dim: varying}] = lw.transpose(*ll.dims).values
        pareto_k[{dim: varying}] = k.values
    result = arviz_stats.loo(tree, pointwise=True, var_name=var, log_weights=log_weights,
                             pareto_k=pareto_k, reff=1.0)
    result.n_constant = int(const.sum())  # type: ignore[attr-defined]
    return result


def compare(fits: Mapping, num_samples: int = 500, seed: int | None = None) -> pd.DataFrame:
    """Rank fits (e.g. different K) by PSIS-LOO with ``arviz_stats.compare``; adds the
    share of comparisons with Pareto k > 0.7 per model (``bad_k``).

    Parameters
    ----------
    fits:
        Named fitted posteriors (at least two) of the same comparisons.
    num_samples, seed:
        Draws per fit.
    """
    if len(fits) < 2:
        raise ValueError(f"fits: got {len(fits)} model(s); expected at least two to compare")
    elpds = {name: loo(f, num_samples, seed) for name, f in fits.items()}
    table = arviz_stats.compare(elpds)
    table["bad_k"] = [float((elpds[n].pareto_k > 0.7).mean()) for n in table.index]
    table["k"] = [getattr(fits[n], "k", None) for n in table.index]
    return table


# ---------------------------------------------------------------------- label alignment
MAX_PROMPTS = 32
"""PAL-B: the most training prompts ``prototype_reward_matrix`` scores items under."""


@keeps_global_rng
@torch.no_grad()
def prototype_reward_matrix(posterior, items, prompts=None, max_prompts: int = MAX_PROMPTS
                            ) -> np.ndarray:
    """``sharpness * r_k(x)`` at the posterior mean (one draw per member, averaged), centred
    over items: ``(K, M)``, comparable across fits (logit units, additive constant removed).

    Parameters
    ----------
    posterior:
        A fitted posterior.
    items:
        ``(M, D)`` item embeddings.
    prompts:
        PAL-B: prompt embeddings (default: the training prompts); the items' rewards under
        up to ``max_prompts`` of them side by side: ``(K, C * M)``.
    max_prompts:
        The most prompts used.
    """
    draws = posterior.population_draws(1, "mean")
    items = check_table("items", items, posterior.embed_dim, "items")
    feats = draws.features(items)
    rows = posterior.training_rows(None, items)
    prompt_rows = [None]
    if draws.takes_prompts:
        table = posterior.embeddings("prompts") if prompts is None else prompts
        prompt_rows = list(np.asarray(table)[:max_prompts])
    parts = []
    for row in prompt_rows:
        pc = None if row is None else draws.prompt_features(np.asarray(row).reshape(1, -1))
        r = draws.rewards(feats, pc, rows) * draws.sharpness[:, None, None]  # (P, K, M)
        r = r.mean(0)
        parts.append(r - r.mean(-1, keepdim=True))
    return torch.cat(parts, -1).cpu().numpy()


def item_rewards(posterior, items) -> np.ndarray:
    """Each prototype's reward of each item, ``(K, M)``: ``prototype_reward_matrix``
    averaged over the prompts for PAL-B (what each prototype prefers across the prompts),
    centred over the items.

    Parameters
    ----------
    posterior:
        A fitted posterior.
    items:
        ``(M, D)`` item embeddings.
    """
    r = prototype_reward_matrix(posterior, items)
    m = np.asarray(items).shape[0]
    r = r.reshape(r.shape[0], r.shape[1] // m, m).mean(1)
    return r - r.mean(1, keepdims=True)


def align_prototypes(reference, other, items=None) -> np.ndarray:
    """The permutation ``perm`` with ``other``'s prototype ``perm[j]`` matching
    ``reference``'s prototype ``j``, by the prototypes' rewards of ``items`` (default: the
    reference's training items; ``match_prototypes``). When
    ``other`` has more prototypes the extra ones are left out; with fewer, unmatched
    reference prototypes get -1.

    Parameters
    ----------
    reference, other:
        Fitted posteriors.
    items:
        ``(M, D)`` item embeddings.
    """
    if items is None:
        items = reference.embeddings("items")
    return match_prototypes(prototype_reward_matrix(reference, items),
                            prototype_reward_matrix(other, items))


# ---------------------------------------------------------------------- predictive checks
@keeps_global_rng
def heterogeneity_check(posterior, data: PreferenceData | None = None,
                        num_samples: int = 300, seed: int | None = None) -> xr.Dataset:
    """Do users differ as much as the model says they do?

    Each comparison's *population majority* is the answer the population-average user
    more likely gives. Per user, the agreement rate with it is computed on the observed
    labels and on replicated labels; the statistic is the spread (sd) of agreement over
    users. Replication is *mixed* (Marshall & Spiegelhalter 2003): for each posterior draw
    of the population, every user is replaced by a fresh user drawn from the population
    ``Dirichlet(alpha)`` answering the same questions. Replicating from each user's own
    posterior would reuse their labels and always look fine; this way the check asks
    whether the *population* model produces the heterogeneity seen in the data.

    Returns the observed statistic, its replicated draws and the posterior predictive
    p-value ``P(T_rep >= T_obs)``. A K = 1 model fitted to users who really differ
    replicates too little spread (p near 0).

    Choices from larger sets (rankings' stages, best-of-n) are checked the same way: the
    majority is the item the population-average user most likely chooses (the replicated
    users' choice probabilities averaged over the draws), a user agrees when they chose it,
    and the replicated choices are drawn from the same categorical likelihood.

    Parameters
    ----------
    posterior:
        A fitted posterior.
    data:
        Comparisons (default: the training data, which a loaded fit does not hold).
    num_samples, seed:
        Population draws and their seed (default: the fit's).
    """
    data = _data(posterior, data, "heterogeneity_check")
    seed = posterior.seed if seed is None else seed
    draws = posterior.population_draws(num_samples, seed=seed)
    with torch.no_grad():
        torch.manual_seed(seed)
        new_users = draws.sample_weights((data.n_users,))  # (S, U, K)
        logits = _comparison_logits(draws, new_users, data.user, data, posterior)
        if data.others is None:  # P(level >= j), j = 1..L-1 (binary: P(a preferred))
            shift = draws.prior_cutpoint_log_scales((data.n_users,))  # new users' factors
            cuts = (draws.cuts()[:, None, :] if shift is None else
                    draws.user_cuts(shift[:, torch.as_tensor(data.user, device=shift.device)]))
            at_least = torch.sigmoid(logits.unsqueeze(-1) - cuts)
        else:  # each item's chance of being chosen, over (b, a, others)
            chosen = torch.softmax(logits, -1)
    rng = np.random.default_rng(seed)
    if data.others is None:
        at_least = at_least.cpu().numpy()
        majority = posterior.predict_population_proba(
            data.item_a, data.item_b, items=data.items, prompt=data.prompt,
            prompts=data.prompts, seed=seed) > 0.5
        scale = data.levels - 1
        rep = (rng.random(at_least.shape[:-1])[..., None] < at_least).sum(-1) / scale

        def agreement(labels: np.ndarray) -> np.ndarray:
            # how far each answer is on the majority's side (a tie: half)
            return np.where(majority, labels, 1 - labels).astype(np.float64)
    else:
        chosen = chosen.cpu().numpy()  # (S, N, 2 + m)
        majority = chosen.mean(0).argmax(-1)  # the population-average user's likeliest item
        cumulative = chosen.cumsum(-1)
        u = rng.random(chosen.shape[:-1])[..., None]
        rep = np.minimum((u >= cumulative).sum(-1), chosen.shape[-1] - 1)  # inverse CDF

        def agreement(labels: np.ndarray) -> np.ndarray:
            # labels are the chosen item's slot: 1 item_a, 0 item_b (others: never chosen)
            return (np.asarray(labels).round() == majority).astype(np.float64)
    counts = np.bincount(data.user, minlength=data.n_users)
    member = sparse.csr_matrix((1 / counts[data.user], (np.arange(len(data)), data.user)),
                               shape=(len(data), data.n_users))  # per-user mean as a matmul

    def spread(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_user = np.asarray((member.T @ agreement(labels).T).T)  # (..., U)
        return per_user.std(-1), per_user

    t_obs, agree_obs = spread(data.label)
    t_rep, _ = spread(rep)
    return xr.Dataset(
        {
            "observed": t_obs,
            "replicated": (("draw",), t_rep),
            "p_value": float((t_rep >= t_obs).mean()),
            "user_agreement": (("user",), agree_obs),
        },
        coords={"user": data.user_ids},
        attrs={"statistic": "sd over users of agreement with the population majority",
               "replication": "mixed: new users from the population, population draws"},
    )
