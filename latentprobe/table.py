"""The machinery of :mod:`latentprobe.schema`: a :class:`Column` (a name with a dtype and a meaning)
and a :class:`Table` (a declaration of columns that builds and checks DataFrames). The tables
themselves are declared in :mod:`latentprobe.schema`, and only there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pandas as pd

from latentprobe.errors import InputError, SchemaError

__all__ = ["DTYPES", "Column", "Table"]

#: The dtypes a column may declare (pandas dtype strings; ``"Int64"`` is pandas' nullable integer).
DTYPES: tuple[str, ...] = ("str", "object", "int64", "Int64", "float64", "bool")


class Column(str):
    """A column name (a ``str``) with its pandas ``dtype`` and a one-line ``meaning``.

    ``optional`` columns appear only with some arguments; ``also`` lists dtypes accepted when the
    values cannot take ``dtype`` (probe cells keyed by names instead of axis indices).
    """

    meaning: str
    dtype: str
    optional: bool
    also: tuple[str, ...]

    def __new__(cls, name: str, dtype: str, meaning: str, *, optional: bool = False,
                also: tuple[str, ...] = ()) -> Column:
        """A column of a :class:`Table`.

        Parameters
        ----------
        name : str
            The column's name.
        dtype : str
            Its dtype, one of :data:`DTYPES`.
        meaning : str
            What it holds, in one line.
        optional : bool
            Whether a table may lack it.
        also : tuple[str, ...]
            Further dtypes accepted when a table is checked.

        Returns
        -------
        Column
        """
        bad = [d for d in (dtype, *also) if d not in DTYPES]
        if bad:
            raise InputError(f"Column {name!r}: dtype {bad[0]!r} is not one of {DTYPES}.")
        self = super().__new__(cls, name)
        self.meaning, self.dtype, self.optional, self.also = meaning, dtype, optional, tuple(also)
        return self

    def but(self, **changes: Any) -> Column:
        """The same column with some of ``dtype``, ``meaning``, ``optional``, ``also`` changed.

        Returns
        -------
        Column
            A copy with ``changes``.
        """
        kw = {"dtype": self.dtype, "meaning": self.meaning, "optional": self.optional, "also": self.also, **changes}
        return Column(str(self), kw.pop("dtype"), kw.pop("meaning"), **kw)

    def __repr__(self) -> str:
        return str.__repr__(self)

    def __reduce__(self):  # pickles (and deep-copies) as a plain str
        return (str, (str(self),))


def _same_dtype(actual: Any, declared: str) -> bool:
    if declared == "object":
        return actual == object
    return actual == pd.api.types.pandas_dtype(declared)


class Table:
    """Base class of a table's declaration; subclasses declare :class:`Column` attributes in order."""

    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    OPTIONAL: ClassVar[tuple[Column, ...]] = ()
    DTYPES: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls) -> None:
        cols = [v for k, v in vars(cls).items() if isinstance(v, Column) and k.isupper()]
        cls.COLUMNS = tuple(c for c in cols if not c.optional)
        cls.OPTIONAL = tuple(c for c in cols if c.optional)
        cls.DTYPES = {str(c): c.dtype for c in cols}

    def __init__(self) -> None:
        raise InputError(f"{type(self).__name__} is a declaration of columns; use its attributes and class "
                         "methods (frame, empty, check), not an instance.")

    @classmethod
    def _declared(cls) -> dict[str, Column]:
        return {str(c): c for c in cls.COLUMNS + cls.OPTIONAL}

    @classmethod
    def empty(cls) -> pd.DataFrame:
        """A frame with no rows and the required columns, typed.

        Returns
        -------
        pandas.DataFrame
            No rows, every column with its dtype.
        """
        return pd.DataFrame({str(c): pd.Series([], dtype=c.dtype) for c in cls.COLUMNS})

    @classmethod
    def frame(cls, records: Iterable[Mapping[str, Any]] | Mapping[str, Any] | pd.DataFrame = ()) -> pd.DataFrame:
        """The table built from ``records`` (row dicts, a dict of columns, or a DataFrame).

        The result has the required columns and the optional ones present in ``records``, in the
        declared order, each cast to its declared dtype (``None`` becomes NaN in ``str`` columns).

        Parameters
        ----------
        records : Iterable[Mapping[str, Any]] | Mapping[str, Any] | pd.DataFrame
            Rows (mappings), one mapping of columns, or a frame.

        Returns
        -------
        pandas.DataFrame
            The columns in order, each with its dtype.

        Raises
        ------
        SchemaError
            When ``records`` hold a column the table does not declare, lack a required one (an empty
            input is the empty table), or hold values that cannot take a column's dtype.
        """
        if isinstance(records, pd.DataFrame):
            df = records
        elif isinstance(records, Mapping):
            df = pd.DataFrame(dict(records))
        else:
            rows = list(records)
            df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
        declared = cls._declared()
        extra = [str(c) for c in df.columns if c not in declared]
        missing = [str(c) for c in cls.COLUMNS if c not in df.columns]
        if extra or (missing and len(df)):
            raise SchemaError(f"{cls.__name__}: " + "; ".join(
                ([f"undeclared column(s) {extra}"] if extra else [])
                + ([f"missing column(s) {missing}"] if missing and len(df) else []))
                + f"; the table's columns are {list(declared)} (declared in latentprobe/schema.py).")
        out = {}
        for name, col in declared.items():
            if name in df.columns:
                out[name] = cls._cast(df[name], col)
            elif not col.optional:
                out[name] = pd.Series([], dtype=col.dtype)
        return pd.DataFrame(out, index=df.index if len(df) else None)

    @classmethod
    def _cast(cls, values: pd.Series, col: Column) -> pd.Series:
        if any(_same_dtype(values.dtype, d) for d in (col.dtype, *col.also)):
            return values
        for dtype in (col.dtype, *col.also):
            try:
                return values.astype(dtype)
            except (ValueError, TypeError) as err:
                last = err
        raise SchemaError(f"{cls.__name__}: column {str(col)!r} holds values that cannot be {col.dtype} "
                          f"({last}); first values: {values.head(3).tolist()}.")

    @classmethod
    def check(cls, frame: pd.DataFrame) -> None:
        """Refuse a frame whose columns (names, order) or dtypes differ from the declaration.

        Parameters
        ----------
        frame : pd.DataFrame
            A table.

        Raises
        ------
        SchemaError
            Naming the table, the missing, undeclared and out-of-order columns and the wrong dtypes.
        """
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(f"{cls.__name__}: expected a pandas DataFrame, got {type(frame).__name__}.")
        declared = cls._declared()
        cols = [str(c) for c in frame.columns]
        problems = []
        missing = [str(c) for c in cls.COLUMNS if c not in cols]
        extra = [c for c in cols if c not in declared]
        if missing:
            problems.append(f"missing column(s) {missing}")
        if extra:
            problems.append(f"undeclared column(s) {extra}")
        order = [c for c in declared if c in cols]
        if not missing and not extra and cols != order:
            problems.append(f"columns in the order {cols}, declared {order}")
        for c in cols:
            col = declared.get(c)
            if col is not None and not any(_same_dtype(frame[c].dtype, d) for d in (col.dtype, *col.also)):
                problems.append(f"column {c!r} has dtype {frame[c].dtype}, declared {col.dtype}"
                                + (f" (or {', '.join(col.also)})" if col.also else ""))
        if problems:
            raise SchemaError(f"{cls.__name__}: " + "; ".join(problems) + f"; build the table with "
                              f"{cls.__name__}.frame(...) or fix the analysis (or the declaration in "
                              "latentprobe/schema.py).")
