"""Automated ML API: start a run; read its guardrails, live leaderboard and best model."""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from compute.jobs.selectors import job_get
from compute.models import ComputeTarget
from data.selectors import data_version_get_by_id
from studio.api.inputs import InputSerializer
from training.models import TrainingJobKind
from workspaces.api.base import WorkspaceApiView

from .. import automl_services
from ..automl_selectors import automl_run_get
from ..ml.search import DEFAULT_INFER_LIMIT_MS
from ..ml.tasks import (
    CLASSIFICATION,
    DEFAULT_PRIMARY_METRIC,
    FORECASTING,
    FORECASTING_PRIMARY_METRICS,
    REGRESSION,
    REGRESSION_PRIMARY_METRICS,
    TASKS,
)
from .serializers import JobOut

CLASSIFICATION_METRICS = (
    "accuracy",
    "auc_weighted",
    "balanced_accuracy",
    "f1_weighted",
    "average_precision_weighted",
    "log_loss",
)
TASK_METRICS = {CLASSIFICATION: CLASSIFICATION_METRICS, REGRESSION: REGRESSION_PRIMARY_METRICS}


class AutoMLSettingsIn(InputSerializer):
    primary_metric = serializers.ChoiceField(
        choices=[*CLASSIFICATION_METRICS, *REGRESSION_PRIMARY_METRICS],
        required=False,
        help_text="Classification: accuracy, auc_weighted (the default), balanced_accuracy, f1_weighted, "
        "average_precision_weighted, log_loss. Regression: normalized_rmse (the default), rmse, mae, r2, "
        "spearman, mape (refused when the target has zeros).",
    )
    validation = serializers.ChoiceField(choices=["auto", "cv", "holdout"], default="auto")
    n_folds = serializers.IntegerField(min_value=2, max_value=20, required=False, allow_null=True)
    holdout_fraction = serializers.FloatField(min_value=0.05, max_value=0.5, required=False, allow_null=True)
    timeout_s = serializers.FloatField(min_value=10, max_value=86400, default=600)
    trial_timeout_s = serializers.FloatField(min_value=5, max_value=86400, default=120)
    max_trials = serializers.IntegerField(min_value=1, max_value=1000, default=100)
    max_concurrent_trials = serializers.IntegerField(min_value=1, max_value=64, default=2)
    metric_threshold = serializers.FloatField(required=False, allow_null=True)
    early_stop_trials = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    allowed_algorithms = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="Names of the task's algorithms (regression: ridge, lasso, elastic_net, random_forest, "
        "extra_trees, gradient_boosting, hist_gradient_boosting, lightgbm, knn, svr); null: all of them.",
    )
    blocked_algorithms = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    infer_limit_ms = serializers.FloatField(
        min_value=0.1,
        max_value=60_000,
        default=DEFAULT_INFER_LIMIT_MS,
        allow_null=True,
        help_text="The most a 1-row scoring call of the final model may take (ms); candidates measured "
        "slower are not chosen. null: the best accuracy regardless of speed.",
    )
    column_overrides = serializers.DictField(
        child=serializers.DictField(), required=False, help_text='{column: {"type"?, "impute"?, "exclude"?}}'
    )


class ForecastSettingsIn(InputSerializer):
    """A forecasting run's settings (task "forecasting"): checked against the data when the run is
    submitted; a 400 names the setting at fault (time_column, horizon, ...) at the top level."""

    time_column = serializers.CharField(help_text="The column that dates each row (it must parse as dates).")
    horizon = serializers.IntegerField(help_text="How many steps to forecast (1 to 1000).")
    series_columns = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="0 to 3 columns naming each series."
    )
    frequency = serializers.CharField(
        required=False, allow_null=True, help_text='A pandas offset alias ("D", "W-MON", "MS", ...); null: inferred.'
    )
    known_ahead = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Feature columns whose future values are known."
    )
    gap = serializers.IntegerField(required=False, help_text="Steps between the history's end and the forecast.")
    season_length = serializers.IntegerField(required=False, allow_null=True)
    backtest_windows = serializers.IntegerField(required=False, help_text="Rolling origins (1 to 10, default 3).")
    primary_metric = serializers.ChoiceField(choices=FORECASTING_PRIMARY_METRICS, required=False)
    timeout_s = serializers.FloatField(required=False, help_text="30 to 86400 seconds (default 600).")
    algorithms = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)


