"""Semantic column types: what a column means, inferred from its Arrow type and its values.

Seven semantic types, each with the physical (Arrow/Parquet) types it may be stored as:

=============  ====================================================================
numeric        ``double`` — measurements, money, anything with decimals
integer        ``int64`` — counts and other whole numbers
boolean        ``bool`` — true/false, t/f (any case); yes/no, y/n or 0/1 when cast
categorical    ``string`` or ``int64`` (also ``bool``) — a small set of labels or codes
datetime       ``timestamp[...]`` or ``date32[day]``
text           ``string`` — free text (many distinct, multi-word values)
identifier     ``string`` or ``int64`` — row ids, UUIDs, e-mails: (nearly) unique, no numeric meaning
=============  ====================================================================

``infer_column`` picks a type; ``cast_column`` converts values to the physical type a semantic
type needs and reports the first value that does not convert. ``Schema`` is the JSON-serialisable
description of a table that the studio stores beside each Parquet version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataError

SEMANTIC_TYPES = ("numeric", "integer", "boolean", "categorical", "datetime", "text", "identifier")
SCHEMA_VERSION = 1

TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
# Words that make a text column boolean when inferred. yes/no and y/n are labels people read back
# ("yes" must not come back as "True"), so they stay categorical text unless a user casts them.
INFERRED_BOOLEAN_WORDS = ("true", "t", "false", "f")
# Exact spellings pyarrow's CSV reader turns into booleans while parsing (cheaper than a second pass).
CSV_TRUE_VALUES = ["true", "True", "TRUE"]
CSV_FALSE_VALUES = ["false", "False", "FALSE"]
# Non-ISO date spellings tried on text columns, in order; ISO 8601 is tried first by a plain cast.
DATETIME_FORMATS = tuple(
    f"{date}{time}"
    for date in ("%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y")
    for time in ("", " %H:%M", " %H:%M:%S")
)

# A number with thousands separators, as spreadsheets write them: 1,234 or -12,345,678.90.
THOUSANDS_GROUPED = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"

_SAMPLE = 2_000
_ID_NAME = re.compile(
    r"(^|[_\s.-])(id|uuid|guid|key)$|^(id|uuid|guid)([_\s.-]|$)|[a-z](Id|ID|Uuid|UUID|Key)$", re.IGNORECASE
)
_LEADING_ZERO = r"^\s*[+-]?0[0-9]"


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its name, semantic type, stored (physical) Arrow type, and whether it is excluded.

    ``inferred_type`` is what the engine inferred at ingest, kept so a UI can show "changed".
    ``spelling`` is, for a boolean column read from text, how the file wrote false and true
    (``("no", "yes")``, ``("FALSE", "TRUE")``): a boolean used as labels comes back as written.
    """

    name: str
    semantic_type: str
    physical_type: str
    excluded: bool = False
    inferred_type: str | None = None
    spelling: tuple[str, str] | None = None

    def to_json(self) -> dict:
        data = {
            "name": self.name,
            "semantic_type": self.semantic_type,
            "physical_type": self.physical_type,
            "excluded": self.excluded,
            "inferred_type": self.inferred_type,
        }
        if self.spelling:
            data["spelling"] = {"false": self.spelling[0], "true": self.spelling[1]}
        return data


