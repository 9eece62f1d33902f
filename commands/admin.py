from django.contrib import admin

from workspaces.admin_console import ReadOnlyAdmin

from .models import CodeSnapshot


@admin.register(CodeSnapshot)
class CodeSnapshotAdmin(ReadOnlyAdmin):
    """Uploaded code, immutable and stored once per content: read-only here."""

    list_display = ["name", "workspace", "file_count", "size", "sha256", "created_by", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "sha256", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    exclude = ["files"]
