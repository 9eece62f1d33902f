"""Drift (PSI against the training data) and data-quality counters for scoring inputs."""

import json

import numpy as np
import pandas as pd
import pytest

from modelformat.drift import (
    ALERTED,
    INSUFFICIENT,
    PASSED,
    WARNING,
    concat_columns,
    count_batch,
    count_refusal,
    drift_report,
    empty_counts,
    merge_counts,
    psi,
    psi_status,
    reference_profile,
)
from modelformat.signature import PayloadError

from .conftest import make_table


@pytest.fixture(scope="module")
def profile(table, signature):
    return reference_profile(table[0], signature)


def test_profile_is_json_with_bins_that_cover_the_training_rows(profile, table):
    assert json.loads(json.dumps(profile)) == profile
    assert profile["rows"] == len(table[0])
    income = profile["columns"]["income"]
    assert income["kind"] == "numeric" and len(income["edges"]) == 9
    assert len(income["expected"]) == 11  # 10 bins + missing
    assert income["missing"] == pytest.approx(table[0]["income"].isna().mean(), abs=1e-6)
    plan = profile["columns"]["plan"]
    assert plan["kind"] == "categorical" and plan["categories"] == ["basic", "plus", "pro"]
    for column in profile["columns"].values():
        assert sum(column["expected"]) == pytest.approx(1.0, abs=1e-6)


def test_psi_is_near_zero_for_the_same_distribution(profile):
    same, _ = make_table(3_000, seed=11)
    for name in ("age", "income", "balance", "tenure", "plan", "region"):
        assert psi(profile["columns"][name], same[name]) < 0.02, name


def test_psi_is_large_for_a_shifted_distribution(profile):
    shifted, _ = make_table(3_000, seed=11, shift=1.5)
    assert psi(profile["columns"]["income"], shifted["income"]) >= 0.25
    assert psi(profile["columns"]["tenure"], shifted["tenure"]) >= 0.25
    plans = pd.Series(np.where(np.arange(3_000) % 10 == 0, "basic", "enterprise"))
    assert psi(profile["columns"]["plan"], plans) >= 0.25


def test_a_column_that_arrives_empty_drifts(profile):
    assert psi(profile["columns"]["balance"], [None] * 500) >= 0.25


def test_status_bands():
    assert psi_status(0.05) == PASSED
    assert psi_status(0.1) == WARNING
    assert psi_status(0.2499) == WARNING
    assert psi_status(0.25) == ALERTED
    assert psi_status(0.4, rows=50) == INSUFFICIENT


def test_counts_add_up_batch_by_batch(profile, signature):
    first, _ = make_table(700, seed=21)
    second, _ = make_table(500, seed=22, shift=2.0)
    total = empty_counts(profile)
    for frame in (first, second):
        total = merge_counts(total, count_batch(profile, signature.validate_frame(frame).columns, signature))
    together = count_batch(profile, pd.concat([first, second], ignore_index=True), signature)
    assert total == together
    assert json.loads(json.dumps(total)) == total
    report = drift_report(profile, total)
    assert report["rows"] == 1_200
    assert report["columns"]["income"]["status"] in (WARNING, ALERTED)
    assert report["columns"]["plan"]["status"] == PASSED
    assert report["status"] in (WARNING, ALERTED)


def test_rows_counted_one_by_one_or_gathered_count_as_one_batch(profile, signature):
    """A scoring request's row is binned with dict lookups, a gathered minute of them with pandas:
    the counts must be the same, unseen labels and missing values included."""
    frame, _ = make_table(150, seed=31, shift=0.5)
    frame.loc[::7, "plan"] = "enterprise"  # not a training category
    frame.loc[::11, "region"] = None
    whole = count_batch(profile, signature.validate_frame(frame).columns, signature)
    rows = [signature.validate_frame(frame.iloc[[i]]).columns for i in range(len(frame))]
    one_by_one = empty_counts(profile)
    for columns in rows:
        one_by_one = merge_counts(one_by_one, count_batch(profile, columns, signature))
    assert one_by_one == whole
    assert count_batch(profile, concat_columns(rows), signature) == whole
    assert whole["unseen"]["plan"] > 0 and whole["nulls"]["region"] > 0


def test_few_rows_are_insufficient_data(profile, signature):
    few, _ = make_table(20, seed=5)
    report = drift_report(profile, count_batch(profile, few, signature))
    assert report["status"] == INSUFFICIENT


def test_data_quality_counters(profile, signature):
    frame = pd.DataFrame(
        {
            "age": [30, 200, None, 45],  # 200 is above the training maximum
            "income": [None, None, 1.0, 2.0],
            "balance": [1_000.0, 2_000.0, 3_000.0, -5.0],  # -5 is below the training minimum
            "tenure": [1.0, 2.0, 3.0, 4.0],
            "plan": ["pro", "enterprise", None, "basic"],
            "region": ["north", "north", "moon", "east"],
        }
    )
    counts = count_batch(profile, signature.validate_frame(frame).columns, signature)
    assert counts["rows"] == 4
    assert counts["nulls"]["income"] == 2 and counts["nulls"]["age"] == 1 and counts["nulls"]["plan"] == 1
    assert counts["out_of_range"]["age"] == 1 and counts["out_of_range"]["balance"] == 1
    assert counts["unseen"] == {"plan": 1, "region": 1}


def test_refused_payloads_are_counted_by_column(profile):
    error = PayloadError("Column 'age', row 2: ...", field="age", row=2, code="invalid_value")
    counts = merge_counts(count_refusal(error), count_refusal(error))
    assert counts["refused"] == 2 and counts["type_errors"] == {"age": 2}
    assert count_refusal(PayloadError("too many", code="too_many_rows"))["type_errors"] == {}


def test_datetime_and_boolean_columns_are_profiled():
    from modelformat.signature import build_signature

    frame = pd.DataFrame(
        {
            "joined": pd.date_range("2024-01-01", periods=400, freq="h"),
            "vip": np.arange(400) % 4 == 0,
            "note": [f"free text number {i} here" for i in range(400)],
        }
    )
    sig = build_signature(frame, column_types={"note": "text"})
    profile = reference_profile(frame, sig)
    assert profile["columns"]["joined"]["kind"] == "numeric"
    assert profile["columns"]["vip"]["categories"] == ["False", "True"]
    assert profile["columns"]["note"] == {"kind": "unmonitored", "reason": "text"}
    later = frame.assign(joined=frame["joined"] + pd.Timedelta(days=365))
    assert psi(profile["columns"]["joined"], later["joined"]) >= 0.25
    assert psi(profile["columns"]["vip"], frame["vip"]) < 0.01
