"""What every fitted posterior offers, written once over ``PopulationDraws``.

A fitted result (one fit, a MAP fit, an ensemble; PAL-A or PAL-B) implements four
things: population draws, the users' weight draws paired with them, the weights'
summary and the sharpness' moments. Predictions, rewards and draws for diagnostics
follow here from those, the same way for every kind of result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd
import torch
import xarray as xr

from bayespal.checks import check_int, check_real, check_seed, check_table
from bayespal.data import EmbeddingTable, PreferenceData
from bayespal.model import ModelConfig, PopulationDraws
from bayespal.rng import keeps_global_rng

_NOBODY = object()  # a user id no fit can contain


class Posterior(ABC):
    """The interface of a fitted PAL posterior (see the module docstring).

    Users seen in training are predicted from their own weight posterior; a user *not*
    seen in training from the **population average**: their weights integrated over the
    fitted population ``Dirichlet(alpha)`` (the prior a new user starts from). To *place*
    a new user from their answers use ``bayespal.users``.
    """

    model_config: ModelConfig
    user_ids: np.ndarray
    items: EmbeddingTable | None  # the training item table (None if saved without it)
    prompts: EmbeddingTable | None  # PAL-B: the training prompt table
    training_data: PreferenceData | None  # the training comparisons (None after load)
    seed: int

    # -- what each kind of result implements ------------------------------------------
    @abstractmethod
    def _population(self, num_samples: int, mode: str) -> PopulationDraws:
        """Population draws from torch's global random stream (callers seed and fork it)."""

    @abstractmethod
    def _weight_draws(self, draws: PopulationDraws, users: torch.Tensor) -> torch.Tensor:
        """Weight draws ``(P, B, K)`` of user positions ``users``, paired with ``draws``."""

    @abstractmethod
    def _cutpoint_draws(self, draws: PopulationDraws, users: torch.Tensor
                        ) -> torch.Tensor | None:
        """Cutpoint log factor draws ``(P, B)`` of user positions ``users``, paired with
        ``draws`` (``user_cutpoints``); None without them."""

    @abstractmethod
    def user_weights(self, ci: float = 0.9) -> xr.Dataset:
        """Per-user mixture weights: ``mean``, ``sd``, ``lower``, ``upper``.

        Parameters
        ----------
        ci:
            The equal-tailed interval's probability, in (0, 1).
        """

    def weight_concentration(self, users) -> np.ndarray | None:
        """The Dirichlet posterior of users' weights ``(n, K)``, where the posterior is one;
        None otherwise (MAP, K = 1, an ensemble's mixture).

        Parameters
        ----------
        users:
            Ids of users seen in training.
        """
        return None

    @abstractmethod
    def sharpness(self) -> tuple[float, float]:
        """Posterior mean and sd of the sharpness ``beta``."""

    @abstractmethod
    def _prior_components(self) -> tuple[np.ndarray, np.ndarray]:
        """The weights' population prior: ``(proportions (C,), concentrations (C, K))``."""

    def population_prior(self) -> xr.Dataset:
        """The population prior of the user weights, which is also a new user's prior: the
        mixture ``sum_c proportion_c Dirichlet(concentration_c)``, dims ``(component,
        prototype)``; one component for a single Dirichlet (``ModelConfig.weight_prior``).
        Its mean weights are the ``mean`` variable (dims ``prototype``)."""
        prop, conc = self._prior_components()
        mean = (prop[:, None] * conc / conc.sum(-1, keepdims=True)).sum(0)
        return xr.Dataset(
            {"proportion": ("component", prop), "concentration": (("component", "prototype"),
                                                                   conc),
             "mean": ("prototype", mean)},
            coords={"component": np.arange(len(prop)), "prototype": np.arange(self.k)},
            attrs={"weight_prior": self.model_config.weight_prior})

    @property
    def concentration(self) -> np.ndarray:
        """The population's Dirichlet concentration ``alpha`` ``(K,)`` (an ensemble: its
        members' averaged), for ``weight_prior="dirichlet"``; a mixture prior has no one
        ``alpha`` (``population_prior`` describes every prior)."""
        if self.model_config.weight_prior != "dirichlet":
            raise ValueError(f"concentration: got a fit with weight_prior="
                             f"{self.model_config.weight_prior!r}; expected 'dirichlet' (a "
                             "mixture has a concentration per component: population_prior())")
        return self._prior_components()[1].mean(0)

    def sample_prior_weights(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws ``(n, K)`` of a user's weights from the population prior.

        Parameters
        ----------
        n:
            How many users.
        rng:
            A numpy generator.
        """
        prop, conc = self._prior_components()
        prop = np.asarray(prop, dtype=np.float64)
        conc = np.asarray(conc, dtype=np.float64)
        if len(prop) == 1:
            return rng.dirichlet(conc[0], size=n)
        comp = rng.choice(len(prop), size=n, p=prop / prop.sum())
        g = rng.standard_gamma(conc[comp])
        return g / g.sum(-1, keepdims=True)

    @property
    @abstractmethod
    def embed_dim(self) -> int:
        """The width of the item embeddings the model was fitted on."""

    @property
    @abstractmethod
    def prompt_embed_dim(self) -> int | None:
        """PAL-B: the width of the prompt embeddings; None for PAL-A."""

    # -- shared ------------------------------------------------------------------------
    @property
    def n_members(self) -> int:
        """How many fits (each with its own maps) the posterior pools: 1, or an ensemble's
        members."""
        return 1

    @property
    def k(self) -> int:
        """The number of prototypes."""
        return self.model_config.k

    @property
    def levels(self) -> int:
        """How many ordered outcomes an answer has (2: binary; 3: with ties)."""
        return self.model_config.levels

    @property
    def item_ids(self) -> np.ndarray:
        """The training items' ids."""
        return self.items.ids if self.items is not None else np.zeros(0, np.int64)

    def user_index(self, ids) -> np.ndarray:
        """Positions of user ids in this fit's user table; -1 for users not seen.

        Parameters
        ----------
        ids:
            User ids (any array-like).
        """
        return pd.Index(self.user_ids).get_indexer(np.asarray(ids).reshape(-1))

    def _seed(self, seed: int | None) -> None:
        torch.manual_seed(self.seed if seed is None else check_seed(seed))

    @keeps_global_rng
    def population_draws(self, num_samples: int = 64, mode: str = "draws",
                         seed: int | None = None) -> PopulationDraws:
        """Draws of the fitted population: the value new users, queries, rewards and
        diagnostics work from.

        Parameters
        ----------
        num_samples:
            Posterior draws (an ensemble: split evenly over its members). A MAP fit has one.
        mode:
            ``"draws"`` (posterior draws) or ``"mean"`` (one draw at the posterior mean,
            per member).
        seed:
            Seeds the draws (default: the fit's seed); torch's global state is kept.
        """
        num_samples = check_int("num_samples", num_samples)
        self._seed(seed)
        return self._population(num_samples, mode)

    def cutpoints(self, ci: float = 0.9, num_samples: int = 2000,
                  seed: int | None = None) -> xr.Dataset:
        """The posterior of the cutpoints of graded answers (``levels > 2``), dim
        ``cutpoint``: ``mean``, ``sd`` and the equal-tailed ``ci`` interval (``lower``,
        ``upper``). With ties (``levels = 3``) the cutpoints are ``-t, t``: a comparison of
        two equally good items is a tie with probability ``2 sigmoid(t) - 1``.

        Parameters
        ----------
        ci:
            Mass of the interval.
        num_samples:
            Posterior draws summarised.
        seed:
            Seeds the draws (default: the fit's seed).
        """
        if self.levels == 2:
            raise ValueError("levels: got 2 (binary answers, one cutpoint fixed at 0); "
                             "expected a fit of graded answers (levels > 2) to have cutpoints")
        c = self.population_draws(num_samples, seed=seed).cutpoints.cpu().numpy()
        q = np.quantile(c, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        dims = ("cutpoint",)
        return xr.Dataset({"mean": (dims, c.mean(0)), "sd": (dims, c.std(0)),
                           "lower": (dims, q[0]), "upper": (dims, q[1])},
                          coords={"cutpoint": np.arange(c.shape[1])}, attrs={"ci": ci})

    @keeps_global_rng
    @torch.no_grad()
    def user_cutpoint_draws(self, draws: PopulationDraws, seed: int | None = None
                            ) -> torch.Tensor | None:
        """Draws ``(P, U)`` of every training user's cutpoint log factor ``s_i`` paired
        with the population ``draws`` (``user_cutpoints``: user i's cutpoints are the
        draw's times ``exp(s_i)``); None for a fit without them.

        Parameters
        ----------
        draws:
            Population draws of this fit (``posterior_draws``).
        seed:
            Seeds the draws (default: the fit's seed; ``seed + 1`` otherwise, so they are
            not the population draws' random numbers).
        """
        if not draws.has_user_cutpoints:
            return None
        self._seed(None if seed is None else seed + 1)
        pos = torch.arange(len(self.user_ids), device=draws.device)
        return self._cutpoint_draws(draws, pos)

    @keeps_global_rng
    @torch.no_grad()
    def user_cutpoint_scales(self, ci: float = 0.9, num_samples: int = 2000,
                             seed: int | None = None) -> xr.Dataset:
        """Each training user's cutpoint factor ``exp(s_i)`` (``user_cutpoints``): how much
        wider (``> 1``: more ties, weaker grades) or narrower than the population's their
        cutpoints are. ``mean``, ``sd`` and the equal-tailed ``ci`` interval (``lower``,
        ``upper``) of ``num_samples`` posterior draws, dim ``user``; ``attrs["spread"]`` is
        the population's ``sigma`` (mean over draws).

        Parameters
        ----------
        ci:
            The interval's probability, in (0, 1).
        num_samples, seed:
            Posterior draws and their seed (default: the fit's).
        """
        ci = check_real("ci", ci, low=0, high=1, low_open=True, high_open=True)
        num_samples = check_int("num_samples", num_samples)
        self._seed(seed)
        draws = self._population(num_samples, "draws")
        shift = self.user_cutpoint_draws(draws, seed=seed)
        if shift is None:
            raise ValueError("user_cutpoints: got a fit without them; expected a fit with "
                             "user_cutpoints=True (graded answers, each user's own factor)")
        f = shift.exp().cpu().numpy().astype(np.float64)
        lo, hi = np.quantile(f, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        return xr.Dataset({"mean": ("user", f.mean(0)), "sd": ("user", f.std(0)),
                           "lower": ("user", lo), "upper": ("user", hi)},
                          coords={"user": self.user_ids},
                          attrs={"ci": ci,
                                 "spread": float(draws.cutpoint_spread.mean().cpu())})

    @keeps_global_rng
    @torch.no_grad()
    def posterior_draws(self, num_samples: int = 500, seed: int | None = None, users=None
                        ) -> tuple[PopulationDraws, torch.Tensor]:
        """Joint draws of the population and of training users' weights: the draws and
        ``weights (P, U, K)`` (draw ``p`` of the weights goes with population draw ``p``).

        Parameters
        ----------
        num_samples:
            Draws (an ensemble: split evenly over its members; MAP: one).
        seed:
            Seeds the draws (default: the fit's seed); torch's global state is kept.
        users:
            Ids of training users whose weights are drawn, in this order (default: all).
        """
        num_samples = check_int("num_samples", num_samples)
        if users is None:
            pos = np.arange(len(self.user_ids))
        else:
            pos = self.user_index(users)
            if (pos < 0).any():
                bad = np.asarray(users, dtype=object).reshape(-1)[np.flatnonzero(pos < 0)[0]]
                raise ValueError(f"users: got {bad!r}; expected users seen in training")
        self._seed(seed)
        draws = self._population(num_samples, "draws")
        pos_t = torch.as_tensor(pos, dtype=torch.long, device=draws.device)
        return draws, self._weight_draws(draws, pos_t).expand(draws.size, -1, -1)

    def sample_posterior(self, num_samples: int = 500, seed: int | None = None) -> dict:
        """Draws of every site as numpy arrays: ``prototypes (S, K, d)``, ``sharpness (S,)``,
        ``weights (S, U, K)``, PAL-B ``loadings (S, K, d, q)``, and ``member (S,)`` (the
        ensemble member, i.e. chain, of each draw).

        Parameters
        ----------
        num_samples, seed:
            As for ``posterior_draws``.
        """
        draws, weights = self.posterior_draws(num_samples, seed)
        out = {"prototypes": draws.prototypes, "sharpness": draws.sharpness,
               "weights": weights, "member": draws.member}
        if draws.loadings is not None:
            out["loadings"] = draws.loadings
        return {k: v.cpu().numpy() for k, v in out.items()}

    def training_rows(self, ids, embeddings) -> np.ndarray | None:
        """Where a fit has item effects: the rows of the training item table holding these
        items (same id and same embedding; -1 for any other item, whose effect is drawn
        from the prior); None for a fit without item effects.

        Parameters
        ----------
        ids:
            ``(n,)`` item ids.
        embeddings:
            ``(n, D)`` their embeddings.
        """
        if not self.model_config.item_effects:
            return None
        if self.items is None:
            raise ValueError("items: got a fit with item effects but no training item table "
                             "(saved without it); expected the table, to know which items "
                             "the effects belong to")
        return self.items.match(ids, embeddings)

    def _comparisons(self, data: PreferenceData | None, user, item_a, item_b, items,
                     prompt=None, prompts=None, rows: bool = False):
        """``(user positions, emb_a, emb_b, emb_c, rows_a, rows_b)`` of comparisons given
        either way; ``emb_c`` is None when no prompts are given, ``rows_a, rows_b`` (the
        items' training-table rows, ``training_rows``; None when the fit has no item
        effects)."""
        if data is not None:
            if not isinstance(data, PreferenceData):
                raise ValueError(f"data: got {type(data).__name__}; expected PreferenceData")
            check_table("data.items", data.items[:1], self.embed_dim, "items")
            emb_c = None if data.prompt is None else data.prompts[data.prompt]
            emb_a, emb_b = data.items[data.item_a], data.items[data.item_b]
            return (self.user_index(data.user_ids[data.user]), emb_a, emb_b, emb_c,
                    self.training_rows(data.item_ids[data.item_a], emb_a),
                    self.training_rows(data.item_ids[data.item_b], emb_b))
        table = self.item_table(items)
        ia = table.locate(item_a, "item_a", rows)
        ib = table.locate(item_b, "item_b", rows)
        if len(ia) != len(ib):
            raise ValueError(f"item_b: got length {len(ib)}; expected {len(ia)}, the length "
                             "of item_a")
        users = np.asarray(user, dtype=object).reshape(-1) if user is not None else None
        if users is None or len(users) != len(ia):
            raise ValueError(f"user: got {0 if users is None else len(users)} ids; expected "
                             f"{len(ia)}, one per comparison")
        emb_c = None
        if prompt is not None:
            ptable = self.prompt_table(prompts)
            emb_c = ptable.embeddings[ptable.locate(prompt, "prompt", rows)]
            if len(emb_c) != len(ia):
                raise ValueError(f"prompt: got length {len(emb_c)}; expected {len(ia)}, one "
                                 "per comparison")
        return (self.user_index(users), table.embeddings[ia], table.embeddings[ib], emb_c,
                self.training_rows(table.ids[ia], table.embeddings[ia]),
                self.training_rows(table.ids[ib], table.embeddings[ib]))

    def item_table(self, items=None) -> EmbeddingTable:
        """The item table that item ids name: ``items`` (an ``EmbeddingTable``, a
        DataFrame indexed by id, or a bare ``(M, D)`` array whose ids are its row numbers)
        or, if None, the training items.

        Parameters
        ----------
        items:
            The table, or None.
        """
        return EmbeddingTable.of(items, self.items, name="items", dim=self.embed_dim)

    def prompt_table(self, prompts=None) -> EmbeddingTable:
        """The prompt table that prompt ids name (PAL-B); as ``item_table``.

        Parameters
        ----------
        prompts:
            The table, or None for the training prompts.
        """
        return EmbeddingTable.of(prompts, self.prompts, name="prompts",
                                 dim=self.prompt_embed_dim)

    def item_rows(self, ids, items=None) -> np.ndarray:
        """Row numbers of items named by id in ``items`` (default: the training items);
        an unknown id is an error.

        Parameters
        ----------
        ids:
            Item ids.
        items:
            As for ``item_table``.
        """
        return self.item_table(items).rows(ids, "ids")

    def embeddings(self, which: str = "items") -> np.ndarray:
        """The training item (or prompt) embeddings, or a clear error when the fit holds
        none (saved without its tables; for prompts, also PAL-A data without prompts).

        Parameters
        ----------
        which:
            ``"items"`` or ``"prompts"``.
        """
        if which not in ("items", "prompts"):
            raise ValueError(f"which: got {which!r}; expected 'items' or 'prompts'")
        table = self.items if which == "items" else self.prompts
        if table is None:
            raise ValueError(f"{which}: got None; expected an embedding table (this fit holds "
                             f"no {which} table: pass one)")
        return table.embeddings

    @keeps_global_rng
    @torch.no_grad()
    def predict_proba(self, data: PreferenceData | None = None, *, user=None, item_a=None,
                      item_b=None, items=None, prompt=None, prompts=None,
                      num_samples: int = 200, seed: int | None = None,
                      return_draws: bool = False, rows: bool = False) -> np.ndarray:
        """Posterior predictive ``P(a preferred over b)`` of each comparison; for graded
        answers (``levels > 2``: ties, strength) the expected label, a tie counting half
        (``predict_outcomes`` gives every level's probability).

        Parameters
        ----------
        data:
            Comparisons as ``PreferenceData`` (users matched by id); or give the next
            arguments instead.
        user, item_a, item_b:
            User ids and item ids of ``items`` (an unknown id is an error).
        items:
            The item table the ids name (default: the training items): an
            ``EmbeddingTable``, a DataFrame of embeddings indexed by id, or a
            bare ``(M, D)`` array (its ids are its row numbers).
        prompt, prompts:
            PAL-B: each comparison's prompt id and the prompt table (default: the
            training prompts).
        num_samples:
            Posterior draws averaged (``sigmoid`` of the logit per draw, not a plug-in).
        seed:
            Seeds the draws (default: the fit's seed); torch's global state is kept.
        return_draws:
            Return the per-draw probabilities ``(S, N)`` instead of their mean.
        rows:
            ``item_a``, ``item_b`` (and ``prompt``) are row numbers of the tables, not ids.
        """
        if isinstance(data, PreferenceData):  # P(a) of a choice from more is not 1 - P(b)
            data.require_pairs("predict_proba (use predict_outcomes: each item's probability)")
        return self._predict(data, user, item_a, item_b, items, prompt, prompts, num_samples,
                             seed, return_draws, rows, outcomes=False)

    @keeps_global_rng
    @torch.no_grad()
    def predict_outcomes(self, data: PreferenceData | None = None, *, user=None, item_a=None,
                         item_b=None, items=None, prompt=None, prompts=None,
                         num_samples: int = 200, seed: int | None = None,
                         return_draws: bool = False, rows: bool = False) -> np.ndarray:
        """Posterior predictive probability of every level of each comparison's answer,
        ``(N, L)``: level 0 is "b preferred" (most strongly), ``L - 1`` "a preferred"; with
        ties (``L = 3``) the columns are ``P(b), P(tie), P(a)``. For choices from larger
        sets (``data.others``) the probability of each item being chosen, ``(N, 2 + m)`` in
        the order ``(item_b, item_a, others...)`` (0 where ``others`` pads), so column
        ``label`` is the observed choice. Arguments as for ``predict_proba``
        (``return_draws``: ``(S, N, L)``).
        """
        return self._predict(data, user, item_a, item_b, items, prompt, prompts, num_samples,
                             seed, return_draws, rows, outcomes=True)

    def _predict(self, data, user, item_a, item_b, items, prompt, prompts, num_samples, seed,
                 return_draws, rows, outcomes: bool) -> np.ndarray:
        num_samples = check_int("num_samples", num_samples)
        users, emb_a, emb_b, emb_c, rows_a, rows_b = self._comparisons(
            data, user, item_a, item_b, items, prompt, prompts, rows)
        choice = {}
        if data is not None and data.others is not None:  # choices from larger sets
            filled = data.other_rows()
            emb_o = data.items[filled]
            rows_o = self.training_rows(data.item_ids[filled].reshape(-1),
                                        emb_o.reshape(-1, emb_o.shape[-1]))
            choice = dict(emb_o=emb_o, others=data.others,
                          rows_o=None if rows_o is None else rows_o.reshape(filled.shape))
        self._seed(seed)
        draws = self._population(num_samples, "draws")
        p = draws.predict(lambda pos: self._weight_draws(draws, pos), users, emb_a, emb_b, emb_c,
                          rows_a=rows_a, rows_b=rows_b, outcomes=outcomes,
                          cutpoint_draws=lambda pos: self._cutpoint_draws(draws, pos), **choice)
        return (p if return_draws else p.mean(0)).cpu().numpy()

    def predict_population_proba(self, item_a, item_b, *, items=None, prompt=None,
                                 prompts=None, num_samples: int = 200,
                                 seed: int | None = None, rows: bool = False) -> np.ndarray:
        """``P(a preferred over b)`` for the population-average user: ``w`` integrated over
        the fitted population ``Dirichlet(alpha)`` (what a user not seen in training gets).

        Parameters
        ----------
        item_a, item_b:
            Item ids of ``items``.
        items, prompt, prompts, num_samples, seed, rows:
            As for ``predict_proba``.
        """
        n = len(np.asarray(item_a).reshape(-1))
        return self.predict_proba(user=np.full(n, _NOBODY, dtype=object), item_a=item_a,
                                  item_b=item_b, items=items, prompt=prompt, prompts=prompts,
                                  num_samples=num_samples, seed=seed, rows=rows)

    def report(self, test=None, unseen=None, **options):
        """The pluralism report of this fit: how many kinds of people, who is where, what
        each prototype prefers, how calibrated the predictions are, how fast a new person is
        placed. Displays itself in a notebook; ``.save("report.html")`` writes the page.

        The same as ``bayespal.analysis.report.pluralism_report(self, test, unseen, ...)``:
        the one place this layer reaches up to the analysis layer, a convenience declared in
        the package's import-linter contract.

        Parameters
        ----------
        test:
            Held-out comparisons of the training users (calibration).
        unseen:
            Comparisons of users the fit never saw (the few-shot curve).
        **options:
            Other arguments of ``pluralism_report``.

        Returns
        -------
        PluralismReport
            The report.
        """
        from bayespal.analysis.report import pluralism_report

        return pluralism_report(self, test, unseen, **options)

    @keeps_global_rng
    @torch.no_grad()
    def prototype_rewards(self, items=None, num_samples: int = 200, seed: int | None = None,
                          prompt_embedding=None) -> xr.Dataset:
        """Each prototype's reward of items, posterior mean and sd, dims ``(prototype, item)``
        with the items' ids as the ``item`` coordinate.

        ``r_k(x) = 2 P_k . f(x) - ||f(x)||^2`` (PAL-B: with the prompt's prototypes
        ``g_k(c)``; metric ``"cosine"``: ``cos(f(x), g_k(c))``). Rewards are defined up to
        an additive constant per prototype; only differences between items are identifiable
        (and, times the sharpness, are logits).

        Parameters
        ----------
        items:
            The items (default: the training items), as for ``item_table``: a bare
            ``(M, D)`` array's items are named by row number.
        num_samples, seed:
            Posterior draws and their seed (default: the fit's).
        prompt_embedding:
            PAL-B: the embedding ``(Dc,)`` of the prompt the rewards are for.
        """
        num_samples = check_int("num_samples", num_samples)
        table = self.item_table(items)
        self._seed(seed)
        draws = self._population(num_samples, "draws")
        pc = None
        if prompt_embedding is not None and self.prompt_embed_dim is not None:
            ptable = check_table("prompt_embedding", np.asarray(prompt_embedding).reshape(1, -1),
                                 self.prompt_embed_dim, "prompts")
            pc = draws.prompt_features(ptable)
        r = draws.rewards(draws.features(table.embeddings), pc,
                          self.training_rows(table.ids, table.embeddings)).cpu().numpy()
        dims = ("prototype", "item")
        return xr.Dataset(
            {"mean": (dims, r.mean(0)), "sd": (dims, r.std(0))},
            coords={"prototype": np.arange(self.k), "item": table.ids},
        )
