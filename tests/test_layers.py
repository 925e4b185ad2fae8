"""The package's layers (pyproject's import-linter contract) hold, deferred imports
included, and no module imports itself through others (no import circle)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(LINT, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layers_contract_is_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_a_deferred_upward_import_breaks_the_contract(tmp_path):
    """The check sees imports inside functions: one added to the model layer, reaching up
    to the posterior layer, is reported by name."""
    shutil.copytree(ROOT / "bayespal", tmp_path / "bayespal",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "bayespal" / "model" / "draws.py"
    target.write_text(target.read_text() + "\n\ndef _upward():\n"
                      "    from bayespal.posterior import FittedPAL\n\n    return FittedPAL\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout and "bayespal.model.draws -> bayespal.posterior" in out.stdout


@pytest.mark.parametrize("package", ["bayespal"])
def test_no_import_circle_between_modules(package):
    """Package ``__init__`` files only re-export their own modules, so they are left out;
    between modules the import graph must be acyclic."""
    graph = grimp.build_graph(package)
    packages = {m for m in graph.modules if graph.find_children(m)}
    edges = {m: {t for t in graph.find_modules_directly_imported_by(m) if t not in packages}
             for m in graph.modules if m not in packages}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        path.append(module)
        for other in sorted(edges.get(module, ())):
            if state.get(other) == 1:
                circles.append(path[path.index(other):] + [other])
            elif other not in state:
                visit(other, path)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not circles, circles
