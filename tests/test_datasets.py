"""Data sets: the shipped Persona demo (with its licence) and the loader of the full data."""

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import bayespal
from bayespal.datasets import persona_demo
from bayespal.datasets.persona import DEMO_PERSONAS, load_statements
from bayespal.metrics import accuracy

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "persona"


def test_demo_data_ships_with_its_licence_and_truth():
    files = resources.files("bayespal.datasets") / "data"
    assert "Attribution 4.0 International" in (files / "LICENSE.persona-CC-BY-4.0").read_text()
    syn = persona_demo(n_users=30, k=3, n_train=10, n_test=5, seed=1)
    d = syn.data
    assert d.n_items == 600 and d.embed_dim == 384 and d.items.dtype == np.float16
    assert len(d.meta["texts"]) == 600 and set(d.meta["persona"]) == set(DEMO_PERSONAS)
    # every comparison pairs a statement its persona would say with one it would not
    persona = np.asarray(d.meta["persona"])
    assert (persona[d.item_a] == persona[d.item_b]).all()
    assert np.all(syn.true_rewards[:, d.item_a] == -syn.true_rewards[:, d.item_b])
    p = syn.true_probability(syn.true_weights[d.user], d.item_a, d.item_b)
    np.testing.assert_allclose(p, syn.true_prob)


def test_pal_a_on_persona_beats_bradley_terry_and_nears_bayes():
    syn = persona_demo(n_users=250, k=3, n_train=40, n_test=20, seed=0)
    train, test = syn.train, syn.test
    bayes = accuracy(syn.true_prob[syn.is_test], test.label)
    acc = {k: accuracy(bayespal.fit(train, k=k, pref_dim=8, seed=0, progress=False)
                       .predict_proba(test), test.label) for k in (1, 3)}
    print(f"Persona demo: K=3 {acc[3]:.4f}, K=1 {acc[1]:.4f}, Bayes-optimal {bayes:.4f}")
    assert acc[3] >= bayes - 0.03
    assert acc[3] >= acc[1] + 0.10


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data/persona not present")
def test_load_statements_from_the_full_data():
    frame = load_statements(SHARED, DEMO_PERSONAS[:2], per_persona=20, seed=0)
    assert len(frame) == 40 and set(frame.label) == {1, -1}
    assert (frame.groupby("persona").label.sum() == 0).all()  # balanced
    with pytest.raises(ValueError, match="personas: got 'no-such-persona'"):
        load_statements(SHARED, ["no-such-persona"])
