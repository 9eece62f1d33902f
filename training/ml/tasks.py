"""The prediction tasks the studio trains for, and the task suggested for a target column.

Every spec (train, Automated ML) carries ``task``; a spec without one is a classification (what
the studio trained before regression existed). Forecasting is an Automated ML task only: one job
backtests a handful of time-series models (training.ml.forecast, training.kinds.forecast).
"""

CLASSIFICATION = "classification"
REGRESSION = "regression"
FORECASTING = "forecasting"
TASKS = {CLASSIFICATION: "Classification", REGRESSION: "Regression", FORECASTING: "Forecasting"}
# The tasks of one table row -> one prediction (a train job's, an Automated ML trial's).
TABULAR_TASKS = {CLASSIFICATION: TASKS[CLASSIFICATION], REGRESSION: TASKS[REGRESSION]}

# Regression metrics (training.ml.metrics holds their directions and computations).
REGRESSION_PRIMARY_METRICS = ("normalized_rmse", "rmse", "mae", "r2", "spearman", "mape")
# Forecasting metrics, computed on the rolling-origin backtest (all: lower is better).
FORECASTING_PRIMARY_METRICS = ("normalized_rmse", "mase", "smape", "rmse", "mae")
DEFAULT_PRIMARY_METRIC = {
    CLASSIFICATION: "auc_weighted",
    REGRESSION: "normalized_rmse",
    FORECASTING: "normalized_rmse",
}

# A numeric target with more distinct values than this is suggested as a regression.
REGRESSION_MIN_DISTINCT = 20
NUMERIC_TYPES = ("numeric", "integer")


def check_task(task, tasks=TASKS) -> str:
    """The spec's task (classification when left out); raises ValueError on anything not in `tasks`."""
    if task is None:
        return CLASSIFICATION
    if not isinstance(task, str) or task not in tasks:
        raise ValueError(f"Choose a task: {', '.join(tasks)}.")
    return task


def suggest_task(column: dict) -> str:
    """The task for a target column given as {"type": its semantic type, "distinct": its number of
    distinct values (from the data version's profile)}: numbers with many values are a regression."""
    distinct = column.get("distinct")
    if column.get("type") in NUMERIC_TYPES and (distinct is None or distinct > REGRESSION_MIN_DISTINCT):
        return REGRESSION
    return CLASSIFICATION
