"""Report page: Report.save is write (not nnsight's .save), wide tables scroll with a visible cue."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from latentprobe.report import Report


def test_save_writes_the_same_file_as_write(tmp_path):
    import nnsight  # noqa: F401  - nnsight gives every object a .save that only works inside a trace

    rep = Report("r", created="2026-01-01 00:00:00 UTC").add_text("hello")
    path = rep.save(tmp_path / "a" / "r.html")
    assert path == tmp_path / "a" / "r.html" and path.read_text() == rep.to_html()
    assert rep.write(tmp_path / "w.html").read_text() == path.read_text()


def test_wide_tables_scroll_sideways_with_a_hint():
    wide = pd.DataFrame(np.arange(3 * 24, dtype=float).reshape(3, 24) / 7,
                        columns=[f"a_rather_long_column_{i}" for i in range(24)])
    narrow = pd.DataFrame({"x": [1, 2], "y": [3.5, 4.5]})
    doc = Report("r").add_table(wide, caption="wide").add_table(narrow, caption="narrow").to_html()
    assert doc.count('class="scroll-hint"') == 1 and "24 columns: scroll the table sideways" in doc
    css = re.search(r"\.table-wrap \{([^}]*)\}", doc).group(1)
    assert "overflow-x: auto" in css and "max-width: 100%" in css
    assert ".table-wrap::-webkit-scrollbar" in doc  # a scrollbar that does not hide (overlay bars look like a cut)
