from django import forms

from studio.ids import parse_id

from .ml.algorithms import algorithms_for
from .ml.forecast import ALGORITHM_LABELS as FORECAST_ALGORITHM_LABELS
from .ml.forecast import FORECAST_ALGORITHMS
from .ml.search import DEFAULT_INFER_LIMIT_MS
from .ml.tasks import CLASSIFICATION, DEFAULT_PRIMARY_METRIC, FORECASTING, REGRESSION, TASKS

CLASSIFICATION_METRIC_LABELS = {
    "accuracy": "Accuracy",
    "auc_weighted": "AUC weighted",
    "balanced_accuracy": "Balanced accuracy",
    "f1_weighted": "F1 weighted",
    "average_precision_weighted": "Average precision weighted",
    "log_loss": "Log loss",
}
# In training.ml.tasks.REGRESSION_PRIMARY_METRICS' order (normalised RMSE, the default, first).
REGRESSION_METRIC_LABELS = {
    "normalized_rmse": "Normalised RMSE",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "spearman": "Spearman correlation",
    "mape": "MAPE",
}
# In training.ml.tasks.FORECASTING_PRIMARY_METRICS' order.
FORECASTING_METRIC_LABELS = {
    "normalized_rmse": "Normalised RMSE",
    "mase": "MASE",
    "smape": "sMAPE",
    "rmse": "RMSE",
    "mae": "MAE",
}
METRIC_LABELS = {**CLASSIFICATION_METRIC_LABELS, **REGRESSION_METRIC_LABELS, **FORECASTING_METRIC_LABELS}
# Common pandas offset aliases; anything else is inferred from the data or given through the API.
FREQUENCY_CHOICES = [
    ("", "Infer from the data"),
    ("30min", "Every 30 minutes (30min)"),
    ("h", "Hourly (h)"),
    ("D", "Daily (D)"),
    ("B", "Business days (B)"),
    ("W-SUN", "Weekly, Sundays (W-SUN)"),
    ("W-MON", "Weekly, Mondays (W-MON)"),
    ("MS", "Monthly, month start (MS)"),
    ("ME", "Monthly, month end (ME)"),
    ("QS", "Quarterly, quarter start (QS)"),
    ("QE", "Quarterly, quarter end (QE)"),
    ("YS", "Yearly, year start (YS)"),
    ("YE", "Yearly, year end (YE)"),
]
FORECAST_FIELDS = (
    "time_column",
    "series_columns",
    "horizon",
    "frequency",
    "known_ahead",
    "gap",
    "season_length",
    "backtest_windows",
)


def algorithm_choices(task: str) -> list[tuple[str, str]]:
    if task == FORECASTING:
        return [(name, FORECAST_ALGORITHM_LABELS[name]) for name in FORECAST_ALGORITHMS]
    return list(algorithms_for(task).items())


def metric_choices(task: str, *, mape: bool = True) -> list[tuple[str, str]]:
    """The primary metrics of a task; MAPE left out for a target that may hold zeros."""
    if task == FORECASTING:
        return list(FORECASTING_METRIC_LABELS.items())
    if task == REGRESSION:
        return [(m, label) for m, label in REGRESSION_METRIC_LABELS.items() if mape or m != "mape"]
    return list(CLASSIFICATION_METRIC_LABELS.items())


