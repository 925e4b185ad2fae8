import os

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def syn3():
    """The issue's synthetic set-up: K = 3, 400 users x (40 train + 20 test)."""
    from bayespal.datasets import synthetic

    return synthetic(n_users=400, k=3, n_train=40, n_test=20, seed=0)


@pytest.fixture(scope="session")
def fit3(syn3):
    import bayespal

    return bayespal.fit(syn3.train, k=3, pref_dim=4, seed=0, progress=False)
