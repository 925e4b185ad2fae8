"""A fitted PAL's reward as a ``torch.nn.Module``: Hugging Face folders and TRL rewards.

``PALRewardModel`` scores responses for one mixture of the prototypes (a user seen
in training, a new user's posterior, given weights, or the population): the posterior mean
of ``beta * sum_k w_k r_k(x)``, centred on the training items. With the distance metric the
reward is linear in ``w``, in each prototype and in ``beta``, and the variational posterior
factorises over them, so plugging in their posterior means gives the posterior mean
reward exactly (for the point-estimated mapping). The module is differentiable in the
embeddings and in its own parameters, and moves with ``.to(device)``.

For a risk-aware reward, ``quantile=q`` scores each response by the ``q``-quantile of its
reward over the posterior of the weights (``num_draws`` draws stored in the folder): with
``q = 0.1`` a response scores high only if it is good under nearly every mixture the
person may hold (a new user after few answers, or anyone drawn from the population). The
prototypes and the sharpness stay at their posterior means: for a person the fit does not
know well, the weights are the uncertainty that matters.

``save_pretrained(folder)`` / ``PALRewardModel.from_pretrained(folder)`` write and read a
Hugging Face model folder through ``huggingface_hub``'s ``PyTorchModelHubMixin``: a
``config.json`` and ``model.safetensors``, nothing pickled (``push_to_hub`` works too).
The folder records the text embedder by name and a fingerprint of its weights, never a
path of the machine that fitted it; point ``embedder_path=`` at a local copy when
loading, and the fingerprint is checked against it.

PAL-B fits export too: the reward of a response then depends on its prompt,
``forward(embeddings, prompt_embeddings)`` (one prompt per response, or one for all), with
each prototype at its prompt's point ``g_k(c) = P_k + L_k phi(c)``; ``prompt_embedder=``
names how prompts are embedded for ``reward_texts`` and TRL (the loadings enter linearly,
so the posterior mean reward is again exact).

Rewards are centred per prompt (and, for a quantile, per weight draw) on the training
items: a response's reward minus the mean reward of the items the fit was trained on.

``PALRewardModel.reward_function`` is a callable with the signature TRL's trainers
take as a reward function (``GRPOTrainer(reward_funcs=[...])``):
``f(prompts, completions, **kwargs) -> list[float]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from bayespal.model.likelihood import paired_rewards, prompt_prototypes
from bayespal.model.nets import Mapping
from bayespal.posterior import FittedPAL
from bayespal.users import NewUserPosteriors


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 (32 hex digits) of every weight of a torch module, in state-dict order.

    Parameters
    ----------
    model:
        The module (e.g. a ``transformers`` text model).
    """
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _embedder_name(source: str) -> str:
    """A model's portable name: a hub id as given, a local folder by its last part."""
    path = Path(source)
    return path.name if path.is_absolute() or path.exists() else source


