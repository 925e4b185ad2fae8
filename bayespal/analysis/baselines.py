"""Plain (non-Bayesian, non-Pyro) Bradley-Terry reward models: the baselines every
PAL comparison is made against. One reward ``r(x)`` for everyone, fitted by maximum
likelihood on ``P(a > b) = sigmoid(r(x_a) - r(x_b))`` with a plain PyTorch loop."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bayespal.data import PreferenceData
from bayespal.model.nets import Mapping
from bayespal.rng import keeps_global_rng


class BradleyTerry:
    """Bradley-Terry with a linear (``hidden=None``) or MLP reward; ``fit`` then ``predict_proba``.

    Parameters
    ----------
    hidden:
        MLP widths of the reward (None: linear).
    epochs, batch_size, lr, weight_decay:
        Adam's schedule.
    seed:
        Seeds the initialisation and batches.
    """

    def __init__(self, hidden: tuple[int, ...] | None = None, epochs: int = 100,
                 batch_size: int = 1024, lr: float = 0.01, weight_decay: float = 1e-4,
                 seed: int = 0) -> None:
        self.hidden, self.epochs, self.batch_size = hidden, epochs, batch_size
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed

    @keeps_global_rng
    def fit(self, data: PreferenceData) -> BradleyTerry:
        """Fit one reward model to every user's comparisons (maximum likelihood).

        Parameters
        ----------
        data:
            The training comparisons.
        """
        data.require_pairs("BradleyTerry")
        torch.manual_seed(self.seed)
        d = data.embed_dim
        self.reward_: nn.Module = (
            nn.Linear(d, 1, bias=False) if self.hidden is None else Mapping(d, 1, self.hidden)
        )
        items = torch.as_tensor(data.items).float()
        a, b = torch.as_tensor(data.item_a), torch.as_tensor(data.item_b)
        y = torch.as_tensor(data.label)
        opt = torch.optim.AdamW(self.reward_.parameters(), lr=self.lr,
                                weight_decay=self.weight_decay)
        loss_fn = nn.BCEWithLogitsLoss()
        n = len(y)
        for _ in range(self.epochs):
            perm = torch.randperm(n)
            for s in range(0, n, self.batch_size):
                i = perm[s : s + self.batch_size]
                logit = (self.reward_(items[a[i]]) - self.reward_(items[b[i]])).squeeze(-1)
                loss = loss_fn(logit, y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self

    @torch.no_grad()
    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        """``P(a preferred over b)`` of ``data``'s comparisons (the same for every user).

        Parameters
        ----------
        data:
            Comparisons over items of the same embedding width.
        """
        data.require_pairs("BradleyTerry")
        items = torch.as_tensor(data.items).float()
        r = self.reward_(items).squeeze(-1)
        return torch.sigmoid(r[data.item_a] - r[data.item_b]).numpy()
