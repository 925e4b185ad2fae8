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
from scipy.optimize import linear_sum_assignment

from bayespal.data import PreferenceData
from bayespal.ensemble import EnsemblePAL
from bayespal.models.ideal_point import mixture_logits, prototype_rewards
from bayespal.models.prompted import prompt_prototypes
from bayespal.rng import keeps_global_rng

CHUNK = 4096


def _single(fit) -> None:
    if isinstance(fit, EnsemblePAL):
        raise ValueError("fit: got an EnsemblePAL; expected a single fit (its members "
                         "have different mappings: use ens.members[i])")


def _draws_and_logits(fit, data: PreferenceData, num_samples: int, seed: int | None):
    """Posterior draws (numpy) and, from the *same* draws, the logits ``(S, N)`` of every
    comparison of ``data`` (all of whose users the fit must know)."""
    users = fit.user_index(data.user_ids[data.user])
    if (users < 0).any():
        bad = data.user_ids[data.user][np.flatnonzero(users < 0)[0]]
        raise ValueError(f"data: got user {bad!r}, not in the fit; expected the fit's users "
                         "(diagnostics condition on each user's posterior)")
    draws = fit.sample_posterior(num_samples, seed=seed)
    sites = {k: torch.as_tensor(v, device=fit.device) for k, v in draws.items()}
    _, emb_a, emb_b, emb_c = fit._resolve(data, None, None, None, None)
    logits = []
    with torch.no_grad():
        for s in range(0, len(users), CHUNK):
            sl = slice(s, s + CHUNK)
            diff, gram = fit._terms(sites, emb_a[sl], emb_b[sl],
                                    None if emb_c is None else emb_c[sl])  # (S, B, K)
            w = sites["weights"][:, torch.as_tensor(users[sl], device=fit.device)]  # (S, B, K)
            logits.append(mixture_logits(w, diff, gram))
    return draws, torch.cat(logits, 1)


@keeps_global_rng
def to_datatree(fit, data: PreferenceData | None = None, num_samples: int = 500,
                seed: int | None = None) -> xr.DataTree:
    """The fit as an ArviZ ``DataTree``: ``posterior`` (prototypes, sharpness, weights; real
    user ids as coordinates), ``posterior_predictive`` and ``log_likelihood`` of every
    comparison's label, ``observed_data``, ``constant_data`` (user and item indices), and
    attrs (bayespal version, configuration and its hash, K). Draws are from the
    (variational) posterior, one chain (an :class:`~bayespal.ensemble.EnsemblePAL`: one
    chain per member; chains of different mappings are not comparable by R-hat).
    ``data`` defaults to the training data."""
    from bayespal import __version__

    data = fit.train if data is None else data
    if data is None:
        raise ValueError("data: got None; expected PreferenceData (the fit kept no training data)")
    members = fit.members if isinstance(fit, EnsemblePAL) else [fit]  # one chain each
    parts = [_draws_and_logits(m, data, num_samples, seed) for m in members]
    draws = {name: np.stack([d[name] for d, _ in parts]) for name in parts[0][0]}
    logits = torch.stack([lg for _, lg in parts])  # (chain, draw, comparison)
    label = torch.as_tensor(data.label, device=logits.device, dtype=torch.float64)
    bern = dist.Bernoulli(logits=logits.double())  # float64: no log-likelihood saturates to 0
    torch.manual_seed(fit.seed if seed is None else seed)
    names = ["prototypes", "sharpness"] + (["loadings"] if fit.prompted else []) + (
        ["weights"] if fit.k > 1 else [])
    posterior = {name: draws[name] for name in names}
    users = fit.user_index(data.user_ids[data.user])
    n = len(data)
    tree = arviz_base.from_dict(
        {
            "posterior": posterior,
            "posterior_predictive": {"label": bern.sample().cpu().numpy()},
            "log_likelihood": {"label": bern.log_prob(label).cpu().numpy()},
            "observed_data": {"label": data.label.astype(np.int64)},
            "constant_data": {
                "user": users.astype(np.int64),
                "item_a": data.item_a.astype(np.int64),
                "item_b": data.item_b.astype(np.int64),
                "concentration": fit.concentration,
                **({"prompt": data.prompt.astype(np.int64)} if fit.prompted else {}),
            },
        },
        dims={
            "prototypes": ["prototype", "pref_dim"],
            "loadings": ["prototype", "pref_dim", "prompt_dim"],
            "prompt": ["comparison"],
            "weights": ["user", "prototype"],
            "label": ["comparison"],
            "user": ["comparison"],
            "item_a": ["comparison"],
            "item_b": ["comparison"],
            "concentration": ["prototype"],
        },
        coords={
            "user": np.asarray(fit.user_ids),
            "prototype": np.arange(fit.k),
            "pref_dim": np.arange(fit.config.pref_dim),
            "comparison": np.arange(n),
            **({"prompt_dim": np.arange(fit.config.prompt_dim)} if fit.prompted else {}),
        },
    )
    tree.attrs.update({
        "bayespal_version": __version__,
        "model": f"PAL-B (prompt-conditioned, {fit.config.score})" if fit.prompted
        else "PAL-A (ideal point)",
        "k": fit.k,
        "inference": fit.config.inference,
        "members": len(members),
        "config": json.dumps(fit.config.to_dict(), sort_keys=True),
        "config_hash": fit.config.hash(),
    })
    return tree


