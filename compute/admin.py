from django.contrib import admin

from workspaces.admin_console import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin

from . import services
from .jobs.models import JobParam, JobToken, LatestMetric
from .models import ComputeQuota, ComputeTarget, Node, NodeSession, ServingSession


class NodeInline(ReadOnlyInline, admin.TabularInline):
    model = Node
    fields = ["status", "reason", "hostname", "pid", "last_heartbeat_at", "jobs_run"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=["requested", "starting", "idle", "busy", "leaving"])


@admin.register(ComputeTarget)
class ComputeTargetAdmin(ServiceAdmin):
    """Scale settings through `target_update` (within the quota), deletion through `target_delete`
    (refused while jobs use the target); targets are created in the studio."""

    list_display = [
        "name",
        "workspace",
        "kind",
        "size",
        "priority",
        "min_nodes",
        "max_nodes",
        "idle_seconds_before_scaledown",
        "is_default",
        "created_at",
    ]
    list_filter = ["kind", "size", "priority", "is_default"]
    search_fields = ["name", "workspace__name", "description"]
    list_select_related = ["workspace"]
    fields = [
        "name",
        "workspace",
        "kind",
        "size",
        "owner",
        "description",
        "priority",
        "min_nodes",
        "max_nodes",
        "idle_seconds_before_scaledown",
        "idle_shutdown_minutes",
        "is_default",
        "join_token_prefix",
    ]
    readonly_fields = ["name", "workspace", "kind", "size", "owner", "is_default", "join_token_prefix"]
    inlines = [NodeInline]

    def service_save(self, actor, obj, form):
        services.target_update(
            actor=actor,
            target=obj,
            description=obj.description,
            min_nodes=obj.min_nodes,
            max_nodes=obj.max_nodes,
            idle_seconds_before_scaledown=obj.idle_seconds_before_scaledown,
            priority=obj.priority,
            idle_shutdown_minutes=obj.idle_shutdown_minutes,
        )

    def service_delete(self, actor, obj):
        services.target_delete(actor=actor, target=obj)


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "target",
        "status",
        "reason",
        "provisioner",
        "hostname",
        "pid",
        "last_heartbeat_at",
        "jobs_run",
        "requested_at",
    ]
    list_filter = ["status", "provisioner", "target__kind"]
    search_fields = ["hostname", "target__name", "reason"]
    list_select_related = ["target"]
    date_hierarchy = "requested_at"


@admin.register(NodeSession)
class NodeSessionAdmin(ReadOnlyAdmin):
    list_display = ["node", "target", "workspace", "started_at", "ended_at", "price_per_hour"]
    list_filter = ["started_at"]
    search_fields = ["target__name", "workspace__name"]
    list_select_related = ["node", "target", "workspace"]
    date_hierarchy = "started_at"


@admin.register(ServingSession)
class ServingSessionAdmin(ReadOnlyAdmin):
    """Metered serving replicas: opened and closed by the endpoint services, read-only here."""

    list_display = ["deployment_name", "target", "workspace", "replicas", "started_at", "ended_at", "price_per_hour"]
    list_filter = ["started_at"]
    search_fields = ["deployment_name", "target__name", "workspace__name"]
    list_select_related = ["target", "workspace"]
    date_hierarchy = "started_at"


@admin.register(ComputeQuota)
class ComputeQuotaAdmin(admin.ModelAdmin):
    """Staff override a workspace's compute quota here; empty fields keep the studio-wide default."""

    list_display = ["workspace", "max_nodes", "max_cores", "updated_by", "updated_at"]
    search_fields = ["workspace__name"]
    list_select_related = ["workspace", "updated_by"]
    raw_id_fields = ["workspace"]
    fields = ["workspace", "max_nodes", "max_cores"]

    def has_delete_permission(self, request, obj=None):
        return False  # empty fields give the default back, through the service

    def save_model(self, request, obj, form, change):
        saved = services.compute_quota_set(
            actor=request.user, workspace=obj.workspace, max_nodes=obj.max_nodes, max_cores=obj.max_cores
        )
        obj.pk = saved.pk


@admin.register(JobToken)
class JobTokenAdmin(ReadOnlyAdmin):
    """A running job's own keys: issued and revoked by the engine; only hashes are kept."""

    list_display = ["job", "created_at", "expires_at", "revoked_at"]
    list_filter = ["created_at"]
    search_fields = ["job__display_name"]
    list_select_related = ["job"]
    exclude = ["key_hash"]


@admin.register(JobParam)
class JobParamAdmin(ReadOnlyAdmin):
    """Parameters a job's code logged through the run API: set once, read-only."""

    list_display = ["job", "key", "value"]
    search_fields = ["key", "job__display_name"]
    list_select_related = ["job"]


@admin.register(LatestMetric)
class LatestMetricAdmin(ReadOnlyAdmin):
    """Each job's latest value per metric, kept by the engine as metrics arrive."""

    list_display = ["job", "name", "value", "step", "at"]
    search_fields = ["name", "job__display_name"]
    list_select_related = ["job"]