class PALRewardModel(nn.Module, PyTorchModelHubMixin, library_name="bayespal",
                     tags=["bayespal", "pal", "reward-model", "pluralistic-alignment"]):
    """A fitted PAL's reward of responses for one mixture of prototypes (see the module
    docstring). Build it with ``from_fit``; the constructor's arguments are what
    ``config.json`` stores.

    Parameters
    ----------
    embed_dim, pref_dim, hidden, k:
        The fitted mapping's and population's sizes.
    weights:
        The mixture weights ``(K,)`` the reward is for.
    source:
        What the weights are (``"user 'ann'"``, ``"population"``, ...).
    embedder:
        The text embedder's configuration (``name``, ``fingerprint``, ``layer``,
        ``pooling``, ``max_length``, ``dtype``), or None if the fit records none.
    embedder_path:
        Where to load the embedder from (default: its recorded name); its weights must
        match the recorded fingerprint.
    quantile:
        None: the posterior mean reward; a number in (0, 1): that quantile of the reward
        over ``num_draws`` stored draws of the weights.
    num_draws:
        How many weight draws the folder stores (0 without ``quantile``).
    prompt_embed_dim, prompt_dim, prompt_hidden:
        PAL-B: the prompt map's sizes (None for PAL-A).
    prompt_embedder:
        PAL-B: the prompt embedder's configuration (as ``embedder``), if given.
    """

    def __init__(self, *, embed_dim: int, pref_dim: int, hidden: Sequence[int], k: int,
                 weights: Sequence[float], source: str = "given weights",
                 embedder: dict | None = None, embedder_path: str | None = None,
                 quantile: float | None = None, num_draws: int = 0,
                 prompt_embed_dim: int | None = None, prompt_dim: int | None = None,
                 prompt_hidden: Sequence[int] = (), prompt_embedder: dict | None = None
                 ) -> None:
        super().__init__()
        self.embed_dim, self.k, self.source = int(embed_dim), int(k), str(source)
        self.embedder_config = None if embedder is None else dict(embedder)
        self.embedder_path = embedder_path
        self.mapping = Mapping(embed_dim, pref_dim, tuple(hidden))
        self.register_buffer("prototypes", torch.zeros(k, pref_dim))
        self.register_buffer("sharpness", torch.ones(()))
        # the training items' mean feature and spread: rewards are centred on them
        self.register_buffer("item_mean", torch.zeros(pref_dim))
        self.register_buffer("item_spread", torch.zeros(()))
        self.prompt_embed_dim = None if prompt_embed_dim is None else int(prompt_embed_dim)
        self.prompt_map = None
        if prompt_embed_dim is not None:
            if prompt_dim is None:
                raise ValueError("prompt_dim: got None with prompt_embed_dim; expected both "
                                 "for a PAL-B reward")
            self.prompt_map = Mapping(prompt_embed_dim, prompt_dim, tuple(prompt_hidden))
            self.register_buffer("loadings", torch.zeros(k, pref_dim, prompt_dim))
        self.prompt_embedder_config = None if prompt_embedder is None else dict(prompt_embedder)
        self._prompt_embedder = None
        w = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        if w.shape != (k,) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-4:
            raise ValueError(f"weights: got {np.asarray(weights).tolist()}; expected {k} "
                             "non-negative numbers summing to 1")
        self.register_buffer("weights", w)
        if quantile is not None and not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
            raise ValueError(f"quantile: got {quantile!r}; expected None or a number in (0, 1)")
        if (quantile is None) != (int(num_draws) == 0):
            raise ValueError(f"num_draws: got {num_draws!r} with quantile={quantile!r}; "
                             "expected draws exactly when a quantile is asked for")
        self.quantile = None if quantile is None else float(quantile)
        self.register_buffer("weight_draws", torch.zeros(int(num_draws), k))
        self._embedder = None

    # -- building -----------------------------------------------------------------------
    @classmethod
    def from_fit(cls, fit: FittedPAL, *, user=None, weights: Sequence[float] | None = None,
                 new_user: NewUserPosteriors | None = None, embedder=None,
                 quantile: float | None = None, num_draws: int = 256,
                 seed: int = 0, prompt_embedder=None) -> PALRewardModel:
        """The reward of a fit for one source of weights: a seen ``user``, given
        ``weights``, a single-user ``new_user`` posterior, or (none of them) the population
        average ``alpha / sum(alpha)``. Each is the weights' posterior mean; with
        ``quantile``, the reward's quantile over the weights' posterior (a seen user's
        Dirichlet ``q``, a new user's posterior draws, or the population prior). A fit with
        item effects exports the reward of responses not in its training table (what a
        policy generates), whose effect has prior mean 0, the same for every user.

        Parameters
        ----------
        fit:
            A ``FittedPAL`` (PAL-A or PAL-B) with the distance metric.
        user, weights, new_user:
            At most one source of weights.
        embedder:
            The ``TextEmbedder`` the items were embedded with
            (default: built from the fit's recorded configuration, if any); its name and
            weights fingerprint are recorded.
        quantile:
            None (the posterior mean reward) or a number in (0, 1): a risk-aware reward
            (e.g. 0.1). Not with given ``weights`` (they have no uncertainty) nor a MAP fit.
        num_draws, seed:
            With ``quantile``: how many weight draws to store, and their seed.
        prompt_embedder:
            PAL-B: the ``TextEmbedder`` the prompts were embedded with, to score texts
            (``reward_texts``, TRL); without it, the reward takes prompt embeddings only.
        """
        if not isinstance(fit, FittedPAL):
            raise ValueError(f"fit: got {type(fit).__name__}; expected a FittedPAL (for an "
                             "ensemble, export ens.members[i])")
        if fit.model_config.metric != "distance":
            raise ValueError(f"fit: got the {fit.model_config.metric!r} metric; expected the "
                             "distance metric (the cosine reward is not linear in the weights)")
        if sum(x is not None for x in (user, weights, new_user)) > 1:
            raise ValueError("user/weights/new_user: got more than one; expected at most one "
                             "source of mixture weights")
        if user is not None:
            w, source = fit.user_weights().sel(user=[user])["mean"].values[0], f"user {user!r}"
        elif new_user is not None:
            if not isinstance(new_user, NewUserPosteriors) or len(new_user.ids) != 1:
                raise ValueError("new_user: expected the posterior of one new user")
            w, source = new_user.weights()["mean"].values[0], "a new user's posterior"
        elif weights is not None:
            w, source = np.asarray(weights, dtype=np.float64), "given weights"
        else:
            w, source = fit.population_prior()["mean"].values, "the population average"
        draws = None
        if quantile is not None:
            draws = _weight_draws(fit, user, weights, new_user, num_draws, seed)
        config = None
        if embedder is None and fit.embedding:
            from bayespal.embed import TextEmbedder

            embedder = TextEmbedder.from_config(fit.embedding, progress=False)
        config = None if embedder is None else _embedder_record(embedder)
        cfg = fit.model_config
        if prompt_embedder is not None and not cfg.prompted:
            raise ValueError("prompt_embedder: got one for a PAL-A fit; expected it only for "
                             "PAL-B (a prompt-conditioned fit)")
        guide = fit.guide
        out = cls(embed_dim=fit.embed_dim, pref_dim=cfg.pref_dim,
                  hidden=list(cfg.hidden), k=fit.k,
                  weights=(w / w.sum()).tolist(), source=source, embedder=config,
                  quantile=quantile, num_draws=0 if draws is None else len(draws),
                  prompt_embed_dim=fit.prompt_embed_dim, prompt_dim=cfg.prompt_dim,
                  prompt_hidden=list(cfg.prompt_hidden) if cfg.prompted else [],
                  prompt_embedder=None if prompt_embedder is None
                  else _embedder_record(prompt_embedder))
        with torch.no_grad():
            out.mapping.load_state_dict(fit.model.mapping.state_dict())
            out.prototypes.copy_(guide.prototypes_loc.detach().cpu())
            beta = guide.sharpness_dist().mean if not guide.point else guide.sharpness_loc.exp()
            out.sharpness.copy_(beta.detach().cpu())
            if draws is not None:
                out.weight_draws.copy_(torch.as_tensor(draws, dtype=torch.float32))
            if cfg.prompted:
                out.prompt_map.load_state_dict(fit.model.prompt_map.state_dict())
                out.loadings.copy_(guide.loadings_loc.detach().cpu())
            if fit.items is not None:
                f = out.mapping(torch.as_tensor(fit.items.embeddings))
                out.item_mean.copy_(f.mean(0))
                out.item_spread.copy_((f - f.mean(0)).pow(2).sum(-1).mean())
        out._embedder, out._prompt_embedder = embedder, prompt_embedder
        return out.eval()

    # -- rewards -----------------------------------------------------------------------
    def _ideal_points(self, weights: torch.Tensor, pc: torch.Tensor | None) -> torch.Tensor:
        """The ideal points ``z = sum_k w_k g_k`` of weights ``(K,)`` or draws ``(S, K)``:
        ``(1, d)`` / ``(S, 1, d)`` for PAL-A, ``(n, d)`` / ``(S, n, d)`` for PAL-B (one per
        response's prompt features ``pc (n, q)``)."""
        if pc is None:
            return (weights @ self.prototypes).unsqueeze(-2)
        points = prompt_prototypes(self.prototypes, self.loadings, pc)  # (n, K, d)
        w = weights if weights.dim() == 1 else weights[:, None, :]
        return (w.unsqueeze(-1) * points).sum(-2)

    def _prompt_features(self, embeddings: torch.Tensor, prompt_embeddings) -> torch.Tensor | None:
        if self.prompt_map is None:
            if prompt_embeddings is not None:
                raise ValueError("prompt_embeddings: got some for a PAL-A reward; expected "
                                 "None (its reward does not depend on the prompt)")
            return None
        if prompt_embeddings is None:
            raise ValueError("prompt_embeddings: got None for a PAL-B reward; expected the "
                             "embedding of each response's prompt (n, Dc) or of one (1, Dc)")
        pe = torch.as_tensor(prompt_embeddings).to(self.prototypes.device)
        if pe.ndim != 2 or pe.shape[1] != self.prompt_embed_dim or pe.shape[0] not in (
                1, embeddings.shape[0]):
            raise ValueError(f"prompt_embeddings: got shape {tuple(pe.shape)}; expected (n, "
                             f"{self.prompt_embed_dim}) or (1, {self.prompt_embed_dim}), n = "
                             f"{embeddings.shape[0]} responses")
        return self.prompt_map(pe).expand(embeddings.shape[0], -1)

    def forward(self, embeddings: torch.Tensor, prompt_embeddings=None) -> torch.Tensor:
        """The centred reward ``(n,)`` of response embeddings ``(n, D)`` (differentiable):
        ``beta * (r_z(x) - mean over the training items of r_z)``, ``z`` the person's ideal
        point (PAL-B: under each response's prompt); with a quantile, that quantile over
        the stored weight draws.

        Parameters
        ----------
        embeddings:
            Embeddings made as the fit's items were.
        prompt_embeddings:
            PAL-B: the prompts' embeddings, ``(n, Dc)`` or one ``(1, Dc)`` for all.
        """
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"embeddings: got shape {tuple(embeddings.shape)}; expected "
                             f"(n, {self.embed_dim})")
        embeddings = embeddings.to(self.prototypes.device)
        pc = self._prompt_features(embeddings, prompt_embeddings)
        f = self.mapping(embeddings)
        w = self.weights if self.quantile is None else self.weight_draws
        z = self._ideal_points(w, pc)
        # r_z(x) - mean_items r_z = paired(z, f) - paired(z, mean f) + mean ||f - mean f||^2
        centred = paired_rewards(z, f) - paired_rewards(z, self.item_mean) + self.item_spread
        if self.quantile is not None:
            centred = torch.quantile(centred, self.quantile, dim=0)
        return self.sharpness * centred

    def embedder(self):
        """The recorded text embedder, loaded (from ``embedder_path`` or its name) and
        checked against the recorded weights fingerprint."""
        if self._embedder is None:
            self._embedder = self._load_embedder(self.embedder_config, self.embedder_path,
                                                 "embedder")
        return self._embedder

    def prompt_embedder(self):
        """PAL-B: the recorded prompt embedder, loaded and checked as ``embedder``."""
        if self._prompt_embedder is None:
            self._prompt_embedder = self._load_embedder(self.prompt_embedder_config, None,
                                                        "prompt_embedder")
        return self._prompt_embedder

    def _load_embedder(self, cfg: dict | None, path: str | None, what: str):
        if not cfg:
            raise ValueError(f"{what}: this reward model records none; expected a fit whose "
                             "texts were embedded by a TextEmbedder (PAL-B prompts: "
                             "from_fit(..., prompt_embedder=...))")
        from bayespal.embed import TextEmbedder

        where = path or cfg["name"]
        emb = TextEmbedder.from_config({"model": where, **{k: v for k, v in cfg.items()
                                                           if k not in ("name", "fingerprint")}},
                                       progress=False, device=str(self.prototypes.device))
        found = weights_fingerprint(emb.model)
        if found != cfg["fingerprint"]:
            raise ValueError(f"embedder_path: got {where!r}, whose weights have fingerprint "
                             f"{found}; expected {cfg['fingerprint']}, the weights the items "
                             f"were embedded with ({cfg['name']!r})")
        return emb

    @torch.no_grad()
    def reward_texts(self, texts: Sequence[str], prompts: Sequence[str] | None = None
                     ) -> torch.Tensor:
        """The centred reward ``(n,)`` of raw response texts, through the recorded embedder.

        Parameters
        ----------
        texts:
            Response texts.
        prompts:
            PAL-B: each response's prompt text (embedded by the recorded prompt embedder).
        """
        emb = torch.as_tensor(np.asarray(self.embedder()(list(texts)), dtype=np.float32))
        pe = None
        if self.prompt_map is not None:
            if prompts is None or len(prompts) != len(texts):
                raise ValueError(f"prompts: got {None if prompts is None else len(prompts)}; "
                                 f"expected {len(texts)} prompt texts, one per response, for "
                                 "a PAL-B reward")
            pe = torch.as_tensor(np.asarray(self.prompt_embedder()(list(prompts)),
                                            dtype=np.float32))
        return self(emb, pe)

    def reward_function(self, with_prompt: bool = False):
        """A reward function as TRL's trainers take it (e.g. ``GRPOTrainer(reward_funcs=
        [...])``): ``f(prompts, completions, **kwargs) -> list[float]``. Conversational
        completions (lists of messages) are scored by their last message's content.

        Parameters
        ----------
        with_prompt:
            Score ``prompt + completion`` instead of the completion alone (for rewards
            fitted on whole exchanges).
        """
        def pal_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs) -> list[float]:
            texts = [_text(c) for c in completions]
            asked = [_text(p) for p in prompts]
            if with_prompt:
                texts = [p + t for p, t in zip(asked, texts, strict=True)]
            return self.reward_texts(texts, asked if self.prompt_map is not None else None
                                     ).cpu().tolist()

        pal_reward.__name__ = "pal_reward"  # TRL logs rewards under the function's name
        return pal_reward


