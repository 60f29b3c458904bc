"""The notebooks in notebooks/: committed as notebooks/make_notebooks.py writes them, executed (outputs
stored, small), and every one still executes without error (nbclient, on a copy in memory: the
committed outputs do not change)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import ROOT, require_shared

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# notebook 04 starts a Ray cluster and a Spark session (~100 s)
EXTRA_MARKS = {"04_ray_and_spark.ipynb": [pytest.mark.ray, pytest.mark.spark, pytest.mark.slow]}
# the committed notebooks with their outputs (PNG plots at 80 dpi, short tables)
MAX_TOTAL_BYTES = 1_500_000

pytestmark = pytest.mark.notebook


def _generator():
    pytest.importorskip("nbformat")
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "notebooks" / "make_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found"


def test_notebooks_are_generated_and_executed():
    """The committed notebooks hold make_notebooks.py's cells, each code cell executed (run
    `python notebooks/make_notebooks.py --execute` after editing), within the size budget."""
    nbformat = pytest.importorskip("nbformat")
    gen = _generator()
    assert sorted(f"{n}.ipynb" for n in gen.NOTEBOOKS) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        want = gen.numbered(gen.NOTEBOOKS[path.stem], path.stem)
        have = nbformat.read(path, as_version=4)
        assert [(c.id, c.cell_type, c.source) for c in have.cells] == [
            (c.id, c.cell_type, c.source) for c in want.cells
        ], f"{path.name} differs from make_notebooks.py: run `python notebooks/make_notebooks.py --execute`"
        code = [c for c in have.cells if c.cell_type == "code"]
        unrun = [c.id for c in code if c.get("execution_count") is None]
        assert not unrun, f"{path.name}: cells {unrun} have no stored outputs (run make_notebooks.py --execute)"
        errors = [c.id for c in code for o in c.outputs if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: cells {errors} stored an error"
        assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), f"{path.name}: no stored plot"
    total = sum(p.stat().st_size for p in NOTEBOOKS)
    assert total < MAX_TOTAL_BYTES, f"notebooks hold {total:,} bytes (budget {MAX_TOTAL_BYTES:,}): shrink the outputs"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=EXTRA_MARKS.get(p.name, [])) for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    require_shared()
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # execute afresh: nothing below comes from the stored outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell; the file is never written
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" for o in outputs), "no plot was shown"
