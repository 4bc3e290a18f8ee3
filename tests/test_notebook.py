"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (quick mode)."""
import json
import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "quickstart.ipynb")


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    # A kernel spec of our own, for this very interpreter: no user-installed kernel needed, and
    # never a "python3" spec elsewhere on the machine that points at another Python.
    spec = tmp_path / "jupyter" / "kernels" / "puffjax-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "puffjax test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PUFFJAX_QUICK", "1")  # the notebook trains two epochs instead of 1M steps
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__import__("puffjax").__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))  # the puffjax under test
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="puffjax-test", timeout=300,
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError naming the cell if any cell fails

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the learning curves and the value targets
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any('src="data:image/gif;base64,' in h for h in html)  # the rollout GIF, inline
    text = "".join(o.get("text", "") for o in outputs)
    assert "quick mode: True" in text and "max |custom call - reference|" in text
    runs = os.listdir(work / "runs")
    assert len(runs) == 1 and os.path.exists(work / "runs" / runs[0] / "video.gif")
    assert (work / "cartpole.gif").exists() and (work / "curves.png").exists()
