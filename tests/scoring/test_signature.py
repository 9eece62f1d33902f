"""The input signature and the check of scoring payloads against it."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from modelformat.signature import (
    PayloadError,
    Signature,
    build_signature,
    unused_columns,
    validate_payload,
)

from .conftest import record


def refusal(signature, payload, **kwargs) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        validate_payload(signature, payload, **kwargs)
    return caught.value


# --- building ------------------------------------------------------------------------------------
def test_signature_lists_columns_with_types_dtypes_and_training_categories(signature_json):
    columns = {c["name"]: c for c in signature_json["columns"]}
    assert [c["name"] for c in signature_json["columns"]] == ["age", "income", "balance", "tenure", "plan", "region"]
    assert columns["age"]["type"] == "integer" and columns["age"]["dtype"] == "float64"
    assert columns["income"]["type"] == "numeric" and columns["income"]["nullable"] is True
    assert columns["balance"]["nullable"] is False
    assert columns["plan"]["type"] == "categorical"
    assert columns["plan"]["categories"] == ["basic", "plus", "pro"]
    assert columns["region"]["nullable"] is True
    assert signature_json["target"] == "churned"
    assert signature_json["classes"] == ["churn", "stay"]
    assert json.loads(json.dumps(signature_json)) == signature_json


def test_categories_are_capped_and_the_cap_is_recorded():
    X = pd.DataFrame({"city": [f"c{i % 50}" for i in range(500)]})
    column = build_signature(X, column_types={"city": "categorical"}, max_categories=10)["columns"][0]
    assert len(column["categories"]) == 10
    assert column["categories_truncated"] is True


def test_signature_keeps_boolean_and_datetime_columns():
    X = pd.DataFrame({"vip": [True, False] * 60, "joined": pd.date_range("2024-01-01", periods=120, freq="D")})
    columns = {c["name"]: c for c in build_signature(X)["columns"]}
    assert columns["vip"]["type"] == "boolean" and columns["vip"]["dtype"] == "bool"
    assert columns["joined"]["type"] == "datetime" and columns["joined"]["dtype"].startswith("datetime64")


def test_columns_the_model_does_not_read_are_optional(table, hgb_pipeline):
    X_train = table[0].assign(customer_id=np.arange(len(table[0])))
    unused = unused_columns(hgb_pipeline, X_train.columns)
    assert unused == {"customer_id"}
    sig = build_signature(X_train, optional=unused)
    frame = validate_payload(sig, record())
    assert np.isnan(frame.loc[0, "customer_id"])


def test_a_malformed_signature_is_refused():
    with pytest.raises(ValueError):
        Signature({"columns": []})
    with pytest.raises(ValueError):
        Signature({"columns": [{"name": "a", "type": "numeric", "dtype": "complex128"}]})


# --- payload shapes ------------------------------------------------------------------------------
def _shapes():
    rows = [record(), record(age=30, plan="basic")]
    columns = list(rows[0])
    split = {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}
    columnar = {c: [r[c] for r in rows] for c in columns}
    return {
        "records": rows,
        "inputs": {"inputs": rows},
        "data": {"data": rows},
        "dataframe_records (MLflow)": {"dataframe_records": rows},
        "split": split,
        "split with index": {**split, "index": [0, 1]},
        "dataframe_split (MLflow)": {"dataframe_split": split},
        "input_data (Azure ML)": {"input_data": split},
        "columnar": columnar,
        "inputs columnar": {"inputs": columnar},
    }


@pytest.mark.parametrize("shape", list(_shapes()))
def test_every_payload_shape_gives_the_same_frame(signature, shape):
    frame = validate_payload(signature, _shapes()[shape])
    expected = validate_payload(signature, _shapes()["records"])
    pd.testing.assert_frame_equal(frame, expected)
    assert list(frame.columns) == list(signature.names)
    assert frame["age"].tolist() == [42.0, 30.0]


def test_a_single_record_object_is_one_row(signature):
    frame = validate_payload(signature, record())
    assert len(frame) == 1
    assert frame.loc[0, "plan"] == "pro"


def test_frame_has_the_training_columns_in_order_with_their_dtypes(signature):
    shuffled = dict(reversed(list(record().items())))
    frame = validate_payload(signature, [shuffled])
    assert list(frame.columns) == ["age", "income", "balance", "tenure", "plan", "region"]
    assert frame["age"].dtype == np.float64 and frame["income"].dtype == np.float64
    assert pd.api.types.is_string_dtype(frame["plan"])


# --- casts ---------------------------------------------------------------------------------------
def test_numeric_strings_are_a_safe_cast(signature):
    frame = validate_payload(signature, record(income="3.5", age="31", tenure=" 1e1 "))
    assert frame.loc[0, "income"] == 3.5
    assert frame.loc[0, "age"] == 31.0
    assert frame.loc[0, "tenure"] == 10.0


def test_numbers_with_thousands_separators_are_read_as_the_training_file_wrote_them(signature):
    frame = validate_payload(signature, record(income="1,234.50", age="31", tenure="1,000"))
    assert (frame.loc[0, "income"], frame.loc[0, "tenure"]) == (1234.5, 1000.0)
    assert refusal(signature, record(income="1,5")).field == "income"


def test_a_whole_float_is_accepted_for_an_integer_column(signature):
    assert validate_payload(signature, record(age=31.0)).loc[0, "age"] == 31.0


def test_a_fractional_number_for_an_integer_column_is_refused(signature):
    error = refusal(signature, [record(), record(age=3.7)])
    assert (error.code, error.field, error.row) == ("invalid_value", "age", 2)
    assert "'age'" in error.message and "row 2" in error.message and "whole number" in error.message


def test_a_word_in_a_numeric_column_names_column_and_row(signature):
    error = refusal(signature, [record(), record(), record(income="abc")])
    assert (error.code, error.field, error.row, error.status) == ("invalid_value", "income", 3, 400)
    assert error.message.startswith("Column 'income', row 3:") and '"abc" is not a number' in error.message


def test_the_first_bad_row_is_named_and_the_others_counted(signature):
    error = refusal(signature, [record(income="x"), record(), record(income="y")])
    assert error.row == 1 and "1 more row" in error.message


def test_booleans_and_infinities_are_not_numbers(signature):
    assert refusal(signature, record(balance=True)).field == "balance"
    assert "finite" in refusal(signature, record(balance=float("inf"))).message
    assert "finite" in refusal(signature, record(balance="-inf")).message


def test_number_columns_cast_at_once_read_as_cast_one_by_one():
    # many number columns are cast in one array when all are plain JSON numbers or nulls
    names = [f"mean {i}" for i in range(12)]
    sig = build_signature(pd.DataFrame({n: np.linspace(0, 1, 50) for n in names}))
    assert len(Signature(sig)._number_names) == 12
    one_by_one = Signature(sig)
    one_by_one._number_names = ()
    rows = [{n: (None if (i + j) % 5 == 0 else (i * j if j % 2 else i / (j + 1))) for j, n in enumerate(names)}
            for i in range(7)]  # fmt: skip
    for payload in (rows[0], rows, {n: [r[n] for r in rows] for n in names}, [*rows[:3], {**rows[3], "mean 4": "2.5"}]):
        fast, slow = Signature(sig).validate_columns(payload), one_by_one.validate_columns(payload)
        assert list(fast.columns) == list(slow.columns) == names
        for name in names:
            np.testing.assert_array_equal(fast.columns[name], slow.columns[name])
            assert fast.columns[name].dtype == np.float64
    # an error is found and worded as column by column: the first column at fault, in the signature's order
    bad = [rows[0], {**rows[1], "mean 7": float("inf"), "mean 3": True}]
    for signature in (Signature(sig), one_by_one):
        error = refusal(signature, bad)
        assert (error.field, error.row) == ("mean 3", 2)
    assert "finite" in refusal(Signature(sig), {**rows[0], "mean 9": 1e308 * 10}).message
    assert refusal(Signature(sig), {**rows[0], "mean 2": 10**400}).field == "mean 2"


def test_numbers_are_accepted_as_labels_the_way_the_featurizer_writes_them(signature):
    frame = validate_payload(signature, [record(plan=3), record(plan=3.0), record(plan=True)])
    assert frame["plan"].tolist() == ["3", "3", "True"]


def test_unknown_categories_are_passed_to_the_pipeline(signature):
    assert validate_payload(signature, record(plan="platinum")).loc[0, "plan"] == "platinum"


def test_null_is_accepted_in_every_column_even_one_without_nulls_in_training(signature):
    frame = validate_payload(signature, {name: None for name in signature.names})
    assert frame.isna().all(axis=None)
    assert validate_payload(signature, record(balance="", plan="")).isna().sum().sum() == 2


def test_nested_values_are_refused(signature):
    error = refusal(signature, [record(), record(plan={"name": "pro"})])
    assert (error.code, error.field, error.row) == ("nested_value", "plan", 2)
    assert refusal(signature, record(age=[1, 2], income=[1, 2])).code == "invalid_payload"


def test_boolean_columns_accept_true_false_words_and_zero_one():
    sig = Signature(build_signature(pd.DataFrame({"vip": [True, False] * 10})))
    frame = validate_payload(sig, {"vip": [True, "yes", "N", 0, 1.0, None]})
    assert frame["vip"].tolist()[:5] == [True, True, False, False, True]
    assert pd.isna(frame["vip"].iloc[5])
    error = refusal(sig, {"vip": ["maybe"]})
    assert (error.field, error.row) == ("vip", 1)


def test_dates_are_parsed_from_iso_text_and_bad_dates_named():
    sig = Signature(build_signature(pd.DataFrame({"joined": pd.date_range("2024-01-01", periods=10)})))
    frame = validate_payload(sig, {"joined": ["2024-05-01", "2024-05-01T13:30:00Z", None]})
    assert frame["joined"].iloc[1] == pd.Timestamp("2024-05-01 13:30:00")
    error = refusal(sig, {"joined": ["2024-05-01", "yesterday"]})
    assert (error.field, error.row) == ("joined", 2)
    assert refusal(sig, {"joined": [1714521600]}).field == "joined"


def test_date_objects_in_a_frame_are_dates():
    """Parquet date32 columns read back as datetime.date objects (batch scoring, packaging)."""
    import datetime as dt

    sig = Signature(build_signature(pd.DataFrame({"day": pd.date_range("2024-01-01", periods=3)})))
    frame = pd.DataFrame({"day": [dt.date(2024, 5, 1), dt.datetime(2024, 5, 2, 13, 30), None]})
    cast = sig.validate_frame(frame).to_frame(sig)
    assert cast["day"].tolist()[:2] == [pd.Timestamp("2024-05-01"), pd.Timestamp("2024-05-02 13:30")]
    assert pd.isna(cast["day"].iloc[2])


def test_plain_iso_dates_parsed_at_once_read_as_pandas_reads_them(monkeypatch):
    """Dates and times without a zone go through numpy in one call; anything else (a zone, a
    nanosecond, a year past 2262, other formats) through pandas' parser, which words the errors."""
    from modelformat import signature as module

    texts = ["2024-05-01", "2024-05-01T13:30", "2024-05-01 13:30:05", "2024-05-01T13:30:05.250", " 1999-12-31 "]
    others = ["2024-05-01T13:30:00+02:00", "2024-05-01T13:30:00.123456789", "May 1, 2024", "9999-01-01"]
    for unit in ("us", "ns"):
        sig = Signature(build_signature(pd.DataFrame({"day": pd.date_range("2024-01-01", periods=3, unit=unit)})))
        general = Signature(sig.data)
        payloads = [{"day": texts}, *({"day": [t]} for t in others[: 3 if unit == "ns" else 4])]
        with monkeypatch.context() as patched:
            patched.setattr(module, "_naive_iso_at_once", lambda texts, dtype: None)
            slow = [general.validate_columns(p).columns["day"] for p in payloads]
        for payload, expected in zip(payloads, slow, strict=True):
            got = sig.validate_columns(payload).columns["day"]
            assert got.dtype == expected.dtype == np.dtype(f"datetime64[{unit}]")
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
        assert module._naive_iso_at_once(np.array([t.strip() for t in texts], dtype=object), np.dtype("M8[us]"))
        for other in others:
            assert module._naive_iso_at_once(np.array([other], dtype=object), np.dtype("M8[us]")) is None
    # a model whose dates are nanoseconds cannot take the year 9999: refused by name, not a server error
    error = refusal(sig, {"day": ["2024-05-01", "9999-01-01"]})
    assert (error.field, error.row) == ("day", 2) and "1677 to 2262" in error.message
    error = refusal(sig, {"day": ["2024-05-01", "2024-02-30"]})  # numpy refuses it; pandas' parser names it
    assert (error.field, error.row) == ("day", 2)


