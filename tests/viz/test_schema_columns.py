"""latentprobe.schema names exactly the columns the analyses emit (a rename on either side fails here)."""

from __future__ import annotations

import pytest

from latentprobe import schema as S
from latentprobe.probing import SCORE_COLUMNS
from latentprobe.stats import effects_frame


def _cols(df):
    return [str(c) for c in df.columns]


@pytest.mark.parametrize(
    ("fixture", "attr", "table"),
    [
        ("xz", "rows", S.XZ_ROWS),
        ("xz", "summary", S.XZ_SUMMARY),
        ("xz", "across", S.XZ_ACROSS),
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
        ("across", "summary", S.ACROSS_SUMMARY),
        ("across", "by_group", S.ACROSS_BY_GROUP),
        ("cka_features", None, S.CKA_AGAINST),
        ("norms", None, S.NORM_TABLE),
        ("collapse", None, S.COLLAPSE_TABLE),
    ],
)
def test_analysis_columns_equal_schema(request, fixture, attr, table):
    out = request.getfixturevalue(fixture)
    df = out if attr is None else getattr(out, attr)
    # nothing is dropped on the trained toy; ``dropped`` is typed with its columns all the same, and
    # XZResult.status (the same table, every example) is non-empty
    assert len(df) or attr == "dropped", f"{fixture}.{attr} is empty: the check would be vacuous"
    assert _cols(df) == list(table.COLUMNS)


def test_optional_columns_appear_with_groups(collapse_grouped):
    assert _cols(collapse_grouped) == list(S.COLLAPSE_TABLE.COLUMNS + S.COLLAPSE_TABLE.OPTIONAL)


def test_effects_frame_columns(med):
    assert _cols(effects_frame(list(med.effects.values()))) == list(S.EFFECTS.COLUMNS)


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


def test_every_column_has_a_meaning():
    tables = [v for v in vars(S).values() if isinstance(v, type) and issubclass(v, S.Table) and v is not S.Table]
    assert len(tables) == 17
    for t in tables:
        assert t.COLUMNS, t.__name__
        for c in t.COLUMNS + t.OPTIONAL:
            assert isinstance(c, str) and c.meaning and "\n" not in c.meaning, (t.__name__, c)
        assert len(set(t.COLUMNS + t.OPTIONAL)) == len(t.COLUMNS + t.OPTIONAL), t.__name__
