"""Scalar reward models from a fitted PAL, for RLHF.

A user's reward of a response ``x`` is ``beta`` times the reward of their ideal point,
``beta * sum_k w_k r_k(x)`` with ``r_k(x) = 2 P_k . f(x) - ||f(x)||^2`` (PAL-B: for a
prompt, with its prototypes ``g_k(c)``): differences of it are the model's log-odds that
one response is preferred. ``RewardModel`` returns its posterior mean and sd over
draws of the population and of ``w``, for one of four sources of ``w``:

- a user seen in training (``user=``), from their posterior;
- given mixture ``weights=`` (fixed);
- a new user's posterior (``new_user=``, a single-user
  ``NewUserPosteriors``);
- the population (default): ``w ~ Dirichlet(alpha)``.

Rewards are centred per draw on a reference set of items (default: the fit's training
items), so the sd measures uncertainty about *differences* between responses, the part
that is identifiable. Ensembles work like single fits (their pooled draws).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from bayespal.checks import check_int, check_table
from bayespal.posterior import Posterior
from bayespal.users import NewUserPosteriors

CHUNK = 8192


class RewardModel:
    """Posterior reward of responses for one user, given weights, a new user or the
    population (see the module docstring).

    Parameters
    ----------
    posterior:
        A fitted posterior.
    user:
        A user seen in training.
    weights:
        Fixed mixture weights ``(K,)`` (non-negative, summing to one).
    new_user:
        A single-user ``NewUserPosteriors`` (e.g. a ``NewUser``).
    num_samples:
        Posterior draws.
    reference:
        ``(n, D)`` item embeddings the rewards are centred on (default: the training items).
    prompt_embedding:
        PAL-B: the prompt ``(Dc,)`` the rewards are for.
    seed:
        Seeds the draws.
    """

    def __init__(self, posterior: Posterior, *, user=None, weights: Sequence[float] | None = None,
                 new_user: NewUserPosteriors | None = None, num_samples: int = 256,
                 reference: np.ndarray | None = None, prompt_embedding=None,
                 seed: int = 0) -> None:
        if sum(x is not None for x in (user, weights, new_user)) > 1:
            raise ValueError("user/weights/new_user: got more than one; expected at most one "
                             "source of mixture weights")
        if not isinstance(posterior, Posterior):
            raise ValueError(f"posterior: got {type(posterior).__name__}; expected a fitted "
                             "posterior (FittedPAL or EnsemblePAL)")
        self.posterior, self.num_samples = posterior, check_int("num_samples", num_samples)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            self.draws, self.weights = self._draw(user, weights, new_user)
        self._pc = None
        if prompt_embedding is not None and posterior.prompt_embed_dim is not None:
            table = check_table("prompt_embedding", np.asarray(prompt_embedding).reshape(1, -1),
                                posterior.prompt_embed_dim, "prompts")
            self._pc = self.draws.prompt_features(table)
        if reference is None and posterior.items is not None:
            reference = posterior.items.embeddings
        self._offset = None
        if reference is not None:
            self._offset = self._raw(np.asarray(reference)).mean(1, keepdim=True)  # (S, 1)

    def _draw(self, user, weights, new_user):
        post, s = self.posterior, self.num_samples
        if new_user is not None:
            if not isinstance(new_user, NewUserPosteriors) or len(new_user.ids) != 1:
                raise ValueError(f"new_user: got {type(new_user).__name__} of "
                                 f"{len(getattr(new_user, 'ids', []))} users; expected a "
                                 "posterior of one new user")
            w, pop = new_user.draws(s)
            return new_user.pop.draws.subset(pop[0]), w[0]
        if user is not None:
            if post.user_index(np.array([user], dtype=object))[0] < 0:
                raise ValueError(f"user: got {user!r}; expected a user seen in training "
                                 "(use new_user= for a new user)")
            draws, w = post.posterior_draws(s, seed=int(torch.randint(2**31, ())),
                                            users=np.array([user], dtype=object))
            return draws, w[:, 0]
        draws = post.population_draws(s, seed=int(torch.randint(2**31, ())))
        if weights is not None:
            w = torch.as_tensor(np.asarray(weights, dtype=np.float32), device=draws.device)
            if w.shape != (post.k,) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-4:
                raise ValueError(f"weights: got {np.asarray(weights).tolist()}; expected "
                                 f"{post.k} non-negative numbers summing to 1")
            return draws, w.expand(draws.size, -1)
        return draws, draws.sample_weights(())

    def _raw(self, embeddings: np.ndarray) -> torch.Tensor:
        """Uncentred reward draws ``(S, n)``."""
        out = []
        for i in range(0, len(embeddings), CHUNK):
            part = embeddings[i : i + CHUNK]
            rows = self.posterior.training_rows(None, part)  # item effects: training items'
            out.append(self.draws.user_rewards(self.weights, self.draws.features(part),
                                               self._pc, rows))
        return torch.cat(out, 1)

    @torch.no_grad()
    def reward(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of the reward of each response embedding ``(n, D)``.

        Parameters
        ----------
        embeddings:
            (n, D) response embeddings.
        """
        emb = check_table("embeddings", embeddings, self.posterior.embed_dim, "responses")
        r = self._raw(emb)
        if self._offset is not None:
            r = r - self._offset
        return r.mean(0).cpu().numpy(), r.std(0).cpu().numpy()

    @torch.no_grad()
    def reward_items(self, items=None) -> pd.DataFrame:
        """Posterior mean and sd of the reward of items, indexed by item id.

        Parameters
        ----------
        items:
            The items (default: the fit's training items): an
            ``EmbeddingTable``, a DataFrame of embeddings indexed by id, or a
            bare ``(M, D)`` array (named by row number).
        """
        table = self.posterior.item_table(items)
        mean, sd = self.reward(table.embeddings)
        return pd.DataFrame({"mean": mean, "sd": sd}, index=pd.Index(table.ids, name="item"))

    def reward_texts(self, texts: Sequence[str], embedder=None) -> tuple[np.ndarray, np.ndarray]:
        """Embed raw texts with the embedding configuration the model was fitted with (or
        ``embedder``) and return ``reward`` of them.

        Parameters
        ----------
        texts:
            Raw response texts.
        embedder:
            A TextEmbedder (default: the fit's recorded embedding configuration).
        """
        if embedder is None:
            from bayespal.embed import TextEmbedder

            config = self.posterior.embedding
            if not config:
                raise ValueError("embedder: got None and the fit records no embedding "
                                 "configuration; expected a TextEmbedder")
            embedder = TextEmbedder.from_config(config)
        return self.reward(embedder(list(texts)))
