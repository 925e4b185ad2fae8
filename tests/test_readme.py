"""The README is true: CI runs its two quick-start commands, and its Python examples run
(fits shortened) and return what they say."""

import re
from pathlib import Path

import numpy as np
import pytest

import bayespal

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", README, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_commands():
    install_demo, install_test = _commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    # command 2: CI's install line and test line are the README's, in that order
    pip, test = install_test.split(" && ")[-2:]
    assert pip in ci and test in ci and ci.index(pip) < ci.index(test)
    # command 1: installs the package without extras and runs the demo
    assert install_demo.split(" && ")[-2] == 'pip install "torch==2.13.0" -e .'
    assert any(line.startswith(install_demo.split(" && ")[-1]) for line in ci)


def _run_python_blocks(text: str, name: str, monkeypatch) -> tuple[int, dict]:
    """Run a page's Python blocks in one scope, fits shortened to 5 epochs."""
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    real_fit = bayespal.fit
    monkeypatch.setattr(bayespal, "fit", lambda *a, **kw: real_fit(*a, **{**kw, "epochs": 5,
                                                                         "progress": False}))
    scope: dict = {}
    for block in blocks:
        exec(compile(block, name, "exec"), scope)  # noqa: S102
    return len(blocks), scope


@pytest.mark.slow
def test_readme_python_examples_run(monkeypatch):
    n, scope = _run_python_blocks(README, "README.md", monkeypatch)
    assert n >= 2
    p = scope["p"]
    assert p.shape == (len(scope["test"]),) and ((p >= 0) & (p <= 1)).all() and p.std() > 0.05
    assert set(scope["w"].data_vars) == {"mean", "sd", "lower", "upper"}
    assert scope["r"]["mean"].shape == (3, scope["train"].n_items)
    weights = scope["user"].weights()
    assert weights["mean"].shape == (1, 3) and np.isclose(float(weights["mean"].sum()), 1)
    assert scope["user"].n_answers()[0] == 1


@pytest.mark.slow
def test_getting_started_examples_run(monkeypatch):
    page = (ROOT / "docs" / "getting-started.md").read_text()
    n, scope = _run_python_blocks(page, "getting-started.md", monkeypatch)
    assert n == 2
    assert scope["fit"].k == 3 and "chosen:" in scope["fit"].summary()
    assert scope["r"]["item"].values.tolist() == scope["syn"].train.item_ids.tolist()
    assert scope["user"].n_answers()[0] == 1