def _embedder_record(embedder) -> dict:
    """An embedder by portable name and weights fingerprint, with its settings."""
    return {"name": _embedder_name(embedder.config()["model"]),
            "fingerprint": weights_fingerprint(embedder.model),
            **{k: v for k, v in embedder.config().items() if k != "model"}}


def _weight_draws(fit: FittedPAL, user, weights, new_user, num: int, seed: int) -> np.ndarray:
    """``(num, K)`` draws of the weights' posterior, for a quantile reward."""
    if not isinstance(num, int) or isinstance(num, bool) or num < 2:
        raise ValueError(f"num_draws: got {num!r}; expected an integer >= 2")
    if weights is not None:
        raise ValueError("quantile: got given weights; expected a user, a new user or the "
                         "population (given weights have no uncertainty to take a quantile of)")
    rng = np.random.default_rng(seed)
    if new_user is not None:
        return new_user.draws(num, seed)[0][0].cpu().numpy()
    if user is not None:
        conc = fit.weight_concentration([user])
        if conc is None:
            raise ValueError(f"quantile: got a {fit.train_config.inference.upper()} fit with "
                             f"K = {fit.k}; expected a posterior over the user's weights (SVI, "
                             "K > 1)")
        return rng.dirichlet(np.asarray(conc[0], dtype=np.float64), size=num)
    return fit.sample_prior_weights(num, rng)


def _text(value: Any) -> str:
    """A completion (or prompt) as text: a string, or the last message of a conversation."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    raise ValueError(f"completions: got {type(value).__name__}; expected a string or a "
                     "list of chat messages")