def loo(source, num_samples: int = 500, seed: int | None = None) -> arviz_stats.ELPDData:
    """PSIS-LOO of a fit (or of a DataTree from :func:`to_datatree`) with ``arviz_stats.loo``.

    Comparisons whose log-likelihood is the same in every draw (to 1e-9 nats: a MAP
    fit, or probabilities saturated near 0 or 1) make PSIS fail; for them leaving one out changes
    nothing, so their importance weights are uniform and their Pareto k is 0 (exact), and
    ArviZ gets these with the PSIS weights of the others."""
    tree = source if isinstance(source, xr.DataTree) else to_datatree(source, None, num_samples,
                                                                         seed)
    ll = tree["log_likelihood"]["label"]
    sample_dims = ["chain", "draw"]
    # "constant" to 1e-9 nats: saturated probabilities vary by ~1e-12, which breaks PSIS's
    # Pareto fit and changes no elpd visibly
    const = (ll.max(sample_dims) - ll.min(sample_dims)) <= 1e-9
    n_draws = ll.sizes["chain"] * ll.sizes["draw"]
    log_weights = xr.full_like(ll, -np.log(n_draws))
    pareto_k = xr.zeros_like(ll.isel(chain=0, draw=0, drop=True))
    varying = ~const.values
    if varying.any():
        sub = ll.isel(comparison=varying)
        lw, k = sub.azstats.psislw(r_eff=1.0, dim=sample_dims)
        log_weights[{"comparison": varying}] = lw.transpose(*ll.dims).values
        pareto_k[{"comparison": varying}] = k.values
    result = arviz_stats.loo(tree, pointwise=True, log_weights=log_weights, pareto_k=pareto_k,
                             reff=1.0)
    result.n_constant = int(const.sum())  # type: ignore[attr-defined]
    return result


def compare(fits: Mapping, num_samples: int = 500, seed: int | None = None) -> pd.DataFrame:
    """Rank fits (e.g. different K) by PSIS-LOO with ``arviz_stats.compare``; adds the
    share of comparisons with Pareto k > 0.7 per model (``bad_k``)."""
    if len(fits) < 2:
        raise ValueError(f"fits: got {len(fits)} model(s); expected at least two to compare")
    elpds = {name: loo(f, num_samples, seed) for name, f in fits.items()}
    table = arviz_stats.compare(elpds)
    table["bad_k"] = [float((elpds[n].pareto_k > 0.7).mean()) for n in table.index]
    table["k"] = [getattr(fits[n], "k", None) for n in table.index]
    return table


