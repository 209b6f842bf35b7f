"""The VSP plan scorer against an independent transcription of Mirage's test code, on the fixture maps."""

from __future__ import annotations

import json
import random
from collections import deque

import pytest

from latentprobe.scoring import ScoringError, VspPlanScorer, scorer_config, scorer_from_name, vsp_gold
from latentprobe.data import load_benchmark
from tests.data import builders as B

# ---- Mirage's scoring, transcribed from its published code (not imported from latentprobe):
# github.com/UMass-Embodied-AGI/Mirage @ 53f26de2682025e146781c5b198ec93bdfe4c4d6, src/test.py and src/task.py;
# extract_boxed_content from github.com/hiyouga/MathRuler @ 14dadeb0e962ff707aba889c85979155d25245ce,
# mathruler/grader.py.

ACTION_MAP = {"LEFT": (0, -1), "DOWN": (1, 0), "RIGHT": (0, 1), "UP": (-1, 0),
              "L": (0, -1), "D": (1, 0), "R": (0, 1), "U": (-1, 0)}


def extract_boxed_content(text):
    depth = 0
    start_pos = text.rfind(r"\boxed{")
    end_pos = -1
    if start_pos != -1:
        content = text[start_pos + len(r"\boxed{"):]
        for i, char in enumerate(content):
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
            if depth == -1:
                end_pos = i
                break
    if end_pos != -1:
        return content[:end_pos].strip()
    return "None"


def parse_action_sequence(path_str):
    path_str = path_str.upper()
    return [char for char in list(path_str) if char in ["U", "D", "R", "L"]]


def mirage_simulate_vsp(map_desc, path_str):
    action_sequence = parse_action_sequence(path_str)
    start = None
    for r, row in enumerate(map_desc):
        for c, val in enumerate(row):
            if val == 1:
                start = (r, c)
                break
        if start is not None:
            break
    current_position = start
    for action in action_sequence:
        if action not in ACTION_MAP:
            return {"success": False, "status": "Invalid action", "invalid": True}
        dr, dc = ACTION_MAP[action]
        new_r, new_c = current_position[0] + dr, current_position[1] + dc
        if new_r < 0 or new_r >= len(map_desc) or new_c < 0 or new_c >= len(map_desc[0]):
            continue
        current_position = (new_r, new_c)
        if map_desc[new_r][new_c] == -1:
            return {"success": False, "status": "Fell in hole", "invalid": False}
    final_r, final_c = current_position
    if map_desc[final_r][final_c] == 2:
        return {"success": True, "status": "Reached goal", "invalid": False}
    return {"success": False, "status": "Did not reach goal", "invalid": False}


def mirage_correct(answer, map_desc):
    return mirage_simulate_vsp(map_desc, extract_boxed_content(answer))["success"]


# ---- helpers of the test


def shortest_plan(grid):
    """A shortest safe plan (breadth-first search), as letters."""
    start = next((r, row.index(1)) for r, row in enumerate(grid) if 1 in row)
    seen, queue = {start: ""}, deque([start])
    while queue:
        r, c = queue.popleft()
        if grid[r][c] == 2:
            return seen[(r, c)]
        for a, (dr, dc) in (("U", (-1, 0)), ("D", (1, 0)), ("L", (0, -1)), ("R", (0, 1))):
            nr, nc = r + dr, c + dc
            if 0 <= nr < len(grid) and 0 <= nc < len(grid[0]) and grid[nr][nc] != -1 and (nr, nc) not in seen:
                seen[(nr, nc)] = seen[(r, c)] + a
                queue.append((nr, nc))
    raise AssertionError(f"no path on {grid}")


WORDS = {"U": "Up", "D": "down", "L": "LEFT", "R": "right"}


def render(plan, style):
    if style == 0:
        return ", ".join(plan)
    if style == 1:
        return " -> ".join(WORDS[a] for a in plan)
    return "".join(plan).lower()


