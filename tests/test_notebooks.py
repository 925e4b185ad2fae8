"""Every notebook in notebooks/ executes offline, each within 2 minutes, and shows its
figures: the committed file holds its outputs (so a code host shows the figures), every
notebook has at least one figure, and no figure is shown twice."""

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _images(nb) -> list[list[str]]:
    """Per code cell, its PNG outputs."""
    return [[out["data"]["image/png"] for out in cell.get("outputs", [])
             if "image/png" in out.get("data", {})]
            for cell in nb.cells if cell.cell_type == "code"]


def _check_figures(nb, name: str) -> None:
    per_cell = _images(nb)
    assert sum(map(len, per_cell)) >= 1, f"{name}: no figure output"
    for i, images in enumerate(per_cell):
        assert len(images) == len(set(images)), f"{name}: cell {i} shows a figure twice"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebooks_hold_their_figures(path):
    nb = nbformat.read(path, as_version=4)
    _check_figures(nb, path.name)
    assert all(cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code"), \
        f"{path.name}: committed without running every cell"
    assert "matplotlib.use(" not in path.read_text(), f"{path.name}: forces a backend"


@pytest.mark.slow  # every notebook fits a model
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))  # the kernel's
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # run from a clean slate
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    start = time.perf_counter()
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.1f} s")
    assert elapsed < 120
    _check_figures(nb, path.name)