# --- columns -------------------------------------------------------------------------------------
def test_a_missing_column_is_named(signature):
    payload = record()
    del payload["tenure"]
    error = refusal(signature, payload)
    assert (error.code, error.field) == ("missing_column", "tenure")
    assert "'tenure' is missing" in error.message


def test_a_misspelt_column_is_pointed_out(signature):
    payload = record()
    payload["Tenure"] = payload.pop("tenure")
    assert "'Tenure'" in refusal(signature, payload).message


def test_a_record_without_a_column_names_its_row(signature):
    incomplete = record()
    del incomplete["plan"]
    error = refusal(signature, [record(), record(), incomplete])
    assert (error.code, error.field, error.row) == ("missing_column", "plan", 3)


def test_unknown_columns_are_ignored_by_default_and_refused_in_strict_mode(signature):
    payload = record(churned="yes", customer_id=7)
    batch = signature.validate_columns(payload)
    assert set(batch.ignored) == {"churned", "customer_id"}
    assert list(validate_payload(signature, payload).columns) == list(signature.names)
    error = refusal(signature, payload, unknown_columns="error")
    assert error.code == "unknown_column" and "'churned'" in error.message and "'customer_id'" in error.message


# --- payload-level refusals ----------------------------------------------------------------------
def test_too_many_rows_is_a_413(signature):
    error = refusal(signature, [record()] * 11, max_rows=10)
    assert (error.code, error.status) == ("too_many_rows", 413)
    assert "11 rows" in error.message and "10" in error.message
    assert refusal(signature, [record()] * 10_001).code == "too_many_rows"  # the default cap


