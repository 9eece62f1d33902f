"""Bodies of the run API (a job's own code talking about itself)."""

from rest_framework import serializers

from compute.jobs.models import PARAM_KEY_MAX, PARAM_VALUE_MAX, Artifact
from compute.jobs.run_services import MAX_METRICS_PER_CALL, MAX_PARAMS_PER_JOB, METRIC_KEY_MAX, STEP_MAX, STEP_MIN
from studio.api.inputs import InputSerializer, QueryInputSerializer

NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]+$"


class RunInputOut(serializers.Serializer):
    name = serializers.CharField(help_text="The input's name in the job's spec; download it at `url`.")
    type = serializers.CharField(help_text="`data`: a data version.")
    data_version_id = serializers.IntegerField()
    asset = serializers.CharField(allow_null=True, help_text="The data asset's name; null if the version is gone.")
    version = serializers.IntegerField(allow_null=True)
    rows = serializers.IntegerField(allow_null=True)
    columns = serializers.IntegerField(allow_null=True)
    url = serializers.CharField(help_text="Where the job downloads it (`?format=parquet` or `csv`).")


class RunOut(serializers.Serializer):
    id = serializers.IntegerField(help_text="The job's id.")
    workspace_id = serializers.IntegerField()
    kind = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    attempt = serializers.IntegerField()
    time_limit_seconds = serializers.IntegerField()
    inputs = RunInputOut(many=True)
    token_expires_at = serializers.DateTimeField(help_text="When the token this call used expires.")


class MetricIn(InputSerializer):
    key = serializers.RegexField(NO_CONTROL_CHARACTERS, max_length=METRIC_KEY_MAX, trim_whitespace=False)
    value = serializers.FloatField(help_text="A finite number.")
    step = serializers.IntegerField(min_value=STEP_MIN, max_value=STEP_MAX, default=0)


class RunMetricsIn(InputSerializer):
    metrics = MetricIn(many=True, allow_empty=False, max_length=MAX_METRICS_PER_CALL)

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(_indexed(exc.detail)) from None


def _indexed(detail):
    """DRF reports the bad items of a list by index ({3: {"value": [...]}}): say "Item 3: value: ..."."""
    items = detail.get("metrics") if isinstance(detail, dict) else None
    if isinstance(items, list):
        items = dict(enumerate(items))
    if not isinstance(items, dict) or not any(isinstance(item, dict) for item in items.values()):
        return detail
    messages = [
        f"Item {i}: {field}: {message}"
        for i, item in sorted(items.items())
        if isinstance(item, dict)
        for field, texts in item.items()
        for message in (texts if isinstance(texts, list) else [texts])
    ]
    return {**detail, "metrics": messages}


class RunParamsIn(InputSerializer):
    params = serializers.DictField(
        child=serializers.CharField(max_length=PARAM_VALUE_MAX, allow_blank=True, trim_whitespace=False),
        allow_empty=False,
        help_text=(
            f"{{name: value}}: names of 1–{PARAM_KEY_MAX} characters without control characters, "
            f"text values of up to {PARAM_VALUE_MAX} characters; at most {MAX_PARAMS_PER_JOB} per job. "
            "A parameter never changes once set (another value is a 409)."
        ),
    )

    def validate_params(self, value):
        if len(value) > MAX_PARAMS_PER_JOB:
            raise serializers.ValidationError(f"Send at most {MAX_PARAMS_PER_JOB} parameters.")
        return value


class RecordedOut(serializers.Serializer):
    recorded = serializers.IntegerField(help_text="How many values were recorded (new parameters only).")


class RunArtifactOut(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["id", "name", "kind", "size", "sha256", "created_at"]


class RunInputQueryIn(QueryInputSerializer):
    format = serializers.ChoiceField(choices=["parquet", "csv"], default="parquet")
