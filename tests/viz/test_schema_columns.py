"""latentprobe.schema declares exactly the columns and dtypes the analyses emit: every analysis' real
output passes ``Table.check``, so a column added, removed, renamed, reordered or retyped on either
side fails here."""

from __future__ import annotations

import numpy as np
import pytest

from latentprobe import schema as S
from latentprobe import schema_probing as SP
from latentprobe import schema_efficiency as SE
from latentprobe import schema_similarity as SS
from latentprobe.behavioural import behavioural_probe
from latentprobe.errors import LatentProbeError, SchemaError
from latentprobe.probing import SCORE_COLUMNS
from latentprobe.stats import effects_frame

# (fixture, attribute or None, table): every table an analysis returns
OUTPUTS = [
    ("xz", "rows", S.XZ_ROWS),
    ("xz", "summary", S.XZ_SUMMARY),
    ("xz", "across", S.XZ_ACROSS),
    ("xz", "by_prefix", S.XZ_BY_PREFIX),
    ("xz", "dropped", S.STATUS),
    ("xz", "status", S.STATUS),
    ("zy", "rows", S.ZY_ROWS),
    ("zy", "summary", S.ZY_SUMMARY),
    ("zy", "dropped", S.STATUS),
    ("med", "rows", S.MEDIATION_ROWS),
    ("med", "summary", S.MEDIATION_SUMMARY),
    ("med", "dropped", S.STATUS),
    ("sweep", "scores", S.PROBE_SCORES),
    ("comparison", None, S.PROBE_COMPARISON),
    ("within", "consecutive", S.CONSECUTIVE),
    ("step_table", None, S.STEP_MATRIX),
    ("across", "summary", S.ACROSS_SUMMARY),
    ("across", "by_group", S.ACROSS_BY_GROUP),
    ("cka_features", None, S.CKA_AGAINST),
    ("norms", None, S.NORM_TABLE),
    ("collapse", None, S.COLLAPSE_TABLE),
    ("collapse_grouped", None, S.COLLAPSE_TABLE),
    ("effects", None, S.EFFECTS),
    ("selection", None, S.LATENT_SELECTION),
    ("behavioural", "summary", S.BEHAVIOURAL_SUMMARY),
    ("behavioural", "tests", S.EFFECTS),
    ("behavioural", "rows", S.BEHAVIOURAL_ROWS),
    ("clean_answers", None, S.ANSWERS),
    ("zy_answers", None, S.ANSWER_ROWS),
    ("med_answers", None, S.ANSWER_ROWS),
    ("answer_summary", None, S.ANSWER_SUMMARY),
    ("attribution", "table", S.ATTRIBUTION),
    ("attribution", "summary", S.ATTRIBUTION_SUMMARY),
    ("positions", "scores", SP.PROBE_POSITIONS),
    ("positions", "gap", SP.PROBE_GAP),
    ("position_similarity", "table", SS.POSITION_SIMILARITY),
    ("position_similarity", "gap", SS.POSITION_SIMILARITY_GAP),
    ("efficiency", "costs", SE.DECODE_COSTS),
    ("efficiency", "summary", SE.DECODE_COST_SUMMARY),
]


@pytest.fixture(scope="module")
def positions():
    from latentprobe import probing, readouts
    from latentprobe import toy as _toy

    tm = _toy.load("blind")
    ex = tm.examples("test", 24)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=8, progress=False)
    pf = readouts.position_features(runner, trace, ("latents", "close", "image"), layers=[4])
    y = np.array([ex[i].attributes["count_red"] for i in pf.kept], dtype=float)
    return probing.probe_positions(pf.features, y, np.array([ex[i].image_id for i in pf.kept]), task="regression",
                                   layer_names=pf.layers, n_splits=2, control_types="shuffled", n_perm=0,
                                   probe=probing.LinearProbe(task="regression", Cs=(1.0,)))


@pytest.fixture(scope="module")
def position_similarity():
    from latentprobe import geometry, readouts
    from latentprobe import toy as _toy

    tm = _toy.load("mediated")
    ex = tm.examples("test", 12)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=8, progress=False)
    return geometry.position_similarity(readouts.position_features(runner, trace, ("latents", "close", "image"),
                                                                   layers=[0, 4]))


@pytest.fixture(scope="module")
def attribution():
    from latentprobe import toy as _toy
    from latentprobe.causal import attribution_patching

    tm = _toy.load("mediated")
    return attribution_patching(tm.runner(), _toy.toy_inputs(tm.examples("test", 3)), _toy.Counterfactual(seed=0),
                                verify_top=3)


