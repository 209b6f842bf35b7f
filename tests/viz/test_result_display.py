"""Analysis results print as short summaries (tables by size and columns, arrays by shape) and render in Jupyter."""

import pytest


@pytest.mark.parametrize("name", ["xz", "zy", "med", "sweep", "within", "across"])
def test_results_print_a_summary_not_their_data(name, request):
    result = request.getfixturevalue(name)
    text = repr(result)
    assert text.startswith(type(result).__name__)
    assert len(text) < 2000 and len(text.splitlines()) < 16
    assert "DataFrame [" in text or "[" in text
    html = result._repr_html_()
    assert html.startswith("<div>") and type(result).__name__ in html


def test_a_table_is_described_by_its_size_and_columns(zy):
    line = next(l for l in repr(zy).splitlines() if l.strip().startswith("rows"))
    assert f"DataFrame [{len(zy.rows)} rows x {zy.rows.shape[1]} columns" in line
    assert "example_id" in line