@dataclass(frozen=True)
class Schema:
    """The columns of a data asset version, in file order.

    JSON shape (``to_json``/``from_json``)::

        {"version": 1,
         "columns": [{"name": "price", "semantic_type": "numeric", "physical_type": "double",
                      "excluded": false, "inferred_type": "numeric"}, ...]}
    """

    columns: tuple[ColumnSchema, ...]

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for position, column in enumerate(self.columns, 1):
            if not isinstance(column.name, str) or not column.name:
                raise DataError(f"Column {position} has no name.", code="invalid_schema", column=position)
            if column.name in seen:
                raise DataError(
                    f"Column {position} ({column.name!r}) has the name of column {seen[column.name]}.",
                    code="invalid_schema",
                    column=column.name,
                )
            seen[column.name] = position
            if column.semantic_type not in SEMANTIC_TYPES:
                raise DataError(
                    f"Column {column.name!r} has an unknown type {column.semantic_type!r}; the types are "
                    f"{', '.join(SEMANTIC_TYPES)}.",
                    code="invalid_schema",
                    column=column.name,
                )
            if not isinstance(column.excluded, bool):
                raise DataError(
                    f"Column {column.name!r}: 'excluded' must be true or false.",
                    code="invalid_schema",
                    column=column.name,
                )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def included(self) -> list[ColumnSchema]:
        return [c for c in self.columns if not c.excluded]

    def column(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise DataError(f"There is no column {name!r}.", code="unknown_column", column=name)

    def edited(self, *, types: Mapping[str, str] | None = None, exclude: Iterable[str] = ()) -> Schema:
        """A copy with some semantic types changed and some columns excluded (names must exist)."""
        types = dict(types or {})
        exclude = set(exclude)
        for name in [*types, *exclude]:
            self.column(name)
        return Schema(
            tuple(
                replace(c, semantic_type=types.get(c.name, c.semantic_type), excluded=c.excluded or c.name in exclude)
                for c in self.columns
            )
        )

    def to_json(self) -> dict:
        return {"version": SCHEMA_VERSION, "columns": [c.to_json() for c in self.columns]}

    @classmethod
    def from_json(cls, data: Mapping) -> Schema:
        """Parse the stored shape; a wrong shape raises ``DataError`` (code ``invalid_schema``)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("columns"), list):
            raise DataError("A schema is an object with a list of columns.", code="invalid_schema")
        if data.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise DataError(f"Unknown schema version {data.get('version')!r}.", code="invalid_schema")
        columns = []
        for position, item in enumerate(data["columns"], 1):
            if not isinstance(item, Mapping):
                raise DataError(
                    f"Column {position} of the schema is not an object.", code="invalid_schema", column=position
                )
            physical = item.get("physical_type", "")
            inferred = item.get("inferred_type")
            spelling = item.get("spelling")
            columns.append(
                ColumnSchema(
                    name=item.get("name"),
                    semantic_type=item.get("semantic_type"),
                    physical_type=physical if isinstance(physical, str) else "",
                    excluded=item.get("excluded", False),
                    inferred_type=inferred if inferred in SEMANTIC_TYPES else None,
                    spelling=_spelling_from_json(spelling),
                )
            )
        return cls(tuple(columns))


def _spelling_from_json(data) -> tuple[str, str] | None:
    if not isinstance(data, Mapping):
        return None
    false, true = data.get("false"), data.get("true")
    return (false, true) if isinstance(false, str) and isinstance(true, str) and false != true else None


# --- Physical types ------------------------------------------------------------------------------
def physical_type_for(semantic_type: str, current: pa.DataType) -> pa.DataType:
    """The Arrow type a column of ``current`` type is stored as once it has ``semantic_type``."""
    if semantic_type == "numeric":
        return pa.float64()
    if semantic_type == "integer":
        return pa.int64()
    if semantic_type == "boolean":
        return pa.bool_()
    if semantic_type == "datetime":
        if pa.types.is_timestamp(current) or pa.types.is_date32(current):
            return current
        return pa.timestamp("ms") if pa.types.is_date64(current) else pa.timestamp("us")
    if semantic_type == "categorical" and (pa.types.is_boolean(current) or current == pa.int64()):
        return current
    if semantic_type == "identifier" and current == pa.int64():
        return current
    if semantic_type in ("categorical", "identifier", "text"):
        return pa.string()
    raise ValueError(f"unknown semantic type {semantic_type!r}")


# --- Casting -------------------------------------------------------------------------------------
class CastError(Exception):
    """A value that does not convert: ``index`` is its 0-based position in the array cast."""

    def __init__(self, index: int, value: object) -> None:
        super().__init__(f"value {value!r} at index {index}")
        self.index = index
        self.value = value


def cast_column(
    array: pa.Array | pa.ChunkedArray, semantic_type: str, *, datetime_format: str | None = None
) -> pa.Array | pa.ChunkedArray:
    """Convert ``array`` to the physical type of ``semantic_type``; raise ``CastError`` at the first failure.

    Text is trimmed before it is read as a number, boolean or date. Booleans accept the words in
    ``TRUE_WORDS``/``FALSE_WORDS`` (any case) and, from numbers, only 0 and 1. A NaN becomes
    missing when cast to a non-float type. Datetimes read ISO 8601 text, or ``datetime_format``
    (a ``strptime`` format) when given. Integers never become datetimes (which epoch?).
    """
    source = array.type
    target = physical_type_for(semantic_type, source)
    if source == target:
        return array
    if pa.types.is_null(source):
        return (
            pa.nulls(len(array), target)
            if isinstance(array, pa.Array)
            else pa.chunked_array([pa.nulls(len(c), target) for c in array.chunks], target)
        )
    if pa.types.is_floating(source) and not pa.types.is_floating(target):
        array = pc.if_else(pc.is_nan(array), pa.scalar(None, source), array)
    if pa.types.is_string(source) or pa.types.is_large_string(source):
        if target != pa.string():
            array = pc.utf8_trim_whitespace(array)
            if pa.types.is_boolean(target):
                return _words_to_bool(array)
            if pa.types.is_timestamp(target) and datetime_format:
                return _strptime(array, datetime_format, target)
            if pa.types.is_timestamp(target):
                return _iso_to_timestamp(array)
            if pa.types.is_integer(target) or pa.types.is_floating(target):
                array = _without_thousands_separators(array)
    if pa.types.is_boolean(target) and (pa.types.is_integer(source) or pa.types.is_floating(source)):
        bad = pc.and_(pc.is_valid(array), pc.invert(pc.is_in(array, value_set=pa.array([0, 1], source))))
        _raise_first(array, bad)
        return pc.cast(array, target)
    if (pa.types.is_timestamp(target) or pa.types.is_date(target)) and not (
        pa.types.is_timestamp(source) or pa.types.is_date(source)
    ):
        _raise_first(array, pc.is_valid(array))  # numbers and booleans are not dates
    return _safe_cast(array, target)


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int:
    return pc.index(pc.fill_null(mask, False), True).as_py()


def _raise_first(array, bad_mask) -> None:
    index = _first_true(bad_mask)
    if index != -1:
        raise CastError(index, array[index].as_py())


def _words_to_bool(array):
    lowered = pc.utf8_lower(array)
    is_true = pc.is_in(lowered, value_set=pa.array(TRUE_WORDS))
    is_false = pc.is_in(lowered, value_set=pa.array(FALSE_WORDS))
    _raise_first(array, pc.and_(pc.is_valid(array), pc.invert(pc.or_(is_true, is_false))))
    return pc.if_else(pc.is_null(array), pa.scalar(None, pa.bool_()), is_true)


def _without_thousands_separators(array):
    """ "1,234.50" → "1234.50": a number written with thousands separators (only where every group
    after the first has three digits, so "1,5" or "12,34" are left alone and refused)."""
    grouped = pc.match_substring_regex(array, THOUSANDS_GROUPED)
    if not pc.any(grouped).as_py():
        return array
    return pc.if_else(grouped, pc.replace_substring(array, ",", ""), array)


def _strptime(array, fmt: str, target: pa.DataType):
    parsed = pc.strptime(array, format=fmt, unit="s", error_is_null=True)
    _raise_first(array, pc.and_(pc.is_valid(array), pc.is_null(parsed)))
    return pc.cast(parsed, target)


def _iso_to_timestamp(array):
    """ISO 8601 text to ``timestamp[us]``, or ``timestamp[us, tz=UTC]`` when the text has zone offsets."""
    sample = pc.drop_null(array.slice(0, _SAMPLE))
    with_zone = len(sample) > 0 and pc.any(pc.match_substring_regex(sample, r"(Z|[+-]\d\d:?\d\d)$")).as_py()
    return _safe_cast(array, pa.timestamp("us", tz="UTC") if with_zone else pa.timestamp("us"))


def _safe_cast(array, target: pa.DataType):
    try:
        return pc.cast(array, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Find the first value that fails: a prefix fails exactly when it contains it.
    lo, hi = 0, len(array)  # invariant: array[:lo] casts, array[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(array.slice(0, mid), target, safe=True)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    raise CastError(hi - 1, array[hi - 1].as_py())


# --- Inference -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inference:
    """An inferred semantic type, the physical type it needs, and the date format found, if any."""

    semantic_type: str
    physical_type: pa.DataType
    datetime_format: str | None = None


def infer_from_type(kind: pa.DataType) -> Inference | None:
    """The inference for types whose meaning needs no look at the values; None: read the column."""
    if pa.types.is_boolean(kind):
        return Inference("boolean", kind)
    if pa.types.is_floating(kind):
        return Inference("numeric", pa.float64())
    if pa.types.is_timestamp(kind) or pa.types.is_date32(kind):
        return Inference("datetime", kind)
    return None


def infer_column(name: str, column: pa.ChunkedArray | pa.Array, distinct: Callable[[], int] | None = None) -> Inference:
    """Infer the semantic type of one whole column (read one column at a time: memory stays bounded).

    * ``bool`` → boolean; floats → numeric; ``timestamp``/``date`` → datetime.
    * Integers → identifier when (nearly) all values are unique and either the name reads like an
      id (``id``, ``user_id``, ``customerId``, ``uuid``, ``key``) or the values are exactly a
      contiguous range (row numbers); categorical when there are ≥ 50 values but ≤ 10 distinct
      (codes, ratings); integer otherwise.
    * Text that is all true/false/t/f → boolean (yes/no and y/n stay categorical text, so labels
      keep their spelling); all whole numbers (no leading zeros,
      which would be lost: zip codes, phone numbers stay text) → integer, then the integer rules;
      all numbers → numeric; all ISO 8601 or one of ``DATETIME_FORMATS`` → datetime.
    * Other text: long values (mean > 50 characters) or mostly multi-word values with many distinct
      (> 1,000 or > 50 %) → text; ≥ 95 % distinct without spaces (≥ 10 values) → identifier;
      otherwise categorical.
    * A column with no values → text.

    ``distinct``, when given, returns the number of distinct non-null values (a caller that has
    them already saves a pass); it is called only when the rules need it.
    """
    if distinct is None:

        def distinct() -> int:
            return pc.count_distinct(decoded(column)).as_py()

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    valid = len(column) - column.null_count
    if valid == 0 or pa.types.is_null(kind):
        return Inference("text", pa.string())
    if pa.types.is_boolean(kind):
        return Inference("boolean", kind)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return Inference("numeric", pa.float64())
    if pa.types.is_integer(kind):
        return _infer_integer(name, column, valid, distinct)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return Inference("datetime", physical_type_for("datetime", kind))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _infer_text(name, column, valid, distinct)
    return Inference("text", pa.string())


def _infer_integer(name: str, column, valid: int, count_distinct: Callable[[], int]) -> Inference:
    distinct = count_distinct()
    if valid >= 10 and distinct >= 0.99 * valid:
        if _ID_NAME.search(name):
            return Inference("identifier", pa.int64())
        low, high = pc.min_max(column).values()
        if distinct == valid and high.as_py() - low.as_py() + 1 == valid:
            return Inference("identifier", pa.int64())
    if valid >= 50 and distinct <= 10:
        return Inference("categorical", pa.int64())
    return Inference("integer", pa.int64())


def decoded(column):
    """A dictionary-encoded column as plain values (other columns as they are)."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _mean_length(column) -> float:
    if pa.types.is_dictionary(column.type):
        # Lengths of the (few) dictionary values, looked up by index: no string is decoded.
        chunks = [pc.take(pc.utf8_length(c.dictionary), c.indices) for c in column.chunks]
        return pc.mean(pa.chunked_array(chunks, pa.int32())).as_py() or 0
    return pc.mean(pc.utf8_length(column)).as_py() or 0


def _infer_text(name: str, encoded, valid: int, count_distinct: Callable[[], int]) -> Inference:
    # Decide on a sample first: whole-column checks (which decode a dictionary column) run only
    # when the sample agrees.
    sample = pc.utf8_trim_whitespace(pc.drop_null(decoded(encoded.slice(0, 10 * _SAMPLE))).slice(0, _SAMPLE))
    if len(sample) == 0:
        sample = pc.utf8_trim_whitespace(pc.drop_null(decoded(encoded)).slice(0, _SAMPLE))
    column = _Lazy(encoded)

    def converts(semantic: str, fmt: str | None = None) -> bool:
        for candidate in (sample, column.plain):
            try:
                cast_column(candidate, semantic, datetime_format=fmt)
            except CastError:
                return False
        return True

    def converts_sample(semantic: str) -> bool:
        try:
            cast_column(sample, semantic)
        except CastError:
            return False
        return True

    words = pa.array(INFERRED_BOOLEAN_WORDS)
    if pc.all(pc.is_in(pc.utf8_lower(sample), value_set=words)).as_py() and converts("boolean"):
        return Inference("boolean", pa.bool_())
    if converts_sample("numeric"):
        leading_zero = pc.any(pc.match_substring_regex(column.plain, _LEADING_ZERO)).as_py()
        if not leading_zero and converts("integer"):
            as_integers = cast_column(column.plain, "integer")
            return _infer_integer(name, as_integers, valid, lambda: pc.count_distinct(as_integers).as_py())
        if not leading_zero and converts("numeric"):
            return Inference("numeric", pa.float64())
    elif pc.all(pc.match_substring_regex(sample, r"^\d")).as_py():
        if converts("datetime"):
            return Inference("datetime", cast_column(sample.slice(0, 1), "datetime").type)
        for fmt in DATETIME_FORMATS:
            if converts("datetime", fmt):
                return Inference("datetime", pa.timestamp("us"), fmt)

    distinct = count_distinct()
    ratio = distinct / valid
    mean_length = _mean_length(encoded)
    spaced = pc.mean(pc.cast(pc.match_substring_regex(sample, r"\s"), pa.int8())).as_py() or 0
    if mean_length > 50 or (spaced >= 0.5 and (distinct > 1_000 or ratio > 0.5)):
        return Inference("text", pa.string())
    if valid >= 10 and ratio >= 0.95 and spaced < 0.1:
        return Inference("identifier", pa.string())
    return Inference("categorical", pa.string())


class _Lazy:
    """Decodes a dictionary column once, on first use."""

    def __init__(self, column) -> None:
        self._column = column
        self._plain = None

    @property
    def plain(self):
        if self._plain is None:
            self._plain = decoded(self._column)
        return self._plain
