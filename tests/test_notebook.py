"""examples/tour.ipynb runs top to bottom and shows its graph, tables and reports inline."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("sklearn")

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(TOUR, as_version=4)
    assert all(not cell.get("outputs") and not cell.get("execution_count")
               for cell in notebook.cells if cell.cell_type == "code")


def test_the_tour_runs_and_displays_inline():
    from tinygrad_cnn.viz import find_renderer
    if find_renderer() is None:
        pytest.skip("no Graphviz renderer (pip install graphviz-pure)")
    notebook = nbformat.read(TOUR, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(TOUR.parent)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    bundles = [o.get("data", {}) for o in outputs if o.output_type == "execute_result"]
    assert any("image/svg+xml" in b and "<svg" in b["image/svg+xml"] for b in bundles)
    tables = [b["text/html"] for b in bundles if "text/html" in b]
    assert any("receptive field" in t for t in tables)          # summary
    assert any("max rel err" in t and "ok" in t for t in tables)  # gradcheck report
    assert any("LeakyScale" in t and "failed (bug)" in t for t in tables)  # localisation
    assert any(t.startswith("<iframe srcdoc=") and "tgViewer" in t for t in tables)  # tg.view
    accuracies = [b["text/plain"] for b in bundles if b.get("text/plain", "").startswith("[0.")]
    assert accuracies, "the training run printed no accuracies"


def test_a_kernel_started_off_path_names_cells_and_renders(monkeypatch):
    """A kernel whose PATH lacks the venv's bin (started by full path) still finds
    graphviz-pure beside its Python, and locations name the cell, not a temporary file."""
    import sys
    if not (Path(sys.executable).parent / "graphviz-pure").exists():
        pytest.skip("graphviz-pure is not installed beside this Python")
    monkeypatch.setenv("PATH", "/nonexistent")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in (
        "import numpy as np, tinygrad_cnn as tg\nfrom tinygrad_cnn.trace import call_site",
        "first = 1\nwhere = call_site()[0]\nwhere",
        "x = tg.Tensor(np.ones(3), requires_grad=True)\n(x * 2).sum().graph()")])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    where, graph = (cell.outputs[0]["data"] for cell in notebook.cells[1:])
    assert where["text/plain"] == "'In [2], line 2'"
    assert "<svg" in graph["image/svg+xml"]
