from django.contrib import admin

from workspaces.admin_console import ReadOnlyAdmin, ServiceAdmin

from . import services as data_services
from .models import DataAsset, Datastore, DataVersion, Ingest, UploadSlot
from .services import upload_slot_release


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


@admin.register(Datastore)
class DatastoreAdmin(ServiceAdmin):
    """Datastores without their sealed URL or key pair (never shown); deleting one goes through `datastore_delete`."""

    list_display = ["name", "workspace", "kind", "display", "created_by", "created_at"]
    list_filter = ["kind", "created_at"]
    search_fields = ["name", "display", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    fields = [
        "name",
        "workspace",
        "kind",
        "display",
        "bucket",
        "region",
        "endpoint_url",
        "description",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields

    def service_delete(self, actor, obj):
        data_services.datastore_delete(actor=actor, datastore=obj)


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
