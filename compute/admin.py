from django.contrib import admin

from . import services
from .models import ComputeQuota, ComputeTarget, Node, NodeSession


class NodeInline(admin.TabularInline):
    model = Node
    extra = 0
    fields = ["status", "reason", "hostname", "pid", "last_heartbeat_at", "jobs_run"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=["requested", "starting", "idle", "busy", "leaving"])


@admin.register(ComputeTarget)
class ComputeTargetAdmin(admin.ModelAdmin):
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
    raw_id_fields = ["workspace", "owner", "created_by"]
    exclude = ["join_token_hash"]
    readonly_fields = ["join_token_prefix"]
    inlines = [NodeInline]


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
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
    raw_id_fields = ["target"]
    date_hierarchy = "requested_at"


@admin.register(NodeSession)
class NodeSessionAdmin(admin.ModelAdmin):
    list_display = ["node", "target", "workspace", "started_at", "ended_at", "price_per_hour"]
    list_filter = ["started_at"]
    search_fields = ["target__name", "workspace__name"]
    list_select_related = ["node", "target", "workspace"]
    raw_id_fields = ["node", "target", "workspace"]
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
