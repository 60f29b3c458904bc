"""Every notebook in notebooks/ executes without error (nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, require_shared

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# notebook 04 starts a Ray cluster and a Spark session (~100 s)
EXTRA_MARKS = {"04_ray_and_spark.ipynb": [pytest.mark.ray, pytest.mark.spark, pytest.mark.slow]}

pytestmark = pytest.mark.notebook


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=EXTRA_MARKS.get(p.name, [])) for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    require_shared()
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" for o in outputs), "no plot was shown"
