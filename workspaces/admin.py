from django.contrib import admin

from . import data_services, services
from .admin_console import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin
from .data_services import upload_slot_release
from .models import Activity, DataAsset, DataVersion, Ingest, Membership, UploadSlot, Workspace


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


@admin.register(DataAsset)
class DataAssetAdmin(ServiceAdmin):
    list_display = ["name", "workspace", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    fields = ["name", "workspace", "description", "created_by", "created_at"]
    readonly_fields = ["name", "workspace", "created_by", "created_at"]

    def service_save(self, actor, obj, form):
        data_services.data_asset_update(actor=actor, asset=obj, description=obj.description)

    def service_delete(self, actor, obj):
        data_services.data_asset_delete(actor=actor, asset=obj)


@admin.register(DataVersion)
class DataVersionAdmin(ServiceAdmin):
    """Versions are immutable; deleting one goes through `data_version_delete` (refs checked, files freed)."""

    list_display = ["asset", "version", "rows", "columns", "parquet_size", "source_format", "created_by", "created_at"]
    list_filter = ["source_format", "created_at"]
    search_fields = ["asset__name", "source_name", "description"]
    list_select_related = ["asset", "created_by"]

    def service_delete(self, actor, obj):
        data_services.data_version_delete(actor=actor, version=obj)


@admin.register(Ingest)
class IngestAdmin(ReadOnlyAdmin):
    list_display = ["id", "asset_name", "workspace", "status", "source_name", "source_size", "created_by", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["asset_name", "source_name", "workspace__name"]
    list_select_related = ["workspace", "created_by"]


@admin.register(UploadSlot)
class UploadSlotAdmin(admin.ModelAdmin):
    """Uploads in progress; staff may free a slot a stuck upload holds (the sweep would, later)."""

    list_display = ["user", "number", "started_at", "touched_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    readonly_fields = ["user", "number", "started_at", "touched_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        upload_slot_release(slot=obj)

    def delete_queryset(self, request, queryset):
        for slot in queryset:
            upload_slot_release(slot=slot)
