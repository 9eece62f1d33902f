from django.contrib import admin

from .data_services import upload_slot_release
from .models import Activity, DataAsset, DataVersion, Ingest, Membership, UploadSlot, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "workspace"
    extra = 0
    raw_id_fields = ["user", "added_by"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "storage_quota_bytes", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "created_by__username"]
    list_filter = ["created_at"]
    date_hierarchy = "created_at"
    inlines = [MembershipInline]
    raw_id_fields = ["created_by"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "added_by", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__username", "workspace__name"]
    list_select_related = ["user", "workspace", "added_by"]
    raw_id_fields = ["user", "workspace", "added_by"]


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ["created_at", "workspace", "actor", "verb", "summary"]
    list_filter = ["verb", "created_at"]
    search_fields = ["summary", "workspace__name", "actor__username"]
    list_select_related = ["workspace", "actor"]
    date_hierarchy = "created_at"
    raw_id_fields = ["workspace", "actor"]


@admin.register(DataAsset)
class DataAssetAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    raw_id_fields = ["workspace", "created_by"]


@admin.register(DataVersion)
class DataVersionAdmin(admin.ModelAdmin):
    list_display = ["asset", "version", "rows", "columns", "parquet_size", "source_format", "created_by", "created_at"]
    list_filter = ["source_format", "created_at"]
    search_fields = ["asset__name", "source_name", "description"]
    list_select_related = ["asset", "created_by"]
    raw_id_fields = ["asset", "derived_from", "created_by"]
    readonly_fields = ["parquet_sha256"]


@admin.register(Ingest)
class IngestAdmin(admin.ModelAdmin):
    list_display = ["id", "asset_name", "workspace", "status", "source_name", "source_size", "created_by", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["asset_name", "source_name", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    raw_id_fields = ["workspace", "base_version", "job", "version", "created_by"]


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
