from rest_framework import serializers

from compute.jobs import kinds
from compute.jobs.models import Artifact, Job, JobEvent, JobLogLine, JobStatus
from studio.api.inputs import InputSerializer, QueryInputSerializer
from studio.ids import MAX_ID_DIGITS

from ..experiment_selectors import COLUMN_NAME, DEFAULT_SORT, MAX_COLUMNS
from ..experiment_services import NAME_MAX_LENGTH as EXPERIMENT_NAME_MAX_LENGTH
from ..experiment_services import NAME_PATTERN as EXPERIMENT_NAME_PATTERN
from ..experiment_services import NAME_RULE as EXPERIMENT_NAME_RULE
from ..models import Experiment
from ..selectors import job_task


class JobFilterIn(QueryInputSerializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=kinds.CHOICES, required=False, allow_blank=True)
    experiment = serializers.IntegerField(min_value=0, max_value=10**MAX_ID_DIGITS - 1, required=False)
    target = serializers.IntegerField(min_value=0, max_value=10**MAX_ID_DIGITS - 1, required=False)
    parent = serializers.CharField(
        required=False, allow_blank=True, help_text="A job id (its children), or `none` for top-level jobs"
    )
    q = serializers.CharField(required=False, allow_blank=True, help_text="Search in names and status reasons, or #id")


class JobIn(InputSerializer):
    kind = serializers.ChoiceField(choices=kinds.submittable_kinds())
    target = serializers.IntegerField(help_text="Id of a compute target of this workspace.")
    spec = serializers.DictField(
        required=False,
        default=dict,
        help_text=(
            "The job's parameters. train: {data_version_id, target_column, task (classification, the default, or "
            "regression: a numeric target), algorithm (of the task), hyperparameters, "
            "validation: {method: holdout, holdout_fraction} or {method: cv, n_folds}, seed}. "
            "diagnostic: {sleep_seconds}. batch_score: {model_version_id or endpoint_id, data_version_id, "
            "output_asset (optional; default <asset>-scored)}. command: {code_snapshot_id, command (with "
            "${{inputs.<name>}} and ${{outputs.<name>}}), environment_version_id, inputs: {name: {type: data, "
            "data_version_id} or a value}, outputs: {name: folder or model}, env: {NAME: value}, secret_env: "
            "{NAME: value} (sealed; shown as ***), network: false}."
        ),
    )
    experiment = serializers.CharField(max_length=100, required=False, allow_blank=True)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    time_limit_seconds = serializers.IntegerField(min_value=1, required=False)


class JobOut(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=kinds.CHOICES, read_only=True)  # the kinds the apps registered
    target = serializers.SerializerMethodField()
    node = serializers.CharField(source="node.name", default=None)
    experiment = serializers.CharField(source="experiment.name", default=None)
    submitted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    data_version = serializers.SerializerMethodField()
    spec = serializers.DictField(source="public_spec", read_only=True)
    task = serializers.SerializerMethodField(help_text="A training job's task: classification or regression.")

    class Meta:
        model = Job
        fields = [
            "id",
            "display_name",
            "kind",
            "status",
            "status_reason",
            "target",
            "node",
            "experiment",
            "parent",
            "spec",
            "task",
            "data_version",
            "attempt",
            "max_attempts",
            "time_limit_seconds",
            "submitted_by",
            "created_at",
            "started_at",
            "running_at",
            "finished_at",
            "cancel_requested_at",
            "duration_seconds",
            "result",
            "error",
        ]

    def get_target(self, job) -> dict | None:
        return {"id": job.target_id, "name": job.target.name} if job.target_id else None

    def get_task(self, job) -> str | None:
        return job_task(job)

    def get_data_version(self, job) -> dict | None:
        if not job.data_version_id:
            return None
        return {"id": job.data_version_id, "asset": job.data_version.asset.name, "version": job.data_version.version}


class JobEventOut(serializers.ModelSerializer):
    node = serializers.CharField(source="node.name", default=None)

    class Meta:
        model = JobEvent
        fields = ["at", "status", "reason", "attempt", "node"]


class LogLineOut(serializers.ModelSerializer):
    class Meta:
        model = JobLogLine
        fields = ["seq", "at", "attempt", "text"]


class LogOut(serializers.Serializer):
    lines = LogLineOut(many=True)
    last = serializers.IntegerField(help_text="Pass as `after` to get the next lines.")
    active = serializers.BooleanField(help_text="The job may still write more lines.")


class MetricPointOut(serializers.Serializer):
    step = serializers.IntegerField()
    value = serializers.FloatField()


class MetricSeriesOut(serializers.Serializer):
    name = serializers.CharField()
    points = MetricPointOut(many=True)


class ArtifactOut(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["id", "name", "kind", "size", "sha256", "created_at"]


class ExperimentOut(serializers.ModelSerializer):
    class Meta:
        model = Experiment
        fields = ["id", "name", "description", "created_at"]


class ExperimentIn(InputSerializer):
    name = serializers.RegexField(
        EXPERIMENT_NAME_PATTERN,  # the service's rule, stated in the schema
        max_length=EXPERIMENT_NAME_MAX_LENGTH,
        error_messages={"invalid": EXPERIMENT_NAME_RULE},
        help_text="Any text without control characters, unique here.",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


NAMES_PATTERN = r"^[^\x00-\x1f\x7f]*$"
NAME_RULE = "A name has 1–250 characters, with no control characters."


def _names(value: str) -> list[str]:
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if len(names) > MAX_COLUMNS:
        raise serializers.ValidationError(f"Ask for at most {MAX_COLUMNS} names.")
    if not all(COLUMN_NAME.match(name) for name in names):
        raise serializers.ValidationError(NAME_RULE)
    return names


class ExperimentRunsIn(QueryInputSerializer):
    sort = serializers.CharField(
        required=False,
        default=DEFAULT_SORT,
        help_text="name, status, kind, created, duration, metrics.<name> or params.<key>; a leading - for "
        "descending. Runs without the value come last either way.",
    )
    # The pattern puts the "no control characters" rule in the schema too, so clients know it.
    metrics = serializers.RegexField(
        NAMES_PATTERN,
        required=False,
        default="",
        allow_blank=True,
        error_messages={"invalid": NAME_RULE},
        help_text="Metric names to return, comma-separated (no control characters).",
    )
    params = serializers.RegexField(
        NAMES_PATTERN,
        required=False,
        default="",
        allow_blank=True,
        error_messages={"invalid": NAME_RULE},
        help_text="Parameter keys to return, comma-separated (no control characters).",
    )
    trials = serializers.BooleanField(required=False, default=False, help_text="Include Automated ML trials.")

    def validate_metrics(self, value):
        return _names(value)

    def validate_params(self, value):
        return _names(value)


class ExperimentRunOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    parent = serializers.IntegerField(source="parent_id", allow_null=True)
    created_at = serializers.DateTimeField()
    duration_seconds = serializers.FloatField(allow_null=True)
    metrics = serializers.DictField(
        source="metric_map",
        child=serializers.FloatField(allow_null=True),
        help_text="Latest value of each asked metric.",
    )
    params = serializers.DictField(source="param_map", child=serializers.CharField(allow_null=True))
