"""VSP spatial planning: a plan is read from the answer and walked on the map, as Mirage's test code does.

Mirage (github.com/UMass-Embodied-AGI/Mirage, commit 53f26de2682025e146781c5b198ec93bdfe4c4d6) scores a
VSP answer in ``src/test.py``: ``path_str = extract_boxed_content(answer)`` (``mathruler.grader``, github.com/
hiyouga/MathRuler, commit 14dadeb0e962ff707aba889c85979155d25245ce: the content of the *last* ``\\boxed{...}``
with nested braces balanced, stripped, or the string ``"None"`` when there is no closed box), then
``simulate_vsp(sample["map_desc"], path_str)`` (``src/task.py``): the text is upper-cased and its letters
``U``, ``D``, ``R``, ``L`` are the moves (so ``"LEFT"`` is one ``L`` and ``"DOWN"`` one ``D``; every other
character is ignored); the walk starts on the cell valued 1; a move off the grid is skipped; entering a
cell valued -1 (a hole) fails at once; the plan succeeds when the walk ends on the cell valued 2. Mirage's
accuracy is the share of successes; ``invalid`` never fires there (no other letter survives the parse).

VSP's test file stores no answer, only ``map_desc``; for this scorer the *gold* of an example is its map
(the grid as JSON text, or a nested list). :func:`vsp_gold` makes it from a loaded example; a study with
``scorer = "vsp_plan"`` does that itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from latentprobe.scoring._text import ScoringError
from latentprobe.scoring.scorers import Score

__all__ = ["VSP_MOVES", "VspOutcome", "VspPlanScorer", "extract_boxed", "parse_vsp_plan", "simulate_vsp", "vsp_gold"]

#: The moves as (row, column) steps (Mirage's ``ACTION_MAP``, one letter each).
VSP_MOVES: dict[str, tuple[int, int]] = {"L": (0, -1), "D": (1, 0), "R": (0, 1), "U": (-1, 0)}

_OPEN = "\\boxed{"


def extract_boxed(text: str | None) -> str | None:
    """The content of the last ``\\boxed{...}`` (braces balanced, stripped), or None without a closed box.

    The rule of ``mathruler.grader.extract_boxed_content``, which returns the string ``"None"`` where
    this returns None.

    Parameters
    ----------
    text : str or None
        The answer.

    Returns
    -------
    str or None

    Examples
    --------
    >>> extract_boxed(r"first \\boxed{U} then \\boxed{ L,{D} }")
    'L,{D}'
    >>> extract_boxed(r"\\boxed{L, D") is None
    True
    """
    text = text or ""
    start = text.rfind(_OPEN)
    if start == -1:
        return None
    depth = 0
    content = text[start + len(_OPEN):]
    for i, char in enumerate(content):
        depth += (char == "{") - (char == "}")
        if depth == -1:
            return content[:i].strip()
    return None


def parse_vsp_plan(text: str | None) -> tuple[str, ...]:
    """The moves of a plan's text: its letters U, D, R, L after upper-casing, in order (Mirage's rule).

    Parameters
    ----------
    text : str or None
        The boxed plan (see :func:`extract_boxed`).

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> parse_vsp_plan("Left, down, R")
    ('L', 'D', 'R')
    """
    return tuple(c for c in str(text or "").upper() if c in VSP_MOVES)


@dataclass(frozen=True)
class VspOutcome:
    """A walk of a plan on a VSP map.

    Parameters
    ----------
    success : bool
        The walk ended on the goal (2) without entering a hole (-1).
    status : str
        ``"Reached goal"``, ``"Fell in hole"`` or ``"Did not reach goal"`` (Mirage's words).
    final : tuple of int
        The (row, column) where the walk stopped (the hole, when it fell).
    """

    success: bool
    status: str
    final: tuple[int, int]


def _grid(map_desc: Any, where: str) -> list[list[int]]:
    if isinstance(map_desc, str):
        try:
            map_desc = json.loads(map_desc)
        except json.JSONDecodeError as exc:
            raise ScoringError(f"{where}: the map {map_desc!r:.60} is not JSON ({exc.msg}); give VSP's map_desc, "
                               "e.g. '[[1, 0], [-1, 2]]'.") from None
    if (not isinstance(map_desc, Sequence) or isinstance(map_desc, str) or not map_desc
            or not all(isinstance(r, Sequence) and not isinstance(r, str) and len(r) == len(map_desc[0]) and r
                       for r in map_desc)):
        raise ScoringError(f"{where}: the map {map_desc!r:.60} is not a non-empty grid of equal rows; give VSP's "
                           "map_desc (a list of rows of cell values 0, 1 start, 2 goal, -1 hole).")
    grid = [[int(v) for v in row] for row in map_desc]
    if not any(1 in row for row in grid):
        raise ScoringError(f"{where}: the map {grid} has no start cell (value 1); VSP maps have one.")
    return grid


def simulate_vsp(map_desc: Any, moves: Sequence[str] | str, *, where: str = "simulate_vsp()") -> VspOutcome:
    """Walk ``moves`` on ``map_desc`` as Mirage's ``simulate_vsp`` does (see the module docstring).

    Parameters
    ----------
    map_desc : list of lists, or str
        The grid (JSON text accepted): 1 start, 2 goal, -1 hole, 0 free.
    moves : sequence of str, or str
        Moves ``"U" "D" "L" "R"``, or a plan's text (read with :func:`parse_vsp_plan`).
    where : str
        Where the map comes from, for error messages.

    Returns
    -------
    VspOutcome

    Raises
    ------
    ScoringError
        A map that is not a grid or has no start cell.

    Examples
    --------
    >>> grid = [[2, -1, 1], [0, 0, 0]]
    >>> simulate_vsp(grid, "D L L U").status, simulate_vsp(grid, "L").status, simulate_vsp(grid, "UUR").final
    ('Reached goal', 'Fell in hole', (0, 2))
    """
    grid = _grid(map_desc, where)
    steps = parse_vsp_plan(moves) if isinstance(moves, str) else parse_vsp_plan("".join(moves))
    r, c = next((i, row.index(1)) for i, row in enumerate(grid) if 1 in row)
    for move in steps:
        dr, dc = VSP_MOVES[move]
        nr, nc = r + dr, c + dc
        if not (0 <= nr < len(grid) and 0 <= nc < len(grid[0])):
            continue
        r, c = nr, nc
        if grid[r][c] == -1:
            return VspOutcome(False, "Fell in hole", (r, c))
    goal = grid[r][c] == 2
    return VspOutcome(goal, "Reached goal" if goal else "Did not reach goal", (r, c))


def vsp_gold(example: Any) -> str:
    """The gold :class:`VspPlanScorer` reads for a VSP example: its ``map_desc`` as JSON text.

    Parameters
    ----------
    example : Example or mapping
        A :func:`latentprobe.data.load_benchmark` ``"vsp"`` record (``attributes["map_desc"]``), or a
        mapping with ``map_desc`` (a line of Mirage's ``test_direct.jsonl``).

    Returns
    -------
    str

    Raises
    ------
    ScoringError
        An example without ``map_desc``.

    Examples
    --------
    >>> vsp_gold({"map_id": "1", "map_desc": [[1, 2]]})
    '[[1, 2]]'
    """
    attrs = getattr(example, "attributes", example)
    found = attrs.get("map_desc") if hasattr(attrs, "get") else None
    if found is None:
        eid = getattr(example, "example_id", None)
        raise ScoringError(f"example {eid!r}: no map_desc to walk a plan on; the vsp_plan scorer needs VSP data "
                           "(benchmark = \"vsp\", Mirage's test_direct.jsonl).")
    return json.dumps(_grid(found, f"example {getattr(example, 'example_id', None)!r}, map_desc"))


class VspPlanScorer:
    """Score a VSP plan by walking it on the map (Mirage's ``simulate_vsp``; see the module docstring).

    The gold is the example's map (JSON text or a nested list; :func:`vsp_gold`). ``correct`` is
    whether the last boxed plan reaches the goal; an answer without a closed ``\\boxed{...}`` is
    unreadable (None), which every accuracy here counts as wrong, as Mirage does. ``parsed`` is the
    moves read, ``method`` Mirage's status (``"Reached goal"``, ``"Fell in hole"``,
    ``"Did not reach goal"``) or ``"no_box"``.

    Mirage reads the box in everything generated after ``<|im_start|>assistant``; a study scores the trace's
    answer (the text after the last latent segment), which differs only if a model boxes a plan before its latents.

    Examples
    --------
    >>> s = VspPlanScorer()
    >>> s.score(r"The plan is \\boxed{D, L, L, U}", "[[2, -1, 1], [0, 0, 0]]")
    Score(correct=True, parsed='DLLU', method='Reached goal')
    >>> s.score(r"\\boxed{LEFT}", [[2, -1, 1], [0, 0, 0]])
    Score(correct=False, parsed='L', method='Fell in hole')
    >>> s.score("go left", "[[2, -1, 1], [0, 0, 0]]")
    Score(correct=None, parsed=None, method='no_box')
    """

    def score(self, answer: str | None, gold: str | Sequence[Sequence[int]], example: object = None) -> Score:
        """Score one answer (see the class docstring).

        Parameters
        ----------
        answer : str or None
            The decoded answer.
        gold : str or list of lists
            The example's map.
        example : object
            The example (its id or record), for messages.

        Returns
        -------
        Score

        Raises
        ------
        ScoringError
            A gold that is not a VSP map.
        """
        eid = example.get("example_id", example) if isinstance(example, dict) else example
        where = "vsp_plan scorer" + ("" if eid is None else f", example {eid!r:.40}") + ", gold"
        grid = _grid(gold, where)
        boxed = extract_boxed(answer)
        if boxed is None:
            return Score(None, None, "no_box")
        moves = parse_vsp_plan(boxed)
        out = simulate_vsp(grid, moves, where=where)
        return Score(out.success, "".join(moves), out.status)
