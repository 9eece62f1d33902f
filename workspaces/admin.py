from django.contrib import admin

from . import services
from .admin_console import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin
from .models import Activity, Membership, Workspace


class MembershipInline(ReadOnlyInline, admin.TabularInline):
    model = Membership
    fk_name = "workspace"
    fields = ["user", "role", "added_by", "created_at"]
    readonly_fields = fields


@admin.register(Workspace)
class WorkspaceAdmin(ServiceAdmin):
    """Name and description through `workspace_update`, deletion (with its files) through
    `workspace_delete`; the storage quota is staff's own setting."""

    list_display = ["name", "id", "storage_quota_bytes", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "created_by__username"]
    list_filter = ["created_at"]
    date_hierarchy = "created_at"
    list_select_related = ["created_by"]
    inlines = [MembershipInline]
    fields = ["name", "description", "storage_quota_bytes", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]

    def service_add(self, actor, obj, form):
        workspace = services.workspace_create(actor=actor, name=obj.name, description=obj.description)
        if obj.storage_quota_bytes is not None:
            Workspace.objects.filter(pk=workspace.pk).update(storage_quota_bytes=obj.storage_quota_bytes)
        return workspace

    def service_save(self, actor, obj, form):
        # The service compares with the stored row (the form has already changed `obj`).
        stored = Workspace.objects.get(pk=obj.pk)
        services.workspace_update(actor=actor, workspace=stored, name=obj.name, description=obj.description)
        if "storage_quota_bytes" in form.changed_data:
            Workspace.objects.filter(pk=obj.pk).update(storage_quota_bytes=obj.storage_quota_bytes)
            services.activity_record(
                workspace=obj,
                actor=actor,
                verb="storage_quota_set",
                summary=f"{actor} set the storage quota to {obj.storage_quota_bytes or 'the default'} bytes",
            )

    def service_delete(self, actor, obj):
        services.workspace_delete(actor=actor, workspace=obj)


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    """Members are added, re-roled and removed through the member services: the last Owner stays."""

    list_display = ["user", "workspace", "role", "added_by", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__username", "workspace__name"]
    list_select_related = ["user", "workspace", "added_by"]
    raw_id_fields = ["user", "workspace"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "workspace", "added_by"] if obj else ["added_by"]

    def service_add(self, actor, obj, form):
        return services.member_add(actor=actor, workspace=obj.workspace, username=obj.user.username, role=obj.role)

    def service_save(self, actor, obj, form):
        services.member_change_role(actor=actor, workspace=obj.workspace, membership=obj, role=obj.role)

    def service_delete(self, actor, obj):
        services.member_remove(actor=actor, workspace=obj.workspace, membership=obj)


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "actor", "verb", "summary"]
    list_filter = ["verb", "created_at"]
    search_fields = ["summary", "workspace__name", "actor__username"]
    list_select_related = ["workspace", "actor"]
    date_hierarchy = "created_at"
    raw_id_fields = ["workspace", "actor"]
