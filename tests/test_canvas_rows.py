"""The live canvas normalises rows as the library does (attnviz.capture.records): a row by its own log-sum-exp, so
it is a distribution whatever the forward pass recorded; a column by the recorded log-sum-exp of each row.

The payload's recorded log-normalisers are shifted by hand, as a forward pass that summed its energies in
another order would shift them (by far less): a row must still sum to 1, a column must follow the shifted values.
The canvas script is loaded as it is in the app (attnviz.viz.canvas.page_script) into a bare Chromium page."""

from pathlib import Path

import pytest
import torch

from attnviz.analysis.hover import grid_tables, hover_payload
from attnviz.capture.records import CrissCrossAttentionRecord, PositionAttentionRecord

pytestmark = pytest.mark.browser

GRID_HW, CELL = (5, 7), 8
IMAGE_HW = (GRID_HW[0] * CELL, GRID_HW[1] * CELL)
SHIFT = 0.25  # added to every recorded log-normaliser: a recorded-L row would sum to exp(-0.25) = 0.78
# the page computes in float64 from float32 projections, the library in float32 (attnviz.analysis.hover)
RELATIVE = 1e-5

_RENDER = """async ({script, data}) => {
  const url = URL.createObjectURL(new Blob([script], {type: "text/javascript"}));
  const draw = (await import(url)).default;
  const parent = document.getElementById("parent");
  draw({data, parentElement: parent, setTriggerValue: () => {}});
  return JSON.parse(parent.querySelector(".readout").dataset.view);
}"""


def _records():
    torch.manual_seed(0)
    n, width = GRID_HW[0] * GRID_HW[1], 6
    query, key = torch.randn(1, n, width) * 4, torch.randn(1, n, width) * 4  # energies of tens
    energies = query[0].double() @ key[0].double().T
    full = torch.logsumexp(energies, 1)[None].float() + SHIFT
    pam = PositionAttentionRecord("pam", query, key, full, *GRID_HW, alpha=0.1)
    cross = torch.zeros(1, n)
    for i in range(n):
        h, w = divmod(i, GRID_HW[1])
        on_cross = [j for j in range(n) if divmod(j, GRID_HW[1])[0] == h or divmod(j, GRID_HW[1])[1] == w]
        cross[0, i] = float(torch.logsumexp(energies[i, on_cross], 0)) + SHIFT
    return {"pam": pam, "cross": CrissCrossAttentionRecord("cca", query, key, cross, *GRID_HW, alpha=0.1)}


def _view(page, script, record, mode, cell):
    from attnviz.viz.canvas import attention_canvas_data  # the app's own data for the script

    tables = grid_tables(IMAGE_HW, GRID_HW)
    data = attention_canvas_data(
        version="1",
        photo="data:image/gif;base64,R0lGODlhAQABAAAAACw=",
        image_hw=IMAGE_HW,
        panels=[{**hover_payload(record, IMAGE_HW).data, "title": ""}],
        mode=mode,
        opacity=0.8,
        pixel=(tables["centre_x"][cell[1]], tables["centre_y"][cell[0]]),
        pins=[],
    )
    page.set_content('<div id="parent"><div class="attnviz-canvas"></div></div>')
    return page.evaluate(_RENDER, {"script": script, "data": data})


@pytest.mark.parametrize("kind", ["pam", "cross"])
def test_canvas_rows_sum_to_one_and_columns_follow_the_recorded_normalisers(kind):
    from attnviz.browser import CHROMIUM, chromium_page
    from attnviz.viz.canvas import page_script

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    record = _records()[kind]
    script = page_script(Path(__file__).resolve().parents[1] / "attnviz" / "app" / "attention_canvas.js")
    cell = (2, 3)
    index = cell[0] * GRID_HW[1] + cell[1]
    with chromium_page(60_000) as page:
        row = _view(page, script, record, "row", cell)
        column = _view(page, script, record, "column", cell)
    assert row["index"] == column["index"] == index
    assert row["total"] == pytest.approx(1.0, abs=1e-12)  # float64 in the page: a sum of at most 35 terms
    library_row = record.row(index).double()
    assert float(library_row.sum()) == pytest.approx(1.0, abs=1e-6)
    top_row, top_col, top_value = row["top"][0]
    assert top_value == pytest.approx(float(library_row.max()), rel=RELATIVE)
    assert float(library_row[top_row, top_col]) == pytest.approx(top_value, rel=RELATIVE)
    # a column: every row's entry exp(q_i . k_j - L_i) with the shifted, recorded L_i, summed here in float64
    energies = record.query[0].double() @ record.key[0, index].double()
    terms = torch.exp(energies - record.log_normaliser[0].double())
    if kind == "cross":  # only the queries on the key's row and column
        on_cross = [i for i in range(record.num_pixels) if i // GRID_HW[1] == cell[0] or i % GRID_HW[1] == cell[1]]
        terms = terms[on_cross]
    assert column["total"] == pytest.approx(float(terms.sum()), rel=RELATIVE)
    assert float(record.column(index).double().sum()) == pytest.approx(float(terms.sum()), rel=RELATIVE)
