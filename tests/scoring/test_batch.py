"""Batch scoring of a Parquet file."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from endpoints.scoring.batch import score_table
from endpoints.scoring.predictor import Predictor
from modelformat.signature import PayloadError

from .conftest import make_table


@pytest.fixture(scope="module")
def predictor(hgb_pipeline, signature, converted_hgb):
    return Predictor(signature=signature, model=hgb_pipeline, onnx_bytes=converted_hgb[0])


def test_a_parquet_file_is_scored_in_chunks_beside_its_columns(tmp_path, predictor, hgb_pipeline):
    X, _ = make_table(1_000, seed=8)
    X = X.assign(customer_id=np.arange(1_000))  # not a model column: kept as it is
    X.to_parquet(tmp_path / "in.parquet", row_group_size=300)
    result = score_table(predictor, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=256)
    assert result["rows_in"] == result["rows_scored"] == 1_000
    assert result["chunks"] == 4
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert list(scored.columns) == [*X.columns, "prediction", "probability_churn", "probability_stay"]
    pd.testing.assert_frame_equal(scored[X.columns], X, check_dtype=False)
    expected = hgb_pipeline.predict_proba(X)
    got = scored[["probability_churn", "probability_stay"]].to_numpy()
    assert np.abs(got - expected).max() <= 1e-5
    assert scored["prediction"].tolist() == hgb_pipeline.classes_[expected.argmax(axis=1)].tolist()


def test_output_names_never_clash_with_input_columns(tmp_path, predictor):
    X, _ = make_table(50, seed=9)
    X.assign(prediction="mine").to_parquet(tmp_path / "in.parquet")
    result = score_table(predictor, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert result["prediction_column"] == "prediction_scored"
    assert pd.read_parquet(tmp_path / "out.parquet")["prediction"].eq("mine").all()


def test_a_bad_value_names_its_row_in_the_file_and_leaves_no_output(tmp_path, predictor):
    X, _ = make_table(600, seed=10)
    X["income"] = X["income"].astype(str)  # numbers held as text: parsed while scoring
    X.loc[450, "income"] = "unknown"
    X.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(PayloadError) as caught:
        score_table(predictor, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=200)
    assert (caught.value.field, caught.value.row) == ("income", 451)
    assert not [p.name for p in tmp_path.iterdir() if "out.parquet" in p.name]  # nor a temporary file


def test_a_table_without_a_model_column_is_refused(tmp_path, predictor):
    X, _ = make_table(20, seed=12)
    X.drop(columns="plan").to_parquet(tmp_path / "in.parquet")
    with pytest.raises(PayloadError) as caught:
        score_table(predictor, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert caught.value.field == "plan"


def test_an_empty_table_gives_an_empty_scored_table(tmp_path, predictor):
    X, _ = make_table(10, seed=13)
    X.head(0).to_parquet(tmp_path / "in.parquet")
    result = score_table(predictor, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert result["rows_scored"] == 0
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 0