@pytest.fixture(scope="module")
def vsp_examples(tmp_path_factory):
    return load_benchmark("vsp", B.vsp(tmp_path_factory.mktemp("vsp")))


def test_the_fixture_maps_are_what_the_loader_keeps(vsp_examples):
    assert [json.loads(vsp_gold(e)) for e in vsp_examples] == list(B.VSP_MAPS.values())
    assert len({json.dumps(m) for m in B.VSP_MAPS.values()}) == 4


def test_gold_plans_reach_the_goal_as_mirage_scores_them(vsp_examples):
    scorer = scorer_from_name("vsp_plan")
    n = 0
    for e in vsp_examples:
        grid, gold = e.attributes["map_desc"], vsp_gold(e)
        plan = shortest_plan(grid)
        for style in range(3):
            answer = f"I go around the holes. \\boxed{{{render(plan, style)}}}"
            s = scorer.score(answer, gold, {"example_id": e.example_id})
            assert mirage_correct(answer, grid) is True and s.correct is True and s.parsed == plan, (e.example_id, answer)
            n += 1
        # the gold plan with one move dropped does not reach the goal, in both readings
        short = f"\\boxed{{{plan[:-1]}}}"
        assert scorer.score(short, gold).correct is False and mirage_correct(short, grid) is False
    assert n == 12


def test_random_plans_agree_with_mirage_on_every_answer(vsp_examples):
    rng = random.Random(0)
    scorer = VspPlanScorer()
    statuses, n = {}, 0
    for e in vsp_examples:
        grid, gold = e.attributes["map_desc"], vsp_gold(e)
        for _ in range(500):
            plan = "".join(rng.choice("UDLR") for _ in range(rng.randint(0, 8)))
            if rng.random() < 0.3:  # the gold plan with a random detour (off-grid moves, holes, overshoots)
                gold_plan, cut = shortest_plan(grid), rng.randint(0, 4)
                plan = gold_plan[:cut] + plan[:rng.randint(0, 3)] + gold_plan[cut:]
            body = render(plan, rng.randrange(3))
            kind = rng.randrange(6)
            answer = {0: f"\\boxed{{{body}}}", 1: f"Plan: {body}",  # no box
                      2: f"\\boxed{{R}} first, then \\boxed{{{body}}}",  # the last box counts
                      3: f"\\boxed{{ {{{body}}} }}",  # nested braces
                      4: f"\\boxed{{{body}",  # an unclosed box
                      5: f"xyz \\boxed{{{body} NOTE}} ok"}[kind]  # other letters in the box
            ref = mirage_simulate_vsp(grid, extract_boxed_content(answer))
            s = scorer.score(answer, gold, e.example_id)
            assert bool(s.correct) == ref["success"], (e.example_id, answer, s, ref)
            if s.correct is not None:
                assert s.method == ref["status"]
            else:  # no closed box: Mirage walks no move, and the start is never the goal
                assert ref["status"] == "Did not reach goal" and extract_boxed_content(answer) == "None"
            statuses[s.method] = statuses.get(s.method, 0) + 1
            n += 1
    assert n == 2000
    # every outcome occurs, so the agreement is not the agreement of one constant
    assert set(statuses) == {"Reached goal", "Fell in hole", "Did not reach goal", "no_box"}
    assert statuses["Reached goal"] >= 50 and statuses["Fell in hole"] >= 50


def test_bad_maps_and_examples_are_named():
    with pytest.raises(ScoringError, match=r"example 'vsp/level3/1', gold: the map .* no start cell"):
        VspPlanScorer().score("\\boxed{U}", [[0, 2]], {"example_id": "vsp/level3/1"})
    with pytest.raises(ScoringError, match="is not JSON"):
        VspPlanScorer().score("\\boxed{U}", "B")
    with pytest.raises(ScoringError, match="no map_desc"):
        vsp_gold({"map_id": "3"})
    assert scorer_config(VspPlanScorer()) == {"type": "vsp_plan"}
