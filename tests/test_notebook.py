"""examples/your_model.ipynb runs top to bottom in a real Jupyter kernel and shows what it promises."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_your_model_notebook_runs_and_draws_a_row_of_s_the_live_view_and_the_se_weights():
    notebook = nbformat.read(ROOT / "examples" / "your_model.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "pam pam" in text and "se se" in text, text  # found without running the model
    assert "pam pam verified" in text and "se se verified" in text, text  # and verified by reconstruction
    assert "S is 2700 x 2700; row 1230 sums to 1.000000" in text, text
    assert "32 channel weights between" in text, text
    figures = [
        o
        for o in outputs
        if o.output_type in ("display_data", "execute_result") and "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    assert len(figures) == 2
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1  # the live view of the same module (attnviz.notebook.show)
    assert "pin (300, 150): cell (18, 37), its row sums to 1.000000" in text, text  # (150 // 8, 300 // 8)
    heatmap = figures[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["z"]["shape"].replace(" ", "") == "45,60"  # plotly's typed array