@pytest.fixture(scope="module")
def clean_answers(toy):
    from latentprobe.analyses import Context

    _, runner, inputs = toy
    return Context(runner, inputs, max_new_tokens=16, progress=False).answers()


@pytest.fixture(scope="module")
def zy_answers(zy):
    from latentprobe.analyses import get_analysis

    return get_analysis("z_to_y").answers(zy)


@pytest.fixture(scope="module")
def med_answers(med):
    from latentprobe.analyses import get_analysis

    return get_analysis("decompose").answers(med)


@pytest.fixture(scope="module")
def answer_summary(clean_answers, zy_answers):
    import pandas as pd

    from latentprobe.study.answers import answer_summary as summarise

    return summarise(pd.concat([S.ANSWER_ROWS.frame(clean_answers.assign(condition="clean")[
        list(S.ANSWER_ROWS.COLUMNS)]), zy_answers], ignore_index=True))


@pytest.fixture(scope="module")
def step_table(within):
    return within.step_table()


@pytest.fixture(scope="module")
def effects(med):
    return effects_frame(list(med.effects.values()))


@pytest.fixture(scope="module")
def selection(toy):
    _, runner, inputs = toy
    return runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False).latent_selection().frame()


@pytest.fixture(scope="module")
def behavioural():
    from latentprobe.toy import load, toy_derived_inputs

    tm = load("mediated")
    original, derived = toy_derived_inputs(tm.examples("test", n=12))
    return behavioural_probe(tm.runner(), original, derived, max_new_tokens=8, batch_size=12, n_boot=50)


def _output(request, fixture, attr):
    out = request.getfixturevalue(fixture)
    return out if attr is None else getattr(out, attr)


@pytest.mark.parametrize(("fixture", "attr", "table"), OUTPUTS)
def test_analysis_output_matches_its_schema(request, fixture, attr, table):
    df = _output(request, fixture, attr)
    # nothing is dropped on the trained toy; ``dropped`` is typed with its columns all the same, and
    # XZResult.status (the same table, every example) is non-empty
    assert len(df) or attr == "dropped", f"{fixture}.{attr} is empty: the check would be vacuous"
    table.check(df)  # names, order and dtypes
    optional = [c for c in table.OPTIONAL if c in df.columns]
    assert [str(c) for c in df.columns] == list(table.COLUMNS) + optional


def test_every_table_is_checked_on_real_output():
    declared = {v for v in vars(S).values() if isinstance(v, type) and issubclass(v, S.Table) and v is not S.Table}
    assert declared - {t for _, _, t in OUTPUTS} == {S.PROBES_SKIPPED}  # written by the study's probes only
    beside = {v for v in vars(SP).values() if isinstance(v, type) and issubclass(v, S.Table) and v.__module__ == SP.__name__}
    assert beside == {SP.PROBE_POSITIONS, SP.PROBE_GAP} <= {t for _, _, t in OUTPUTS}
    similarity = {v for v in vars(SS).values() if isinstance(v, type) and issubclass(v, S.Table)
                  and v.__module__ == SS.__name__}
    # across_sources is written by the study's latent_similarity only (checked in tests/realformats)
    assert similarity - {t for _, _, t in OUTPUTS} == {SS.ACROSS_SOURCES}


@pytest.mark.parametrize("change", ["add", "remove", "retype", "reorder"])
def test_check_refuses_any_change(zy, change):
    df = zy.summary.copy()
    if change == "add":
        df["extra"] = 1.0
    elif change == "remove":
        df = df.drop(columns=[S.ZY_SUMMARY.P_VALUE])
    elif change == "retype":
        df[S.ZY_SUMMARY.N] = df[S.ZY_SUMMARY.N].astype("float64")
    else:
        df = df[list(reversed(df.columns))]
    with pytest.raises(SchemaError, match="ZY_SUMMARY") as err:
        S.ZY_SUMMARY.check(df)
    assert isinstance(err.value, LatentProbeError)
    named = {"add": "'extra'", "remove": "'p_value'", "retype": "'n' has dtype float64, declared int64",
             "reorder": "order"}[change]
    assert named in str(err.value)


