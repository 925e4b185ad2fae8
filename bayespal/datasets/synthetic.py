"""Synthetic PAL-A data with known truth.

Items have unit-norm random embeddings in ``R^D``. A fixed random *nonlinear* map
``f*(x) = tanh(A x)`` takes them to a ``pref_dim`` preference space holding K true
prototypes; each user is either a *partition* user (one-hot weights, a single
prototype) or a *mixture* user (weights drawn from ``Dirichlet(mixture_concentration)``).
Labels follow the PAL-A likelihood with the true sharpness, so the true probability of
every comparison (the Bayes-optimal prediction) is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayespal.data import PreferenceData, ranking_stages


@dataclass(frozen=True, eq=False)
class SyntheticPreferences:
    """A synthetic data set with its truth.

    Attributes
    ----------
    data:
        All comparisons (``train``/``test`` split them by ``is_test``).
    true_weights, true_prob, group, true_prototypes:
        The truth: users' weights, each comparison's probability, single-type users' type
        (-1 for mixtures) and the prototypes.
    is_test:
        The held-out comparisons of each user.
    true_rewards, true_sharpness:
        Each prototype's reward of every item ``(K, M)`` (item effects included) and the
        logit scale.
    true_item_effects:
        With ``item_effect_scale > 0``: each item's residual reward ``(M,)``, shared by every
        prototype and not a function of its embedding; else None.
    true_cutpoints:
        Graded answers (``cutpoints=``): the truth's cutpoints ``(L - 1,)``; else None.
    true_cutpoint_log_scale:
        With ``cutpoint_spread > 0``: each user's cutpoint log factor ``(U,)`` (their
        cutpoints are ``true_cutpoints * exp(s_i)``); else None.
    true_outcome_probs:
        Graded answers: each comparison's probability of every level ``(N, L)``;
        ``true_prob`` is then the expected label (a tie counting half).
    true_features:
        The truth's features ``f*(x)`` of every item ``(M, pref_dim)`` (the embeddings a
        perfect mapping would produce).
    question:
        Rankings (``set_size > 2``): the question (a set shown to a user) each comparison
        is a stage of, ``(N,)``; ``true_outcome_probs`` is then each item's probability of
        being chosen ``(N, set_size)`` in the order ``(item_b, item_a, others)`` and
        ``true_prob`` item_a's. Else None.
    """

    data: PreferenceData  # all comparisons
    true_weights: np.ndarray  # (U, K), rows in data.user_ids order
    true_prob: np.ndarray  # (N,) P(a preferred) under the truth
    group: np.ndarray  # (U,) prototype of a partition user, -1 for a mixture user
    true_prototypes: np.ndarray  # (K, pref_dim)
    is_test: np.ndarray  # (N,) True for the held-out comparisons of each user
    true_rewards: np.ndarray  # (K, M) each prototype's reward r_k of every item
    true_sharpness: float
    true_item_effects: np.ndarray | None = None  # (M,) the items' residual rewards, if any
    true_cutpoints: np.ndarray | None = None  # (L - 1,) graded answers' cutpoints
    true_outcome_probs: np.ndarray | None = None  # (N, L) graded answers' level probabilities
    true_features: np.ndarray | None = None  # (M, pref_dim) f*(x)
    question: np.ndarray | None = None  # (N,) rankings: the question of each stage
    true_cutpoint_log_scale: np.ndarray | None = None  # (U,) users' cutpoint log factors

    def true_probability(self, weights: np.ndarray, item_a: np.ndarray, item_b: np.ndarray
                         ) -> np.ndarray:
        """The truth's ``P(a > b)`` for users with ``weights (n, K)`` (or one ``(K,)``).

        Parameters
        ----------
        weights:
            (n, K) users' true weights.
        item_a, item_b:
            (n,) item rows.
        """
        dr = (self.true_rewards[:, item_a] - self.true_rewards[:, item_b]).T  # (n, K)
        return 1 / (1 + np.exp(-self.true_sharpness * (np.asarray(weights) * dr).sum(-1)))

    @property
    def train(self) -> PreferenceData:
        return self.data.subset(~self.is_test)

    @property
    def test(self) -> PreferenceData:
        return self.data.subset(self.is_test)

    def bayes_accuracy(self, mask: np.ndarray | None = None) -> float:
        """Expected accuracy of the Bayes-optimal predictor: ``mean(max(p, 1 - p))``; for
        graded answers, on the decided (not tied) comparisons as ``metrics.accuracy``
        scores it: the expected number right over the expected number decided; for choices
        from sets (``question``) the chance that the most probable item is chosen
        (``metrics.choice_accuracy``).

        Parameters
        ----------
        mask:
            Comparisons to score (default: all).
        """
        mask = slice(None) if mask is None else mask
        if self.question is not None:  # choices: the most probable item of each set
            return float(self.true_outcome_probs[mask].max(1).mean())
        if self.true_outcome_probs is None:
            p = self.true_prob[mask]
            return float(np.maximum(p, 1 - p).mean())
        q = self.true_outcome_probs[mask]
        n_levels = q.shape[1]
        below, above = q[:, : n_levels // 2].sum(1), q[:, (n_levels + 1) // 2:].sum(1)
        return float(np.maximum(below, above).sum() / (below + above).sum())


def synthetic(
    n_users: int = 400,
    k: int = 3,
    n_train: int = 40,
    n_test: int = 20,
    n_items: int = 2000,
    embed_dim: int = 16,
    pref_dim: int = 4,
    partition_fraction: float = 0.5,
    mixture_concentration: float = 1.0,
    sharpness: float = 3.0,
    nonlinearity: float = 1.5,
    item_effect_scale: float = 0.0,
    cutpoints=None,
    set_size: int = 2,
    ranked: int | None = None,
    cutpoint_spread: float = 0.0,
    seed: int = 0,
) -> SyntheticPreferences:
    """Generate PAL-A data with known truth.

    Each user answers ``n_train + n_test`` comparisons of random distinct item pairs; the
    last ``n_test`` of each user are flagged ``is_test``. ``nonlinearity`` scales ``A``:
    near 0 the map is almost linear, at 1.5 ``tanh`` saturates for many items. ``partition_fraction`` of the
    users are partition users (assigned round-robin to the K prototypes).

    Parameters
    ----------
    n_users, k, n_train, n_test:
        Users, prototypes and comparisons per user (train, test).
    n_items, embed_dim, pref_dim:
        Items, embedding width and the truth's preference dimension.
    partition_fraction:
        Share of users of a single type.
    mixture_concentration:
        Dirichlet concentration of the mixed users' weights.
    sharpness:
        The truth's logit scale.
    nonlinearity:
        Strength of the truth's nonlinear mapping.
    item_effect_scale:
        Sd of a residual reward per item, shared by every prototype, that the embedding
        does not determine (``bayespal.ModelConfig.item_effects`` models it); 0: none.
    cutpoints:
        Graded answers: the truth's increasing cutpoints ``c`` of the logit, symmetric
        about 0 (``(-t, t)``: ties, the Rao-Kupper model); answers then have
        ``len(c) + 1`` levels, ``P(level >= j) = sigmoid(logit - c_{j-1})``. None: binary.
    set_size, ranked:
        ``set_size > 2``: each of a user's ``n_train + n_test`` answers is a ranking of
        ``set_size`` random items (its top ``ranked``; None: all), drawn from the truth's
        Plackett-Luce model, stored as its choices (``PreferenceData.from_rankings``,
        ``question``); ``ranked=1`` is best-of-``set_size``.
    cutpoint_spread:
        Graded answers: the sd of each user's cutpoint log factor ``s_i`` (user i's
        cutpoints are ``cutpoints * exp(s_i)``: some people say "equal" more readily,
        ``ModelConfig.user_cutpoints`` models it); 0: every user has the same cutpoints.
    seed:
        Seeds everything.
    """
    _check(n_users=n_users, k=k, n_train=n_train, n_items=n_items, embed_dim=embed_dim,
           pref_dim=pref_dim)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_items, embed_dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a_map = rng.normal(size=(embed_dim, pref_dim)) * nonlinearity
    f = np.tanh(x @ a_map)  # (M, d), nonlinear in x
    prototypes = rng.normal(size=(k, pref_dim))
    return _pal_a(rng, x, f, prototypes, n_users, n_train, n_test, partition_fraction,
                  mixture_concentration, sharpness, item_effect_scale, cutpoints,
                  set_size, ranked, cutpoint_spread)


def synthetic_deep(
    n_users: int = 400,
    k: int = 3,
    n_train: int = 40,
    n_test: int = 20,
    n_items: int = 2000,
    embed_dim: int = 48,
    hidden: int = 32,
    pref_dim: int = 6,
    partition_fraction: float = 0.5,
    mixture_concentration: float = 1.0,
    sharpness: float = 3.0,
    item_effect_scale: float = 0.0,
    cutpoints=None,
    set_size: int = 2,
    ranked: int | None = None,
    cutpoint_spread: float = 0.0,
    seed: int = 0,
) -> SyntheticPreferences:
    """PAL-A data with known truth from a *different* family than ``synthetic``: items
    are Gaussian (not unit-norm) ``embed_dim``-vectors, the true map is a random two-layer
    GELU network ``f*(x) = W2 gelu(W1 x)`` scaled to unit RMS per coordinate, and the
    prototypes are drawn at the scale of ``f*``'s values. Users and labels as in
    ``synthetic`` (the same PAL-A likelihood, so the Bayes-optimal prediction is known).

    Parameters
    ----------
    n_users, k, n_train, n_test:
        Users, prototypes and comparisons per user (train, test).
    n_items, embed_dim, hidden, pref_dim:
        Items, embedding width, the true map's hidden width, the truth's preference dimension.
    partition_fraction, mixture_concentration, sharpness, item_effect_scale, cutpoints,
    set_size, ranked, cutpoint_spread:
        As for synthetic.
    seed:
        Seeds everything.
    """
    _check(n_users=n_users, k=k, n_train=n_train, n_items=n_items, embed_dim=embed_dim,
           hidden=hidden, pref_dim=pref_dim)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_items, embed_dim))
    h = x @ rng.normal(size=(embed_dim, hidden)) / np.sqrt(embed_dim)
    gelu = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
    f = gelu @ rng.normal(size=(hidden, pref_dim))
    f = (f - f.mean(0)) / f.std(0) * 0.5  # (M, d): each coordinate RMS 0.5
    prototypes = rng.normal(size=(k, pref_dim)) * 0.5
    return _pal_a(rng, x, f, prototypes, n_users, n_train, n_test, partition_fraction,
                  mixture_concentration, sharpness, item_effect_scale, cutpoints,
                  set_size, ranked, cutpoint_spread)


def _pal_a(rng: np.random.Generator, x: np.ndarray, f: np.ndarray, prototypes: np.ndarray,
           n_users: int, n_train: int, n_test: int, partition_fraction: float,
           mixture_concentration: float, sharpness: float,
           item_effect_scale: float = 0.0, cutpoints=None, set_size: int = 2,
           ranked: int | None = None, cutpoint_spread: float = 0.0) -> SyntheticPreferences:
    """Users, pairs and PAL-A labels for items ``x`` with true features ``f (M, d)`` (and,
    with ``item_effect_scale > 0``, a residual reward per item; with ``set_size > 2``
    rankings, ``_rankings``)."""
    if not item_effect_scale >= 0:
        raise ValueError(f"item_effect_scale: got {item_effect_scale!r}; expected a number >= 0")
    if not cutpoint_spread >= 0:
        raise ValueError(f"cutpoint_spread: got {cutpoint_spread!r}; expected a number >= 0")
    if cutpoint_spread > 0 and (cutpoints is None or set_size != 2):
        raise ValueError(f"cutpoint_spread: got {cutpoint_spread} with cutpoints={cutpoints!r}"
                         f", set_size={set_size}; expected graded pairs (cutpoints given, "
                         "set_size 2), whose cutpoints a user can scale")
    k = len(prototypes)
    group, weights = _users(rng, n_users, k, partition_fraction, mixture_concentration)
    if set_size != 2:
        return _rankings(rng, x, f, prototypes, group, weights, n_train, n_test, sharpness,
                         item_effect_scale, cutpoints, set_size, ranked)
    user, a, b, is_test = _pairs(rng, n_users, n_train, n_test, len(x))
    rewards = 2 * prototypes @ f.T - (f**2).sum(1)  # (K, M)
    effects = None
    if item_effect_scale > 0:  # drawn only then: data sets without effects are unchanged
        effects = rng.normal(size=len(x)) * item_effect_scale
        rewards = rewards + effects
    logit = sharpness * ((weights[user] * (rewards[:, a] - rewards[:, b]).T).sum(1))
    cuts, outcome = _cutpoints(cutpoints), None
    if cuts is None:
        p = 1 / (1 + np.exp(-logit))
        label = (rng.random(user.size) < p).astype(np.int64)
    else:  # an ordered logistic of the logit: P(level >= j) = sigmoid(logit - c_{j-1})
        user_cuts = cuts[None]
        if cutpoint_spread > 0:  # drawn only then: other data sets are unchanged
            log_scale = rng.normal(size=n_users) * cutpoint_spread
            user_cuts = cuts * np.exp(log_scale)[user, None]
        at_least = 1 / (1 + np.exp(-(logit[:, None] - user_cuts)))
        outcome = -np.diff(np.column_stack([np.ones(len(logit)), at_least,
                                            np.zeros(len(logit))]), axis=1)
        level = (rng.random(user.size)[:, None] < at_least).sum(1)
        label = level / len(cuts)
        p = outcome @ np.linspace(0, 1, len(cuts) + 1)
    data = PreferenceData.from_arrays(user, a, b, label, x.astype(np.float32),
                                      user_ids=np.arange(n_users),
                                      levels=2 if cuts is None else len(cuts) + 1)
    return SyntheticPreferences(data, weights, p, group, prototypes, is_test, rewards,
                                float(sharpness), effects, cuts, outcome, f,
                                true_cutpoint_log_scale=log_scale if cutpoint_spread > 0
                                else None)


def _rankings(rng: np.random.Generator, x: np.ndarray, f: np.ndarray, prototypes: np.ndarray,
              group: np.ndarray, weights: np.ndarray, n_train: int, n_test: int,
              sharpness: float, item_effect_scale: float, cutpoints, set_size: int,
              ranked: int | None) -> SyntheticPreferences:
    """Each user ranks ``n_train + n_test`` random sets of ``set_size`` items (the last
    ``n_test`` are test): a Plackett-Luce draw (Gumbel-max on the utilities
    ``beta * sum_k w_k r_k(x)``), its top ``ranked`` kept, stored as choices."""
    if cutpoints is not None:
        raise ValueError("cutpoints: got cutpoints with set_size > 2; expected None (ties are "
                         "answers about pairs)")
    n_items, n_users = len(x), len(weights)
    if not (isinstance(set_size, (int, np.integer)) and 2 <= set_size <= n_items):
        raise ValueError(f"set_size: got {set_size!r}; expected an integer in [2, {n_items}]")
    ranked = set_size - 1 if ranked is None else ranked
    if not (isinstance(ranked, (int, np.integer)) and 1 <= ranked <= set_size - 1):
        raise ValueError(f"ranked: got {ranked!r}; expected None (all) or an integer in "
                         f"[1, {set_size - 1}]")
    rewards = 2 * prototypes @ f.T - (f**2).sum(1)  # (K, M)
    effects = None
    if item_effect_scale > 0:
        effects = rng.normal(size=n_items) * item_effect_scale
        rewards = rewards + effects
    per_user = n_train + n_test
    q_user = np.repeat(np.arange(n_users), per_user)
    sets = rng.integers(0, n_items, size=(len(q_user), set_size))
    while True:  # redraw the sets that repeat an item
        srt = np.sort(sets, 1)
        bad = (srt[:, 1:] == srt[:, :-1]).any(1)
        if not bad.any():
            break
        sets[bad] = rng.integers(0, n_items, size=(int(bad.sum()), set_size))
    utility = sharpness * np.einsum("qk,kqn->qn", weights[q_user], rewards[:, sets])
    order = np.argsort(-(utility + rng.gumbel(size=utility.shape)), 1)
    rank = np.full(sets.shape, np.inf)
    np.put_along_axis(rank, order[:, :ranked], np.arange(1, ranked + 1)[None].repeat(
        len(sets), 0).astype(float), 1)
    question, a, b, label, others = ranking_stages(sets, rank, rng)
    user = q_user[question]
    # each stage's choice probabilities over (b, a, others): a softmax over its set
    members = np.concatenate([b[:, None], a[:, None], others], 1)
    u = sharpness * np.einsum("nk,knj->nj", weights[user], rewards[:, np.maximum(members, 0)])
    u = np.where(members >= 0, u, -np.inf)
    u -= u.max(1, keepdims=True)
    probs = np.exp(u) / np.exp(u).sum(1, keepdims=True)
    data = PreferenceData.from_arrays(user, a, b, label, x.astype(np.float32),
                                      user_ids=np.arange(n_users),
                                      others=[r[r >= 0].tolist() for r in others],
                                      question=question)
    is_test = (np.arange(len(q_user)) % per_user >= n_train)[question]
    return SyntheticPreferences(data, weights, probs[:, 1], group, prototypes, is_test,
                                rewards, float(sharpness), effects, None, probs, f, question)


def _cutpoints(cutpoints) -> np.ndarray | None:
    """The truth's cutpoints, checked: increasing and symmetric about 0."""
    if cutpoints is None:
        return None
    c = np.asarray(cutpoints, dtype=np.float64).reshape(-1)
    if (len(c) < 2 or not np.isfinite(c).all() or (np.diff(c) <= 0).any()
            or not np.allclose(c, -c[::-1])):
        raise ValueError(f"cutpoints: got {c.tolist()!r}; expected at least two increasing "
                         "cutpoints symmetric about 0, e.g. (-0.8, 0.8) for ties")
    return c


