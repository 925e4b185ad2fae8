"""The README's quick-start commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install "torch==2.13.0" -e ".[dev]" && pytest' in readme
    assert 'pip install "torch==2.13.0" -e . && bayespal demo' in readme
    assert 'pip install "torch==2.13.0" -e ".[dev]"\npytest\n' in ci
    assert "bayespal demo" in ci