def test_frame_builds_exactly_the_declared_table():
    T = S.XZ_ACROSS
    df = T.frame([{T.N: 3, T.STEP: 0, T.LAYER: 1, T.CENTER: False, T.MEAN_OFFDIAG: 0.5, T.CI_LOW: 0.25,
                   T.CI_HIGH: 0.75}])
    assert list(df.columns) == list(T.COLUMNS) and df.dtypes.astype(str).tolist() == [T.DTYPES[c] for c in T.COLUMNS]
    T.check(df)
    T.check(T.empty())
    T.check(T.frame([]))
    assert len(T.empty()) == 0
    with pytest.raises(SchemaError, match=r"undeclared column\(s\) \['typo'\]"):
        T.frame([{**df.iloc[0].to_dict(), "typo": 1}])
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['n'\]"):
        T.frame([{c: v for c, v in df.iloc[0].to_dict().items() if c != T.N}])
    with pytest.raises(SchemaError, match="'step' holds values that cannot be int64"):
        T.frame([{**df.iloc[0].to_dict(), T.STEP: "first"}])
    # optional columns are kept when present, left out when not
    C = S.COLLAPSE_TABLE
    row = {c: ("latent" if C.DTYPES[c] == "str" else 0.5) for c in C.COLUMNS}
    assert list(C.frame([row]).columns) == list(C.COLUMNS)
    assert list(C.frame([{**row, C.BETWEEN_GROUP_MEAN: 0.1}]).columns) == list(C.COLUMNS) + [C.BETWEEN_GROUP_MEAN]


def test_probe_cells_keyed_by_names_keep_their_keys():
    T = S.PROBE_SCORES
    row = {c: (0 if T.DTYPES[c] == "int64" else "x" if T.DTYPES[c] == "str" else 0.5) for c in T.COLUMNS}
    named = T.frame([{**row, T.STEP: "z0"}, {**row, T.STEP: "4"}])
    assert named[T.STEP].tolist() == ["z0", "4"]  # never turned into numbers
    T.check(named)
    assert T.frame([row])[T.STEP].dtype == np.int64


def test_effects_frame_columns(med):
    assert [str(c) for c in effects_frame(list(med.effects.values())).columns] == list(S.EFFECTS.COLUMNS)


def test_probe_score_constant_matches():
    assert tuple(SCORE_COLUMNS) == S.PROBE_SCORES.COLUMNS


def test_values_with_fixed_meaning(xz, zy, med, collapse, norms):
    assert set(xz.summary[S.XZ_SUMMARY.METRIC]) == set(S.XZ_METRICS)
    assert S.SOURCES[0] in set(xz.summary[S.XZ_SUMMARY.SOURCE])
    assert S.KEPT in set(xz.status[S.STATUS.REASON])
    assert set(zy.summary[S.ZY_SUMMARY.METRIC]) == set(S.ZY_METRICS)  # replay mode emits all six
    assert S.CONTROL_INTERVENTION in set(zy.summary[S.ZY_SUMMARY.INTERVENTION])
    assert S.RUN_MODE in set(zy.summary[S.ZY_SUMMARY.MODE])
    kinds = med.summary[S.MEDIATION_SUMMARY.KIND]
    assert set(kinds) == set(S.EFFECT_KINDS)
    effects = med.summary.loc[kinds == S.EFFECT_KINDS[0], S.MEDIATION_SUMMARY.EFFECT]
    assert list(effects) == list(S.EFFECT_NAMES) == list(med.effects)
    assert list(collapse[S.COLLAPSE_TABLE.CENTERING].unique()) == list(S.CENTERINGS)
    assert {S.SOURCES[0], S.SOURCES[1]} <= set(collapse[S.COLLAPSE_TABLE.SOURCE])
    assert S.SOURCES[2] in set(norms[S.NORM_TABLE.SOURCE])


def test_every_column_has_a_meaning_and_a_dtype():
    tables = [v for v in vars(S).values() if isinstance(v, type) and issubclass(v, S.Table) and v is not S.Table]
    assert len(tables) == 28
    for t in tables:
        assert t.COLUMNS, t.__name__
        for c in t.COLUMNS + t.OPTIONAL:
            assert isinstance(c, str) and c.meaning and "\n" not in c.meaning, (t.__name__, c)
            assert c.dtype in S.DTYPES and t.DTYPES[c] == c.dtype, (t.__name__, c)
        assert len(set(t.COLUMNS + t.OPTIONAL)) == len(t.COLUMNS + t.OPTIONAL), t.__name__
    with pytest.raises(LatentProbeError, match="dtype 'float'"):
        S.Column("x", "float", "a column with a dtype pandas spells otherwise")