class AutoMLIn(InputSerializer):
    data_version = serializers.IntegerField(help_text="Id of a data version of this workspace.")
    target_column = serializers.CharField(max_length=200)
    task = serializers.ChoiceField(
        choices=list(TASKS.items()),
        default=CLASSIFICATION,
        help_text="classification (predict a class), regression (predict a number: the target must be numeric) "
        "or forecasting (the settings are then ForecastSettingsIn's).",
    )
    target = serializers.IntegerField(help_text="Id of a compute cluster of this workspace.")
    settings = AutoMLSettingsIn(required=False)
    validation_data_version = serializers.IntegerField(required=False, allow_null=True)
    test_fraction = serializers.FloatField(min_value=0, max_value=0.45, default=0.2)
    seed = serializers.IntegerField(default=0)
    register_as = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    experiment = serializers.CharField(max_length=100, required=False, allow_blank=True)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ForecastAutoMLIn(AutoMLIn):
    settings = serializers.DictField(required=False, help_text="ForecastSettingsIn's fields.")


class AutoMLStartApi(WorkspaceApiView):
    @extend_schema(
        request=AutoMLIn,
        responses={201: JobOut},
        summary="Start an Automated ML run (classification, regression or forecasting)",
    )
    def post(self, request, workspace_id):
        forecasting = isinstance(request.data, dict) and request.data.get("task") == FORECASTING
        data = (ForecastAutoMLIn if forecasting else AutoMLIn)(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        target = ComputeTarget.objects.filter(workspace=self.workspace, pk=values["target"]).first()
        if target is None:
            raise ValidationError(
                {"target": ValidationError("This workspace has no compute target with that id.", code="not_found")}
            )
        if forecasting:  # checked by the run's kind, which names each setting at fault
            settings = dict(values.get("settings") or {})
        elif "settings" in values:
            settings = dict(values["settings"])
        else:
            defaults = AutoMLSettingsIn(data={})
            defaults.is_valid(raise_exception=True)
            settings = dict(defaults.validated_data)
        # null means "not set" except for the inference-time limit, where it means "no limit"
        settings = {k: v for k, v in settings.items() if v is not None or k == "infer_limit_ms"}
        settings.setdefault("primary_metric", DEFAULT_PRIMARY_METRIC[values["task"]])
        validation_version = (
            data_version_get_by_id(workspace=self.workspace, version_id=values["validation_data_version"])
            if values.get("validation_data_version")
            else None
        )
        data_version = data_version_get_by_id(workspace=self.workspace, version_id=values["data_version"])
        # checked once the ids are known to be this workspace's (a missing one is a 404 first)
        if not forecasting:
            _check_metric(values["task"], settings["primary_metric"])
        job = automl_services.automl_submit(
            actor=request.user,
            workspace=self.workspace,
            target=target,
            data_version=data_version,
            target_column=values["target_column"],
            task=values["task"],
            settings=settings,
            test_fraction=values["test_fraction"],
            seed=values["seed"],
            validation_data_version=validation_version,
            experiment_name=values.get("experiment"),
            display_name=values["display_name"],
            register_as=values["register_as"],
        )
        return Response(JobOut(job).data, status=status.HTTP_201_CREATED)


def _check_metric(task: str, metric: str) -> None:
    if metric not in TASK_METRICS[task]:
        message = f"{metric} is not a {task} metric; choose one of: {', '.join(TASK_METRICS[task])}."
        raise ValidationError({"settings": [f"primary_metric: {message}"]})


class LeaderboardRowOut(serializers.Serializer):
    trial_id = serializers.IntegerField()
    job = serializers.IntegerField(source="job.pk")
    status = serializers.CharField(source="job.status")
    algorithm = serializers.CharField()
    params = serializers.CharField(help_text="The trial's hyperparameters as JSON, keys sorted.")
    score = serializers.FloatField(allow_null=True, help_text="On the run's primary metric; null until scored.")
    metrics = serializers.JSONField(help_text="{metric: value} on the validation folds.")
    duration_seconds = serializers.FloatField(source="duration", allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True, help_text="Median 1-row predict time of the trial's model.")
    within_infer_limit = serializers.BooleanField(source="within_limit")
    error = serializers.CharField(allow_null=True)


class CandidateOut(serializers.Serializer):
    kind = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    members = serializers.ListField(child=serializers.IntegerField(), help_text="Trial ids.")
    latency_ms = serializers.FloatField(allow_null=True)
    within_limit = serializers.BooleanField()


class BestModelOut(serializers.Serializer):
    """The final-model job; its results are null until it completes."""

    job = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    kind = serializers.CharField(source="result.final_kind", default=None, help_text="single or an ensemble kind")
    members = serializers.JSONField(source="result.members", default=None, help_text="[{trial_id, weight?}]")
    test_metrics = serializers.JSONField(source="result.test_metrics", default=None)
    validation_score = serializers.FloatField(source="result.validation_score", default=None)
    latency_ms = serializers.FloatField(source="result.latency_ms", default=None)
    infer_limit_met = serializers.BooleanField(source="result.infer_limit_met", default=None, allow_null=True)
    candidates = CandidateOut(source="result.candidates", many=True, default=None, allow_null=True)


class AutoMLRunOut(serializers.Serializer):
    run = JobOut(source="job")
    task = serializers.ChoiceField(choices=list(TASKS.items()), help_text="classification or regression")
    guardrails = serializers.ListField(child=serializers.JSONField(), help_text="[{name, status, message, ...}]")
    validation = serializers.JSONField(source="setup.validation", default=None)
    first_trial_seconds = serializers.FloatField(source="first_trial_s", allow_null=True)
    infer_limit_ms = serializers.FloatField(allow_null=True)
    leaderboard = LeaderboardRowOut(many=True, help_text="Scored trials best first, then the others.")
    best_model = BestModelOut(source="final", allow_null=True)


class ForecastRunOut(serializers.Serializer):
    """A forecasting run: one job; its result fields are null until it completes."""

    run = JobOut(source="*")
    task = serializers.CharField(default=FORECASTING)
    frequency = serializers.CharField(source="result.frequency", default=None)
    frequency_inferred = serializers.BooleanField(source="result.frequency_inferred", default=None, allow_null=True)
    season_length = serializers.IntegerField(source="result.season_length", default=None)
    horizon = serializers.IntegerField(source="spec.automl.horizon")
    series_count = serializers.IntegerField(source="result.series_count", default=None)
    guardrails = serializers.JSONField(source="result.guardrails", default=list)
    leaderboard = serializers.JSONField(source="result.leaderboard", default=list, help_text="Best first.")
    algorithm = serializers.CharField(source="result.algorithm", default=None)
    members = serializers.JSONField(source="result.members", default=None, help_text="[{algorithm, weight}]")
    metrics = serializers.JSONField(source="result.metrics", default=None, help_text="Backtest: mase, smape, ...")
    primary_metric = serializers.CharField(source="spec.automl.primary_metric")
    validation_score = serializers.FloatField(source="result.validation_score", default=None)
    backtest = serializers.JSONField(source="result.backtest", default=None, help_text="{windows: [...]}")
    stop_reason = serializers.CharField(source="result.stop_reason", default=None)
    registered = serializers.CharField(source="result.registered", default=None)
    latency_ms = serializers.FloatField(source="result.latency_ms", default=None)


class AutoMLRunApi(WorkspaceApiView):
    @extend_schema(
        responses=AutoMLRunOut,  # a forecasting run answers ForecastRunOut
        summary="A run's guardrails, live leaderboard and best model (poll while it runs)",
    )
    def get(self, request, workspace_id, job_id):
        job = job_get(workspace=self.workspace, job_id=job_id)
        if job.kind != TrainingJobKind.AUTOML:
            raise ValidationError({"job_id": [f"Job #{job.pk} is not an Automated ML run."]})
        if job.spec.get("task") == FORECASTING:
            return Response(ForecastRunOut(job).data)
        return Response(AutoMLRunOut(automl_run_get(job=job)).data)
