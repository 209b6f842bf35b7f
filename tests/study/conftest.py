"""The shipped toy study, run once per session: several test modules read its folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from latentprobe import cli

TOY = Path(__file__).resolve().parents[2] / "examples" / "studies" / "toy.toml"


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """``latentprobe run examples/studies/toy.toml`` into a fresh folder (tests may re-run or rebuild its report,
    which leaves its tables unchanged; none may change them)."""
    out = tmp_path_factory.mktemp("study") / "toy"
    res = CliRunner().invoke(cli.main, ["run", str(TOY), "--out", str(out), "--quiet"], standalone_mode=True,
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out
