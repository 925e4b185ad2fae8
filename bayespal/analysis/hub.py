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

from bayespal.model.likelihood import mixture_rewards
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
    """

    def __init__(self, *, embed_dim: int, pref_dim: int, hidden: Sequence[int], k: int,
                 weights: Sequence[float], source: str = "given weights",
                 embedder: dict | None = None, embedder_path: str | None = None,
                 quantile: float | None = None, num_draws: int = 0) -> None:
        super().__init__()
        self.embed_dim, self.k, self.source = int(embed_dim), int(k), str(source)
        self.embedder_config = None if embedder is None else dict(embedder)
        self.embedder_path = embedder_path
        self.mapping = Mapping(embed_dim, pref_dim, tuple(hidden))
        self.register_buffer("prototypes", torch.zeros(k, pref_dim))
        self.register_buffer("sharpness", torch.ones(()))
        self.register_buffer("offset", torch.zeros(()))
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
                 seed: int = 0) -> PALRewardModel:
        """The reward of a fit for one source of weights: a seen ``user``, given
        ``weights``, a single-user ``new_user`` posterior, or (none of them) the population
        average ``alpha / sum(alpha)``. Each is the weights' posterior mean; with
        ``quantile``, the reward's quantile over the weights' posterior (a seen user's
        Dirichlet ``q``, a new user's posterior draws, or the population prior).

        Parameters
        ----------
        fit:
            A PAL-A ``FittedPAL`` with the distance metric.
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
        """
        if not isinstance(fit, FittedPAL):
            raise ValueError(f"fit: got {type(fit).__name__}; expected a FittedPAL (for an "
                             "ensemble, export ens.members[i])")
        if fit.model_config.prompted or fit.model_config.metric != "distance":
            raise ValueError(f"fit: got {fit.model_config.name}; expected PAL-A with the "
                             "distance metric (a prompt-conditioned reward is not exported yet)")
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
            alpha = np.asarray(fit.concentration, dtype=np.float64)
            w, source = alpha / alpha.sum(), "the population average"
        draws = None
        if quantile is not None:
            draws = _weight_draws(fit, user, weights, new_user, num_draws, seed)
        config = None
        if embedder is None and fit.embedding:
            from bayespal.embed import TextEmbedder

            embedder = TextEmbedder.from_config(fit.embedding, progress=False)
        if embedder is not None:
            config = {"name": _embedder_name(embedder.config()["model"]),
                      "fingerprint": weights_fingerprint(embedder.model),
                      **{k: v for k, v in embedder.config().items() if k != "model"}}
        guide = fit.guide
        out = cls(embed_dim=fit.embed_dim, pref_dim=fit.model_config.pref_dim,
                  hidden=list(fit.model_config.hidden), k=fit.k,
                  weights=(w / w.sum()).tolist(), source=source, embedder=config,
                  quantile=quantile, num_draws=0 if draws is None else len(draws))
        with torch.no_grad():
            out.mapping.load_state_dict(fit.model.mapping.state_dict())
            out.prototypes.copy_(guide.prototypes_loc.detach().cpu())
            beta = guide.sharpness_dist().mean if not guide.point else guide.sharpness_loc.exp()
            out.sharpness.copy_(beta.detach().cpu())
            if draws is not None:
                out.weight_draws.copy_(torch.as_tensor(draws, dtype=torch.float32))
            if fit.items is not None:
                out.offset.copy_(out.raw_reward(torch.as_tensor(fit.items.embeddings)).mean())
        out._embedder = embedder
        return out.eval()

    # -- rewards -----------------------------------------------------------------------
    def raw_reward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``beta * sum_k w_k r_k(x)`` of embeddings ``(n, D)``, not centred (with a
        quantile: that quantile over the stored weight draws)."""
        features = self.mapping(embeddings.to(self.prototypes.device))
        if self.quantile is None:
            return self.sharpness * mixture_rewards(self.weights, self.prototypes, features)
        per_draw = mixture_rewards(self.weight_draws, self.prototypes, features)  # (S, n)
        return self.sharpness * torch.quantile(per_draw, self.quantile, dim=0)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The centred reward ``(n,)`` of response embeddings ``(n, D)`` (differentiable).

        Parameters
        ----------
        embeddings:
            Embeddings made as the fit's items were.
        """
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"embeddings: got shape {tuple(embeddings.shape)}; expected "
                             f"(n, {self.embed_dim})")
        return self.raw_reward(embeddings) - self.offset

    def embedder(self):
        """The recorded text embedder, loaded (from ``embedder_path`` or its name) and
        checked against the recorded weights fingerprint."""
        if self._embedder is not None:
            return self._embedder
        cfg = self.embedder_config
        if not cfg:
            raise ValueError("embedder: this reward model records none; expected a fit "
                             "whose items were embedded by a TextEmbedder")
        from bayespal.embed import TextEmbedder

        where = self.embedder_path or cfg["name"]
        emb = TextEmbedder.from_config({"model": where, **{k: v for k, v in cfg.items()
                                                           if k not in ("name", "fingerprint")}},
                                       progress=False, device=str(self.prototypes.device))
        found = weights_fingerprint(emb.model)
        if found != cfg["fingerprint"]:
            raise ValueError(f"embedder_path: got {where!r}, whose weights have fingerprint "
                             f"{found}; expected {cfg['fingerprint']}, the weights the items "
                             f"were embedded with ({cfg['name']!r})")
        self._embedder = emb
        return emb

    @torch.no_grad()
    def reward_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """The centred reward ``(n,)`` of raw response texts, through the recorded embedder.

        Parameters
        ----------
        texts:
            Response texts.
        """
        emb = self.embedder()(list(texts))
        return self(torch.as_tensor(np.asarray(emb, dtype=np.float32)))

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
            if with_prompt:
                texts = [_text(p) + t for p, t in zip(prompts, texts, strict=True)]
            return self.reward_texts(texts).cpu().tolist()

        pal_reward.__name__ = "pal_reward"  # TRL logs rewards under the function's name
        return pal_reward


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
    return rng.dirichlet(np.asarray(fit.concentration, dtype=np.float64), size=num)


def _text(value: Any) -> str:
    """A completion (or prompt) as text: a string, or the last message of a conversation."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    raise ValueError(f"completions: got {type(value).__name__}; expected a string or a "
                     "list of chat messages")