def _check(**values) -> None:
    for name, v in values.items():
        if int(v) < 1:
            raise ValueError(f"{name}: got {v!r}; expected a positive integer")


def _users(rng: np.random.Generator, n_users: int, k: int, partition_fraction: float,
           mixture_concentration: float) -> tuple[np.ndarray, np.ndarray]:
    """``(group (U,), weights (U, K))``: partition users round-robin over the prototypes,
    the rest Dirichlet mixtures, in random order."""
    if not 0 <= partition_fraction <= 1:
        raise ValueError(f"partition_fraction: got {partition_fraction}; expected in [0, 1]")
    n_part = int(round(n_users * partition_fraction))
    group = np.full(n_users, -1)
    group[:n_part] = np.arange(n_part) % k
    weights = rng.dirichlet(np.full(k, mixture_concentration), size=n_users)
    weights[:n_part] = np.eye(k)[group[:n_part]]
    order = rng.permutation(n_users)  # interleave partition and mixture users
    return group[order], weights[order]


def _pairs(rng: np.random.Generator, n_users: int, n_train: int, n_test: int, n_items: int):
    """Each user's ``n_train + n_test`` random distinct pairs; the last ``n_test`` are test."""
    if n_items < 2:
        raise ValueError(f"n_items: got {n_items}; expected at least 2 items to compare")
    per_user = n_train + n_test
    user = np.repeat(np.arange(n_users), per_user)
    a = rng.integers(0, n_items, size=user.size)
    b = (a + rng.integers(1, n_items, size=user.size)) % n_items  # b != a
    return user, a, b, np.tile(np.arange(per_user) >= n_train, n_users)


