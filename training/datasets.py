"""Load a data version for training: the table as a DataFrame, its target, its column types.

Versions are immutable, so a worker process keeps the last few it loaded (keyed by version id and
file hash): the trials of one Automated ML run read the Parquet file once per node.
"""

from collections import OrderedDict
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError

from data.models import DataVersion
from data.services import data_version_path

from .ml.tasks import NUMERIC_TYPES, REGRESSION

_CACHE: OrderedDict[tuple[int, str], pd.DataFrame] = OrderedDict()
_CACHE_SIZE = 3


@dataclass(frozen=True)
class TrainingData:
    X: pd.DataFrame
    y: pd.Series
    column_types: dict[str, str]  # semantic types from the version's schema
    dropped_rows: int  # rows without a target


def included_columns(version: DataVersion) -> list[dict]:
    return [c for c in (version.schema or {}).get("columns", []) if not c.get("excluded")]


def check_target(version: DataVersion, target_column) -> str:
    names = [c["name"] for c in included_columns(version)]
    if not isinstance(target_column, str) or target_column not in names:
        raise ValidationError({"target_column": [f"{version} has no column {target_column!r}."]})
    return target_column


def check_numeric_target(version: DataVersion, target_column: str) -> None:
    """A regression's target must be a number column (by the version's schema)."""
    column = next(c for c in included_columns(version) if c["name"] == target_column)
    if column.get("semantic_type") not in NUMERIC_TYPES:
        raise ValidationError(
            {
                "target_column": [
                    f"A regression predicts a number, and {target_column!r} is {column.get('semantic_type')}: "
                    "choose a numeric column or the classification task."
                ]
            }
        )


def target_zero_rows(version: DataVersion, target_column: str) -> int:
    """How many rows have 0 as the target (MAPE divides by it); reads that one column."""
    column = pq.read_table(data_version_path(version), columns=[target_column]).column(0).to_pandas()
    return int((pd.to_numeric(column, errors="coerce") == 0).sum())


def data_version_frame(version: DataVersion) -> pd.DataFrame:
    """The version's included columns, the last few versions read kept in this process."""
    key = (version.pk, version.parquet_sha256)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    columns = [c["name"] for c in included_columns(version)]
    table = pq.read_table(data_version_path(version), columns=columns)
    # Dates as datetime64 (not datetime.date objects): the dtype a scoring payload is cast to.
    frame = table.to_pandas(date_as_object=False)
    _CACHE[key] = frame
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return frame


def load_training_data(version: DataVersion, target_column: str, task: str = "classification") -> TrainingData:
    """The features and target of a version: rows with a missing target are left out; the target
    becomes text labels (classes are compared as strings everywhere after this), or for a
    regression float numbers."""
    frame = data_version_frame(version)
    target = frame[target_column]
    if task == REGRESSION:
        values = pd.to_numeric(target, errors="coerce").astype("float64")
        keep = values.notna() & values.abs().lt(float("inf"))
        X = frame.loc[keep].drop(columns=[target_column]).reset_index(drop=True)
        types = {c["name"]: c["semantic_type"] for c in included_columns(version) if c["name"] != target_column}
        y = values[keep].reset_index(drop=True)
        return TrainingData(X=X, y=y, column_types=types, dropped_rows=int((~keep).sum()))
    keep = target.notna()
    labels = target[keep]
    column = next(c for c in included_columns(version) if c["name"] == target_column)
    physical = column.get("physical_type", "")
    if physical.startswith("int") and pd.api.types.is_float_dtype(labels):
        labels = labels.astype("int64")  # pandas reads integers with nulls as floats: "2", not "2.0"
    spelling = (column.get("spelling") or {}) if physical == "bool" else {}
    if spelling:
        # Booleans read from text are labels as the file wrote them ("yes", "TRUE"), not Python's True.
        labels = labels.map({False: spelling["false"], True: spelling["true"]})
    y = labels.astype(str).reset_index(drop=True)
    X = frame.loc[keep].drop(columns=[target_column]).reset_index(drop=True)
    types = {c["name"]: c["semantic_type"] for c in included_columns(version) if c["name"] != target_column}
    return TrainingData(X=X, y=y, column_types=types, dropped_rows=int((~keep).sum()))
