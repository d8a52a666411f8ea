"""The notebooks: committed output-free and in sync with their jupytext twins; each runs top to bottom.

Every ``notebooks/NN_*.ipynb`` is paired with ``notebooks/NN_*.py`` (jupytext percent format). The fast
tests check that the committed .ipynb files hold no outputs and match their .py twins; the slow test
executes each notebook with nbclient (kernel ``python3``, working directory and outputs in a temp dir)
and checks it ran without error and displayed at least one figure.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["01_quickstart", "02_relative_position_biases", "03_attributions", "04_block_types_ablation",
            "05_training_walkthrough", "06_how_relative_positions_mix"]
FIGURE_TYPES = ("image/png", "image/svg+xml", "application/vnd.plotly.v1+json")


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_all_notebooks_are_there():
    assert ids(NOTEBOOKS) == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: clear them (see notebooks/README.md)"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_in_sync_with_py_twin(path: Path):
    twin = path.with_suffix(".py")
    assert twin.is_file(), f"{path.name} has no jupytext twin {twin.name}"
    ipynb = nbformat.read(path, as_version=4)
    py = jupytext.read(twin)
    assert [(c.cell_type, c.source) for c in ipynb.cells] == [(c.cell_type, c.source) for c in py.cells], (
        f"{path.name} and {twin.name} differ: run 'jupytext --sync notebooks/*.ipynb'")


def figures(nb: nbformat.NotebookNode) -> int:
    return sum(1 for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
               if any(kind in out.get("data", {}) for kind in FIGURE_TYPES))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from nbclient import NotebookClient

    # the kernel imports this checkout's packages and writes only under tmp_path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("POSMLP_NB_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("POSMLP_NB_SMOKE", "1")  # every cell, fewest clips (the suite's time budget)
    before = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    nb = nbformat.read(path, as_version=4)
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, once it has exited
    print(f"{path.name}: {time.perf_counter() - start:.1f} s wall, "
          f"{used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime:.1f} s CPU, load {os.getloadavg()[0]:.1f}")
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors
    assert figures(nb) >= 1, f"{path.name} displayed no figure"
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == before, "the notebook wrote next to itself"