@pytest.mark.parametrize("payload", [[], {}, {"inputs": []}, {"columns": ["age"], "data": []}])
def test_an_empty_payload_is_refused(signature, payload):
    assert refusal(signature, payload).code == "empty_payload"


@pytest.mark.parametrize("payload", ["age=3", 42, None, True])
def test_a_payload_that_is_not_an_object_or_array_is_refused(signature, payload):
    assert refusal(signature, payload).code == "invalid_payload"


def test_rows_that_are_arrays_are_refused_with_a_hint(signature):
    error = refusal(signature, [[42, 1.0]])
    assert error.row == 1 and '"columns"' in error.message


def test_split_rows_of_the_wrong_length_are_named(signature):
    columns = list(record())
    error = refusal(signature, {"columns": columns, "data": [list(record().values()), [1, 2]]})
    assert error.row == 2


def test_columns_of_unequal_length_are_refused(signature):
    payload = {name: [value, value] for name, value in record().items()}
    payload["plan"] = ["pro"]
    assert refusal(signature, payload).field == "plan"


def test_error_has_a_stable_json_shape(signature):
    error = refusal(signature, record(income="abc"))
    assert error.to_json() == {
        "code": "invalid_value",
        "message": error.message,
        "field": "income",
        "row": 1,
    }


# --- frames and speed ----------------------------------------------------------------------------
def test_validate_frame_counts_rows_from_the_offset(signature):
    frame = pd.DataFrame([record(), record(income="oops")])
    with pytest.raises(PayloadError) as caught:
        signature.validate_frame(frame, row_offset=100)
    assert caught.value.row == 102


def test_validate_frame_keeps_typed_columns_as_they_are(signature, table):
    batch = signature.validate_frame(table[2])
    assert batch.n_rows == len(table[2])
    assert np.array_equal(batch.columns["income"], table[2]["income"].to_numpy(), equal_nan=True)


def test_ten_thousand_records_validate_quickly(signature):
    rows = [
        record(age=i % 90, plan=("basic", "pro")[i % 2], income=None if i % 7 == 0 else 1.5 * i) for i in range(10_000)
    ]
    signature.validate_columns(rows[:10])
    started = time.perf_counter()
    batch = signature.validate_columns(rows)
    elapsed = time.perf_counter() - started
    assert batch.n_rows == 10_000
    assert elapsed < 1.0, f"10,000 records took {elapsed:.3f} s"  # ~20 ms on an idle core