@dataclass(frozen=True, eq=False)
class PromptedSyntheticPreferences(SyntheticPreferences):
    """Prompt-dependent synthetic data (PAL-B truth). ``true_rewards`` is ``(C, K, M)``:
    prototype k's reward of every item for every prompt; ``true_loadings (K, d, Dc)``.

    Attributes
    ----------
    data, true_weights, true_prob, group, true_prototypes:
        As for ``SyntheticPreferences``.
    """

    true_loadings: np.ndarray = None  # type: ignore[assignment]

    def true_probability(self, weights: np.ndarray, item_a: np.ndarray, item_b: np.ndarray,
                         prompt: np.ndarray | None = None) -> np.ndarray:
        """The truth's ``P(a > b | prompt)`` for users with ``weights (n, K)``.

        Parameters
        ----------
        weights:
            (n, K) users' true weights.
        item_a, item_b:
            (n,) item rows.
        prompt:
            (n,) prompt rows.
        """
        if prompt is None:
            raise ValueError("prompt: got None; expected the comparisons' prompt rows")
        r = self.true_rewards
        dr = r[prompt, :, item_a] - r[prompt, :, item_b]  # (n, K)
        return 1 / (1 + np.exp(-self.true_sharpness * (np.asarray(weights) * dr).sum(-1)))


