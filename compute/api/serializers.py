from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from studio.api.inputs import InputSerializer

from .. import instance_addons
from ..models import NODE_SIZES, TARGET_NAME_MESSAGE, TARGET_NAME_PATTERN, ComputeTarget, Node, Priority, TargetKind


class TargetIn(InputSerializer):
    kind = serializers.ChoiceField(choices=TargetKind.choices)
    name = serializers.RegexField(
        TARGET_NAME_PATTERN,
        max_length=64,
        help_text="2–64 letters, digits or hyphens.",
        error_messages={"invalid": TARGET_NAME_MESSAGE},
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    size = serializers.ChoiceField(choices=list(NODE_SIZES), required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    min_nodes = serializers.IntegerField(min_value=0, max_value=100, required=False)
    max_nodes = serializers.IntegerField(min_value=1, max_value=100, required=False)
    idle_seconds_before_scaledown = serializers.IntegerField(min_value=0, max_value=7 * 24 * 3600, required=False)
    idle_shutdown_minutes = serializers.IntegerField(
        min_value=1, max_value=7 * 24 * 60, required=False, allow_null=True
    )


class TargetUpdateIn(InputSerializer):
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    min_nodes = serializers.IntegerField(min_value=0, max_value=100, required=False)
    max_nodes = serializers.IntegerField(min_value=1, max_value=100, required=False)
    idle_seconds_before_scaledown = serializers.IntegerField(min_value=0, max_value=7 * 24 * 3600, required=False)
    idle_shutdown_minutes = serializers.IntegerField(
        min_value=1, max_value=7 * 24 * 60, required=False, allow_null=True
    )


class NodeCountsOut(serializers.Serializer):
    starting = serializers.IntegerField(source="nodes_starting")
    idle = serializers.IntegerField(source="nodes_idle")
    busy = serializers.IntegerField(source="nodes_busy")
    leaving = serializers.IntegerField(source="nodes_leaving")


class TargetOut(serializers.ModelSerializer):
    nodes = NodeCountsOut(source="*")
    jobs_queued = serializers.IntegerField()
    jobs_running = serializers.IntegerField()
    queue = serializers.CharField()
    price_per_node_hour = serializers.DecimalField(max_digits=8, decimal_places=4)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ComputeTarget
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "size",
            "priority",
            "min_nodes",
            "max_nodes",
            "idle_seconds_before_scaledown",
            "owner",
            "instance_running",
            "idle_shutdown_minutes",
            "is_default",
            "queue",
            "price_per_node_hour",
            "nodes",
            "jobs_queued",
            "jobs_running",
            "created_at",
            "updated_at",
        ]


class InstanceLabOut(serializers.Serializer):
    """A compute instance's JupyterLab (filled by labs, registered in compute.instance_addons)."""

    state = serializers.ChoiceField(choices=["stopped", "starting", "ready", "failed"])
    reason = serializers.CharField(help_text="Why it is starting, stopped or failed.")
    log_tail = serializers.CharField(help_text="The lab's last log lines, when it failed.")
    url = serializers.CharField(
        allow_null=True, help_text="Where to open JupyterLab: only for the instance's owner, only while ready."
    )
    environment_version = serializers.IntegerField(
        allow_null=True, help_text="The environment version the lab starts in; null: the studio's default."
    )
    environment = serializers.CharField()
    ready_at = serializers.DateTimeField(allow_null=True)


class TargetDetailOut(TargetOut):
    lab = serializers.SerializerMethodField()

    class Meta(TargetOut.Meta):
        fields = TargetOut.Meta.fields + ["lab"]

    @extend_schema_field(InstanceLabOut(allow_null=True))
    def get_lab(self, target):
        if target.kind != TargetKind.INSTANCE:
            return None
        summary = instance_addons.lab_summary(target, self.context["request"].user)
        return InstanceLabOut(summary).data if summary is not None else None


class TargetCreatedOut(TargetOut):
    join_token = serializers.CharField(allow_null=True, help_text="Attached compute only; shown once.")

    class Meta(TargetOut.Meta):
        fields = TargetOut.Meta.fields + ["join_token"]


class JoinTokenOut(serializers.Serializer):
    join_token = serializers.CharField(help_text="Shown once.")


class NodeOut(serializers.ModelSerializer):
    name = serializers.CharField()

    class Meta:
        model = Node
        fields = [
            "id",
            "name",
            "status",
            "reason",
            "provisioner",
            "hostname",
            "pid",
            "requested_at",
            "started_at",
            "ready_at",
            "last_heartbeat_at",
            "idle_since",
            "stopped_at",
            "jobs_run",
            "deployment_id",
            "address",
            "in_flight",
        ]
        extra_kwargs = {
            "deployment_id": {"help_text": "Serving replicas: the deployment this node serves (else null)."},
            "address": {"help_text": "Serving replicas: host:port the replica answers on."},
            "in_flight": {"help_text": "Serving replicas: requests being scored at its last heartbeat."},
        }


class UsageRowOut(serializers.Serializer):
    target = serializers.CharField()
    days = serializers.ListField(child=serializers.DateField())
    node_hours = serializers.ListField(child=serializers.FloatField())
    cost = serializers.ListField(child=serializers.FloatField())
    month_node_hours = serializers.FloatField()
    month_cost = serializers.DecimalField(max_digits=12, decimal_places=4)


class UsageOut(serializers.Serializer):
    month_node_hours = serializers.FloatField()
    month_cost = serializers.DecimalField(max_digits=12, decimal_places=4)
    targets = UsageRowOut(many=True)


class QuotaOut(serializers.Serializer):
    max_nodes = serializers.IntegerField(
        help_text="Nodes the workspace may run at once across its clusters and instances."
    )
    max_cores = serializers.IntegerField(help_text="Cores (by node size) the workspace may run at once.")
    nodes = serializers.IntegerField(help_text="Nodes running, starting or requested now.")
    cores = serializers.IntegerField(help_text="Their cores.")
