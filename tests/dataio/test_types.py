"""Semantic types: inference from values, the casts they need, and the schema's JSON form."""

import datetime as dt
import uuid

import pyarrow as pa
import pytest

from data.dataio import DataError, Schema
from data.dataio.types import CastError, ColumnSchema, cast_column, infer_column


def column_csv(rows: int = 200) -> str:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    lines = ["row_id,price,count,member,colour,signup,birthday,review,user_uuid,email,rating,customer_id"]
    for i in range(rows):
        lines.append(
            ",".join(
                [
                    str(i + 1),  # identifier (a contiguous range)
                    f"{(i * 37 % 101) / 4:.2f}",  # numeric
                    str(i * 13 % 61),  # integer (61 distinct)
                    ["true", "false", "True", "F"][i % 4],  # boolean (words, mixed case)
                    ["red", "green", "blue"][i % 3],  # categorical
                    f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}",  # datetime (ISO)
                    f"{i % 28 + 1:02d}/{i % 12 + 1:02d}/19{50 + i % 50}",  # datetime (day/month/year)
                    " ".join(words[(i + k) % 8] for k in range(i % 5 + 3)) + f" #{i}",  # text
                    str(uuid.UUID(int=i * 7919 + 1)),  # identifier (strings)
                    f"user{i}@example.com",  # identifier (strings)
                    str(i % 5 + 1),  # categorical (few small integers)
                    str(10_000 + i * 3),  # identifier (by its name)
                ]
            )
        )
    return "\n".join(lines) + "\n"


def test_each_semantic_type_is_inferred(work):
    result = work.ingest(column_csv())
    types = {c.name: (c.semantic_type, c.physical_type) for c in result.schema.columns}
    assert types == {
        "row_id": ("identifier", "int64"),
        "price": ("numeric", "double"),
        "count": ("integer", "int64"),
        "member": ("boolean", "bool"),
        "colour": ("categorical", "string"),
        "signup": ("datetime", "date32[day]"),
        "birthday": ("datetime", "timestamp[us]"),
        "review": ("text", "string"),
        "user_uuid": ("identifier", "string"),
        "email": ("identifier", "string"),
        "rating": ("categorical", "int64"),
        "customer_id": ("identifier", "int64"),
    }


@pytest.mark.parametrize("words", [("yes", "no"), ("Yes", "No"), ("Y", "N"), ("y", "n")])
def test_yes_no_words_stay_text_so_labels_keep_their_spelling(work, words):
    result = work.ingest("answer\n" + "".join(f"{words[i % 2]}\n" for i in range(40)))
    assert (result.schema.column("answer").semantic_type, result.schema.column("answer").physical_type) == (
        "categorical",
        "string",
    )
    assert work.table().column("answer").to_pylist()[:2] == list(words)


def test_dates_in_text_are_stored_as_timestamps(work):
    work.ingest(column_csv())
    table = work.table()
    assert table.column("birthday")[0].as_py() == dt.datetime(1950, 1, 1)
    assert table.column("birthday")[13].as_py() == dt.datetime(1963, 2, 14)
    assert table.column("member").to_pylist()[:4] == [True, False, True, False]


def test_iso_timestamps_with_zones_stay_in_utc(work):
    result = work.ingest("t\n2024-01-02T10:00:00Z\n2024-01-02T12:30:00+02:00\n")
    assert result.schema.column("t").physical_type == "timestamp[ms, tz=UTC]"  # Parquet has no seconds unit
    values = work.table().column("t").to_pylist()
    assert [v.astimezone(dt.UTC).hour for v in values] == [10, 10]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.5, None, 2.0], "numeric"),
        ([True, False, None], "boolean"),
        ([None, None], "text"),
        (["a b c d e f g h i j k l m n o p q r s t u v w x y z and then some more words"] * 3, "text"),
        (["0012", "0013", "0014"], "categorical"),
    ],
)
def test_inference_from_values(values, expected):
    assert infer_column("x", pa.chunked_array([pa.array(values)])).semantic_type == expected


