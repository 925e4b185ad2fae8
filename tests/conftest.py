import os

import numpy as np
import pytest
import torch

# Under pytest-xdist each worker gets one thread (the workers share the cores).
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))


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