class AutoMLForm(forms.Form):
    data_version_id = forms.TypedChoiceField(coerce=int, label="Data")
    target_column = forms.CharField(max_length=200, label="Target column")
    task = forms.TypedChoiceField(
        choices=list(TASKS.items()),
        initial=CLASSIFICATION,
        required=False,
        empty_value=CLASSIFICATION,  # a form posted without a task, as before regression existed
        help_text="Classification predicts a class; regression predicts a number; forecasting predicts "
        "the next values of a time series.",
    )
    primary_metric = forms.ChoiceField(
        choices=list(METRIC_LABELS.items()),
        required=False,
        help_text="Left empty: the task's default (AUC weighted; normalised RMSE for a regression or a forecast).",
        error_messages={"invalid_choice": "%(value)s is not a primary metric of this task."},
    )
    validation = forms.ChoiceField(
        choices=[
            ("auto", "Auto (by the data's size)"),
            ("cv", "k-fold cross-validation"),
            ("holdout", "Holdout"),
            ("validation_set", "A separate validation data set"),
        ],
        initial="auto",
    )
    n_folds = forms.IntegerField(min_value=2, max_value=20, required=False, label="Folds")
    holdout_fraction = forms.FloatField(min_value=0.05, max_value=0.5, required=False, label="Holdout fraction")
    validation_data_version_id = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Validation data"
    )
    test_fraction = forms.FloatField(
        min_value=0,
        max_value=0.45,
        initial=0.2,
        label="Test split",
        help_text="Rows kept aside and scored only on the final model (0 for none).",
    )
    timeout_minutes = forms.FloatField(min_value=0.25, max_value=24 * 60, initial=5, label="Time budget (minutes)")
    trial_timeout_s = forms.IntegerField(min_value=5, max_value=24 * 3600, initial=120, label="Trial time limit (s)")
    max_trials = forms.IntegerField(min_value=1, max_value=1000, initial=100)
    max_concurrent_trials = forms.IntegerField(
        min_value=1, max_value=64, initial=2, help_text="Trials run in parallel on this many nodes."
    )
    metric_threshold = forms.FloatField(required=False, help_text="Stop as soon as a trial reaches this score.")
    early_stop_trials = forms.IntegerField(
        min_value=1, required=False, initial=30, help_text="Stop after this many trials without improvement."
    )
    infer_limit_ms = forms.FloatField(
        min_value=0.1,
        max_value=60_000,
        required=False,
        initial=DEFAULT_INFER_LIMIT_MS,
        label="Scoring time limit (ms per row)",
        help_text="The final model must score one row within this, measured on one core; "
        "slower trials and ensembles are not chosen.",
    )
    best_accuracy_regardless_of_speed = forms.BooleanField(
        required=False,
        label="Best accuracy regardless of speed",
        help_text="Ignore the scoring time limit: the most accurate candidate wins, however slow.",
    )
    allowed_algorithms = forms.MultipleChoiceField(
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all of them.",
    )
    blocked_algorithms = forms.MultipleChoiceField(
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    # Forecasting only (the task's fields; required ones are checked in clean()).
    time_column = forms.ChoiceField(
        choices=[],
        required=False,  # required for a forecast (set in __init__)
        label="Time column",
        help_text="Dates or times; datetime columns first.",
        error_messages={"required": "Choose the time column: the dates of the series."},
    )
    series_columns = forms.MultipleChoiceField(
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Series id columns",
        help_text="None ticked: one series. Up to 3: one model over every series they name.",
    )
    horizon = forms.IntegerField(
        min_value=1,
        max_value=1000,
        required=False,  # required for a forecast (set in __init__)
        label="Horizon",
        help_text="How many steps ahead to forecast.",
        error_messages={"required": "Give the horizon: how many steps ahead to forecast."},
    )
    frequency = forms.ChoiceField(
        choices=FREQUENCY_CHOICES,
        required=False,
        error_messages={"invalid_choice": "%(value)s is not a frequency the studio knows."},
    )
    known_ahead = forms.MultipleChoiceField(
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Known-ahead features",
        help_text="Columns whose future values are known (a promotion plan, holidays): given at forecast time.",
    )
    gap = forms.IntegerField(
        min_value=0,
        max_value=1000,
        required=False,
        initial=0,
        help_text="Steps between the end of the history and the first forecast step.",
    )
    season_length = forms.IntegerField(
        min_value=1,
        max_value=1000,
        required=False,
        label="Season length",
        help_text="Left empty: from the frequency (12 for monthly, 7 for daily, 24 for hourly…).",
    )
    backtest_windows = forms.IntegerField(
        min_value=1,
        max_value=10,
        required=False,
        initial=3,
        label="Backtest windows",
        help_text="Rolling origins: each model is refit and scored on this many windows of the horizon.",
    )
    target = forms.TypedChoiceField(coerce=int, label="Compute cluster")
    experiment_name = forms.CharField(max_length=100, required=False, initial="Automated ML", label="Experiment")
    display_name = forms.CharField(max_length=200, required=False, label="Run name")
    register_as = forms.CharField(
        max_length=100,
        required=False,
        label="Register the best model as",
        help_text="Optional: a model name; the best model is registered when the run ends.",
    )
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args, versions, targets, mape: bool = True, **kwargs):
        """`mape`: offer MAPE (False when the target may hold zeros, from its profile)."""
        super().__init__(*args, **kwargs)
        chosen = self.data.get("task") if self.is_bound else self.initial.get("task")
        self.task_value = chosen if chosen in TASKS else CLASSIFICATION
        self.mape_offered = mape
        self.fields["primary_metric"].choices = [("", "— the task's default —")] + metric_choices(
            self.task_value, mape=mape
        )
        self.fields["primary_metric"].initial = DEFAULT_PRIMARY_METRIC[self.task_value]
        for name in ("allowed_algorithms", "blocked_algorithms"):
            self.fields[name].choices = algorithm_choices(self.task_value)
        choices = [(v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)") for v in versions]
        self.fields["data_version_id"].choices = choices
        self.fields["validation_data_version_id"].choices = [("", "—")] + choices
        self.fields["target"].choices = [(t.pk, f"{t.name} (up to {t.max_nodes} nodes)") for t in targets]
        self.targets = {t.pk: t for t in targets}
        self.versions = {v.pk: v for v in versions}
        self._offer_columns(self.data if self.is_bound else self.initial)
        for name in ("time_column", "horizon"):
            self.fields[name].required = self.task_value == FORECASTING

    def _offer_columns(self, chosen) -> None:
        """The forecasting fields' columns: the chosen data's, datetime ones first for the time column."""
        version = self.versions.get(parse_id(chosen.get("data_version_id")))
        columns = [c for c in (version.schema or {}).get("columns", []) if not c.get("excluded")] if version else []
        dated = [c for c in columns if c.get("semantic_type") == "datetime"]
        ordered = dated + [c for c in columns if c not in dated]
        self.fields["time_column"].choices = [("", "— choose —")] + [
            (c["name"], f"{c['name']} ({c.get('semantic_type', '?')})") for c in ordered
        ]
        names = [(c["name"], c["name"]) for c in columns]
        self.fields["series_columns"].choices = names
        self.fields["known_ahead"].choices = names

    def clean(self):
        data = super().clean()
        if data.get("task") != FORECASTING:
            return data
        if len(data.get("series_columns") or []) > 3:
            self.add_error("series_columns", "Tick at most 3 series id columns.")
        timeout = data.get("timeout_minutes")
        if timeout is not None and timeout < 0.5:
            self.add_error("timeout_minutes", "A forecasting run needs at least 0.5 minutes (30 s).")
        return data

    @classmethod
    def initial_from_job(cls, job) -> dict:
        """The wizard's initial values to clone the Automated ML run `job` (then edit and submit)."""
        spec, automl = job.spec, job.spec.get("automl", {})
        initial = {key: spec.get(key) for key in ("data_version_id", "target_column", "test_fraction", "seed")}
        initial["task"] = spec.get("task") or CLASSIFICATION
        initial |= {key: automl.get(key) for key in cls.base_fields if key in automl}
        initial |= {
            "validation_data_version_id": spec.get("validation_data_version_id"),
            "register_as": spec.get("register_as"),
            "target": job.target_id,
            "experiment_name": job.experiment.name if job.experiment else "",
            "display_name": f"{job.name} (clone)",
        }
        if initial["task"] == FORECASTING and automl.get("algorithms"):
            initial["allowed_algorithms"] = automl["algorithms"]
        if automl.get("timeout_s"):
            initial["timeout_minutes"] = automl["timeout_s"] / 60
        if automl.get("trial_timeout_s"):
            initial["trial_timeout_s"] = int(automl["trial_timeout_s"])
        if "infer_limit_ms" in automl and automl["infer_limit_ms"] is None:
            initial["best_accuracy_regardless_of_speed"] = True
        return {key: value for key, value in initial.items() if value is not None}

    def settings(self, overrides: dict) -> dict:
        data = self.cleaned_data
        if data["task"] == FORECASTING:
            return self._forecast_settings()
        settings = {
            "primary_metric": data.get("primary_metric") or DEFAULT_PRIMARY_METRIC[data["task"]],
            "validation": data["validation"],
            "n_folds": data.get("n_folds"),
            "holdout_fraction": data.get("holdout_fraction"),
            "max_trials": data["max_trials"],
            "max_concurrent_trials": data["max_concurrent_trials"],
            "trial_timeout_s": float(data["trial_timeout_s"]),
            "timeout_s": float(data["timeout_minutes"]) * 60,
            "metric_threshold": data.get("metric_threshold"),
            "early_stop_trials": data.get("early_stop_trials"),
            "allowed_algorithms": data.get("allowed_algorithms") or None,
            "blocked_algorithms": data.get("blocked_algorithms") or [],
            "infer_limit_ms": None
            if data.get("best_accuracy_regardless_of_speed")
            else (data.get("infer_limit_ms") or DEFAULT_INFER_LIMIT_MS),
        }
        if overrides:
            settings["column_overrides"] = overrides
        return settings

    def _forecast_settings(self) -> dict:
        """The contract's forecasting settings (spec["automl"]); no trials, so no trial limits."""
        data = self.cleaned_data
        chosen = data.get("allowed_algorithms") or list(FORECAST_ALGORITHMS)
        blocked = set(data.get("blocked_algorithms") or [])
        algorithms = [a for a in chosen if a not in blocked]
        return {
            "time_column": data["time_column"],
            "series_columns": data.get("series_columns") or [],
            "horizon": data["horizon"],
            "frequency": data.get("frequency") or None,
            "known_ahead": data.get("known_ahead") or [],
            "gap": data.get("gap") or 0,
            "season_length": data.get("season_length"),
            "backtest_windows": data.get("backtest_windows") or 3,
            "primary_metric": data.get("primary_metric") or DEFAULT_PRIMARY_METRIC[FORECASTING],
            "timeout_s": float(data["timeout_minutes"]) * 60,
            # every algorithm (None) unless the user narrowed the choice
            "algorithms": None if set(algorithms) == set(FORECAST_ALGORITHMS) else algorithms,
        }