def test_small_integer_sets_are_categorical_only_with_enough_rows():
    few = pa.chunked_array([pa.array([1, 2, 3] * 3)])
    many = pa.chunked_array([pa.array([1, 2, 3] * 30)])
    assert infer_column("grade", few).semantic_type == "integer"
    assert infer_column("grade", many).semantic_type == "categorical"


def test_unique_integers_are_not_identifiers_without_a_sign():
    values = pa.chunked_array([pa.array([5, 17, 2, 99, 41, 63, 8, 120, 77, 30, 12, 54])])
    assert infer_column("population", values).semantic_type == "integer"
    assert infer_column("population_id", values).semantic_type == "identifier"


@pytest.mark.parametrize(
    ("values", "semantic", "expected"),
    [
        (["1", " 2 ", None], "integer", [1, 2, None]),
        (["1.5", "-2e3"], "numeric", [1.5, -2000.0]),
        (["Yes", "n", "TRUE", "0"], "boolean", [True, False, True, False]),
        ([0, 1, None], "boolean", [False, True, None]),
        ([1.0, float("nan"), 3.0], "integer", [1, None, 3]),
        ([1, 2], "text", ["1", "2"]),
        ([True, False], "categorical", [True, False]),
        ([1.5, 2.5], "categorical", ["1.5", "2.5"]),
        (["2024-01-02 10:00:00", None], "datetime", [dt.datetime(2024, 1, 2, 10), None]),
    ],
)
def test_casts(values, semantic, expected):
    assert cast_column(pa.array(values), semantic).to_pylist() == expected


@pytest.mark.parametrize(
    ("values", "semantic", "index", "value"),
    [
        (["1", "2", "x", "y"], "integer", 2, "x"),
        ([1.0, 2.5], "integer", 1, 2.5),
        ([0, 1, 2], "boolean", 2, 2),
        (["yes", "maybe"], "boolean", 1, "maybe"),
        ([5, 6], "datetime", 0, 5),
        (["2024-01-01", "soon"], "datetime", 1, "soon"),
    ],
)
def test_a_failed_cast_names_the_first_bad_value(values, semantic, index, value):
    with pytest.raises(CastError) as caught:
        cast_column(pa.array(values), semantic)
    assert (caught.value.index, caught.value.value) == (index, value)


def test_schema_json_round_trip():
    schema = Schema(
        (
            ColumnSchema("a", "numeric", "double", inferred_type="integer"),
            ColumnSchema("b", "text", "string", excluded=True),
        )
    )
    data = schema.to_json()
    assert data == {
        "version": 1,
        "columns": [
            {
                "name": "a",
                "semantic_type": "numeric",
                "physical_type": "double",
                "excluded": False,
                "inferred_type": "integer",
            },
            {"name": "b", "semantic_type": "text", "physical_type": "string", "excluded": True, "inferred_type": None},
        ],
    }
    assert Schema.from_json(data) == schema
    assert [c.name for c in schema.included] == ["a"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"columns": "nope"}, "list of columns"),
        ({"columns": [{"name": "a", "semantic_type": "money"}]}, "unknown type 'money'"),
        (
            {"columns": [{"name": "a", "semantic_type": "text"}, {"name": "a", "semantic_type": "text"}]},
            "Column 2 ('a') has the name of column 1.",
        ),
        ({"columns": [{"name": "", "semantic_type": "text"}]}, "has no name"),
        ({"columns": [{"name": "a", "semantic_type": "text", "excluded": "yes"}]}, "'excluded' must be true or false"),
        ({"version": 9, "columns": []}, "Unknown schema version"),
    ],
)
def test_schema_from_bad_json(data, words):
    with pytest.raises(DataError) as caught:
        Schema.from_json(data)
    assert words in caught.value.message and caught.value.code == "invalid_schema"


def test_schema_edited():
    schema = Schema((ColumnSchema("a", "integer", "int64"), ColumnSchema("b", "text", "string")))
    edited = schema.edited(types={"a": "categorical"}, exclude=["b"])
    assert [(c.semantic_type, c.excluded) for c in edited.columns] == [("categorical", False), ("text", True)]
    with pytest.raises(DataError):
        schema.edited(types={"zzz": "text"})
