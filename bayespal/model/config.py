"""What is modelled: ``ModelConfig`` (validated once, hashable, JSON-serialisable)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from bayespal.checks import check_fields, check_int, check_real, fail

METRICS = ("distance", "cosine")
WEIGHT_PRIORS = ("mixture", "dirichlet")


def _widths(name: str, widths: object) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise fail(name, widths, "a sequence of positive layer widths")
    return tuple(check_int(f"{name}[{i}]", h) for i, h in enumerate(widths))


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise fail(name, value, "True or False")
    return bool(value)


@dataclass(frozen=True)
class ModelConfig:
    """The PAL model: its sizes and priors (how it is *fitted* is ``TrainConfig``).

    Parameters
    ----------
    k:
        Number of prototypes ``K`` (kinds of preference). ``k=1`` is one reward model
        (Bradley-Terry on the mapped items).
    pref_dim:
        Width ``d`` of the preference space the mapping ``f`` maps items into.
    hidden:
        Hidden layer widths of the mapping (an MLP; ``()`` is linear). ``None`` (default):
        chosen by ``bayespal.fit`` on a validation split of the data (the candidates
        are ``bayespal.inference.tuning.AUTO_HIDDEN``).
    prototype_scale:
        Prior sd ``s_P`` of every prototype coordinate.
    sharpness_loc, sharpness_scale:
        The sharpness prior ``beta ~ LogNormal(sharpness_loc, sharpness_scale)``.
    concentration:
        A fixed population prior of the user weights, ``Dirichlet(concentration * 1_K)``;
        ``None`` (default) learns the prior (``weight_prior``).
    weight_prior:
        The population prior of the user weights: ``"dirichlet"`` (default: one
        ``Dirichlet(alpha)``, the vector ``alpha`` learned, or fixed by ``concentration``)
        or ``"mixture"`` (a mixture of Dirichlets ``sum_c pi_c Dirichlet(s_c K m)`` over a
        fixed grid of scales ``s_c``, ``bayespal.model.pal.MIXTURE_SCALES``, from sparse,
        users near one prototype, to dense, users near the mean ``m``; the proportions
        ``pi`` and the mean ``m`` learned by empirical Bayes, to hold single-type and
        mixed users at once). The mixture is not the default: measured over five
        populations (``benchmarks/weight_prior.py``) it covers mixed users better where
        half the users are single-type, but predicts single-type populations a little
        worse and fitted one dense population badly.
    prompt_dim:
        PAL-B: width ``q`` of the prompt features ``phi(c)``; ``None`` is PAL-A (prompts, if
        any, are ignored).
    prompt_hidden:
        PAL-B: hidden widths of the prompt map ``phi``.
    loading_scale:
        PAL-B: prior sd of the prototypes' prompt loadings (divided by ``sqrt(q)``).
    metric:
        How an item is compared with an ideal point: ``"distance"`` (squared distance, a
        mixture of rewards) or, PAL-B only, the reference implementation's ``"cosine"``.
    position_bias:
        A learned offset of every logit: how much more often the item shown first is
        chosen whatever it is (off by default).
    item_effects:
        A residual reward per training item, shared by every prototype, ``e(x) ~
        Normal(0, tau^2)`` with the scale ``tau`` learned (empirical Bayes): the part of how
        much everyone likes an item that its embedding does not explain. Items not in the
        training table draw theirs from the prior, so their predictions carry that
        uncertainty. SVI and the distance metric only (off by default).
    levels:
        How many ordered outcomes a comparison's answer has: 2 (default) is "a or b", 3
        adds a tie ("equal") in the middle, more grade how strongly one item is preferred.
        The answer is an ordered logistic model of the PAL logit with symmetric cutpoints
        whose gaps have a ``LogNormal(0, 1)`` prior and are inferred with the rest
        (``bayespal.model.likelihood``). ``bayespal.fit`` takes it from the data.
    user_cutpoints:
        Graded answers (``levels > 2``): each user's cutpoints are the population's scaled
        by the user's own factor ``exp(s_i)``, ``s_i ~ Normal(0, sigma^2)`` with the spread
        ``sigma`` learned (empirical Bayes): how much more (``s_i > 0``) or less readily
        than the population this person answers "equal" or grades weakly. Inferred per user
        like the weights; a new user's factor is integrated over the prior. SVI only (off
        by default).
    """

    k: int = 3
    pref_dim: int = 16
    hidden: tuple[int, ...] | None = None
    prototype_scale: float = 1.0
    sharpness_loc: float = 0.0
    sharpness_scale: float = 1.0
    concentration: float | None = None
    weight_prior: str = "dirichlet"
    prompt_dim: int | None = None
    prompt_hidden: tuple[int, ...] = ()
    loading_scale: float = 1.0
    metric: str = "distance"
    position_bias: bool = False
    item_effects: bool = False
    levels: int = 2
    user_cutpoints: bool = False

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("k", check_int("k", self.k))
        put("pref_dim", check_int("pref_dim", self.pref_dim))
        if self.hidden is not None:
            put("hidden", _widths("hidden", self.hidden))
        put("prompt_hidden", _widths("prompt_hidden", self.prompt_hidden))
        for name in ("prototype_scale", "sharpness_scale", "loading_scale"):
            put(name, check_real(name, getattr(self, name), low=0, low_open=True))
        put("sharpness_loc", check_real("sharpness_loc", self.sharpness_loc))
        if self.concentration is not None:
            put("concentration", check_real("concentration", self.concentration, low=0,
                                            low_open=True))
        if self.weight_prior not in WEIGHT_PRIORS:
            raise fail("weight_prior", self.weight_prior, f"one of {WEIGHT_PRIORS}")
        if self.weight_prior == "mixture" and self.concentration is not None:
            raise fail("weight_prior", "mixture", "'dirichlet' with a fixed "
                       f"concentration={self.concentration!r} (a fixed prior is one Dirichlet)")
        if self.prompt_dim is not None:
            put("prompt_dim", check_int("prompt_dim", self.prompt_dim))
        if self.metric not in METRICS:
            raise fail("metric", self.metric, f"one of {METRICS}")
        if self.metric == "cosine" and self.prompt_dim is None:
            raise fail("metric", self.metric, "'distance' for PAL-A (cosine is a PAL-B option; "
                       "set prompt_dim)")
        put("position_bias", _flag("position_bias", self.position_bias))
        if self.position_bias and self.metric == "cosine":
            raise fail("position_bias", True, "False with metric='cosine' (a position term is "
                       "added to the logit, which the cosine score normalises)")
        put("item_effects", _flag("item_effects", self.item_effects))
        put("levels", check_int("levels", self.levels, minimum=2))
        put("user_cutpoints", _flag("user_cutpoints", self.user_cutpoints))
        if self.item_effects and self.metric == "cosine":
            raise fail("item_effects", True, "False with metric='cosine' (item effects are "
                       "rewards, which the cosine score does not have)")

    @property
    def prompted(self) -> bool:
        """PAL-B: the prototypes are functions of the prompt."""
        return self.prompt_dim is not None

    @property
    def name(self) -> str:
        """``"PAL-A"`` or ``"PAL-B (<metric>)"``."""
        return f"PAL-B ({self.metric})" if self.prompted else "PAL-A"

    def to_dict(self) -> dict:
        """The fields as JSON types (tuples become lists)."""
        d = asdict(self)
        d["hidden"] = None if self.hidden is None else list(self.hidden)
        d["prompt_hidden"] = list(self.prompt_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """The configuration from ``to_dict``'s output; unknown keys are an error."""
        # files written before the mixture prior existed were fitted with one Dirichlet
        d = {"weight_prior": "dirichlet", **check_fields("model config", d, cls)}
        for key in ("hidden", "prompt_hidden"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def hash(self) -> str:
        """16 hex digits of SHA-256 over the sorted JSON fields (checkpoints, files)."""
        return _hash(self.to_dict())


def _hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
