"""The studio's forecasting model as an MLflow pyfunc, for bench/serving.py's baseline.

MLflow has no forecasting flavour that takes a fitted model of ours, so a user serving it with
`mlflow models serve` writes a ``PythonModel`` like this one: it loads the same ``model.skops``
(checked by its SHA-256) and forecasts the horizon from the history rows a request sends, as the
studio's endpoint does with ``{"history": rows}``. Runs in MLflow's own venv, with the studio's
code on PYTHONPATH (the model's classes live there).
"""

from pathlib import Path

import mlflow.pyfunc

from modelformat.modelio import load_model


class StudioForecaster(mlflow.pyfunc.PythonModel):
    def __init__(self, sha256: str):
        self.sha256 = sha256

    def load_context(self, context):
        self.model = load_model(context.artifacts["model"], self.sha256)

    def predict(self, context, model_input, params=None):
        forecasts = self.model.forecast(model_input)
        # JSON has no time type: the times as ISO 8601 text, as the studio answers them
        time_column = self.model.time_column
        forecasts[time_column] = forecasts[time_column].map(lambda t: t.isoformat())
        return forecasts


def save(model_path: Path, sha256: str, destination: Path) -> None:
    """Save as an MLflow model; this module goes with it (``code_paths``), so the server finds the class."""
    mlflow.pyfunc.save_model(
        str(destination),
        python_model=StudioForecaster(sha256),
        artifacts={"model": str(model_path)},
        code_paths=[__file__],
    )