def synthetic_prompted(
    n_users: int = 300,
    k: int = 2,
    n_train: int = 40,
    n_test: int = 20,
    n_items: int = 1000,
    n_prompts: int = 40,
    embed_dim: int = 16,
    prompt_embed_dim: int = 8,
    pref_dim: int = 4,
    prompt_strength: float = 1.0,
    partition_fraction: float = 0.5,
    mixture_concentration: float = 1.0,
    sharpness: float = 3.0,
    nonlinearity: float = 1.0,
    seed: int = 0,
) -> PromptedSyntheticPreferences:
    """Generate PAL-B data with known truth: prompt ``c`` moves the prototypes,
    ``g_k(c) = P_k + prompt_strength * L_k c`` (``L_k`` standard normal, ``c`` unit-norm
    random prompt embeddings), so which item a user prefers depends on the prompt. Items
    as in ``synthetic``; every comparison gets a random prompt. ``prompt_strength=0``
    gives prompt-free (PAL-A) data that still carries prompts.

    Parameters
    ----------
    n_users, k, n_train, n_test:
        Users, prototypes and comparisons per user (train, test).
    n_items, n_prompts, embed_dim, prompt_embed_dim, pref_dim:
        Table sizes and widths.
    prompt_strength:
        How far a prompt moves the prototypes (0: PAL-A).
    partition_fraction, mixture_concentration, sharpness, nonlinearity:
        As for synthetic.
    seed:
        Seeds everything.
    """
    _check(n_users=n_users, k=k, n_train=n_train, n_items=n_items, n_prompts=n_prompts,
           embed_dim=embed_dim, prompt_embed_dim=prompt_embed_dim, pref_dim=pref_dim)
    if not prompt_strength >= 0:
        raise ValueError(f"prompt_strength: got {prompt_strength}; expected a number >= 0")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_items, embed_dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    f = np.tanh(x @ (rng.normal(size=(embed_dim, pref_dim)) * nonlinearity))  # (M, d)
    c = rng.normal(size=(n_prompts, prompt_embed_dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    prototypes = rng.normal(size=(k, pref_dim))
    loadings = rng.normal(size=(k, pref_dim, prompt_embed_dim)) * prompt_strength
    g = prototypes[None] + np.einsum("kdq,cq->ckd", loadings, c)  # (C, K, d)
    rewards = 2 * g @ f.T - (f**2).sum(1)  # (C, K, M)

    group, weights = _users(rng, n_users, k, partition_fraction, mixture_concentration)
    user, a, b, is_test = _pairs(rng, n_users, n_train, n_test, n_items)
    prompt = rng.integers(0, n_prompts, size=user.size)
    dr = rewards[prompt, :, a] - rewards[prompt, :, b]  # (N, K)
    p = 1 / (1 + np.exp(-sharpness * (weights[user] * dr).sum(1)))
    label = (rng.random(user.size) < p).astype(np.int64)
    data = PreferenceData.from_arrays(
        user, a, b, label, x.astype(np.float32), user_ids=np.arange(n_users),
        prompt=prompt, prompts=c.astype(np.float32),
    )
    return PromptedSyntheticPreferences(data, weights, p, group, prototypes, is_test, rewards,
                                        float(sharpness), true_loadings=loadings)