# ---------------------------------------------------------------------- label alignment
def prototype_reward_matrix(fit, items: np.ndarray, prompts: np.ndarray | None = None,
                            max_prompts: int = 32) -> np.ndarray:
    """``sharpness * r_k(x)`` at the posterior mean, centred over items: ``(K, M)``.
    Comparable across fits (logit units, additive constant removed). PAL-B: ``r_k(x | c)``
    for up to ``max_prompts`` of ``prompts`` (default: the training prompts), the items'
    rewards under each prompt side by side: ``(K, C * M)``."""
    _single(fit)
    point = fit.guide.point()
    with torch.no_grad():
        feats = fit.features(items)
        if not fit.prompted:
            r = prototype_rewards(point["prototypes"][0], feats).cpu().numpy()
        else:
            prompts = fit.train.prompts if prompts is None else prompts
            pc = fit.prompt_features(np.asarray(prompts)[:max_prompts])
            g = prompt_prototypes(point["prototypes"][0], point["loadings"][0], pc)  # (C, K, d)
            r = prototype_rewards(g, feats)  # (C, K, M)
            r = r - r.mean(-1, keepdims=True)
            r = r.transpose(0, 1).reshape(fit.k, -1).cpu().numpy()
    r = r * fit.sharpness()[0]
    return r - r.mean(1, keepdims=True)


def align_prototypes(reference, other, items: np.ndarray | None = None) -> np.ndarray:
    """The permutation ``perm`` with ``other``'s prototype ``perm[j]`` matching ``reference``'s
    prototype ``j``: an optimal assignment on the correlation of the prototypes' reward
    vectors over ``items`` (default: the reference's training items). When ``other`` has
    more prototypes the extra ones are left out; with fewer, unmatched reference
    prototypes get -1."""
    if items is None:
        items = reference.train.items
    ra, rb = prototype_reward_matrix(reference, items), prototype_reward_matrix(other, items)
    # centred across prototypes too: every r_k shares -||f(x)||^2, which would make all
    # prototypes look alike; what tells them apart is how each deviates from the others
    ra, rb = ra - ra.mean(0), rb - rb.mean(0)
    na = ra / np.linalg.norm(ra, axis=1, keepdims=True).clip(1e-12)
    nb = rb / np.linalg.norm(rb, axis=1, keepdims=True).clip(1e-12)
    rows, cols = linear_sum_assignment(-(na @ nb.T))
    perm = np.full(len(ra), -1)
    perm[rows] = cols
    return perm


# ---------------------------------------------------------------------- predictive checks
@keeps_global_rng
def heterogeneity_check(fit, data: PreferenceData | None = None, num_samples: int = 300,
                        seed: int | None = None) -> xr.Dataset:
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
    replicates too little spread (p near 0)."""
    _single(fit)
    data = fit.train if data is None else data
    torch.manual_seed(fit.seed if seed is None else seed)
    draws = fit.guide.sample(num_samples)
    _, emb_a, emb_b, emb_c = fit._resolve(data, None, None, None, None)
    with torch.no_grad():
        diff, gram = fit._terms(draws, emb_a, emb_b, emb_c)  # (S, N, K)
        new_users = dist.Dirichlet(fit.model.concentration).sample((num_samples, data.n_users))
        w = new_users[:, torch.as_tensor(data.user, device=fit.device)]  # (S, N, K)
        probs = torch.sigmoid(mixture_logits(w, diff, gram))
    probs = probs.cpu().numpy()
    majority = fit.predict_population_proba(data.item_a, data.item_b, items=data.items,
                                            prompt=data.prompt, prompts=data.prompts,
                                            seed=seed) > 0.5
    rng = np.random.default_rng(fit.seed if seed is None else seed)
    y_rep = rng.random(probs.shape) < probs
    counts = np.bincount(data.user, minlength=data.n_users)
    member = sparse.csr_matrix((1 / counts[data.user], (np.arange(len(data)), data.user)),
                               shape=(len(data), data.n_users))  # per-user mean as a matmul

    def spread(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        agree = (labels == majority).astype(np.float64)  # (..., N)
        per_user = np.asarray((member.T @ agree.T).T)  # (..., U)
        return per_user.std(-1), per_user

    t_obs, agree_obs = spread(data.label == 1)
    t_rep, _ = spread(y_rep)
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
