"""Shared set-up of the probing examples: a toy run with the image positions captured, and the output folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, for _toy_setup

from _toy_setup import example_parser, parse_common  # noqa: E402,F401

# questions whose words do not name the queried colour: the probe must read it from the image
COLOUR_TEMPLATES = ("colour_of_shape", "colour_left_of")


def toy_trace(variant: str, n: int, max_new_tokens: int = 8, templates=COLOUR_TEMPLATES):
    """(runner, examples, trace) of a shipped toy on ``n`` test examples of ``templates`` whose queried colour
    exists; the image positions are captured at every layer."""
    from latentprobe import toy

    tm = toy.load(variant)
    ex = [e for e in tm.examples("test") if e.template in templates and e.attributes["target_colour"] != "none"][:n]
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), example_ids=[e.example_id for e in ex],
                       max_new_tokens=max_new_tokens, batch_size=64, progress=False, capture_positions="image")
    return runner, ex, trace


def out_dir(path):
    """The output folder (created), or None."""
    if path is None:
        return None
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_tables(out, **frames):
    """Each frame as ``<name>.csv`` (and ``.parquet`` where pyarrow is installed)."""
    if out is None:
        return
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False)
        try:
            frame.to_parquet(out / f"{name}.parquet", index=False)
        except ImportError:
            pass
