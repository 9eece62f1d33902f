from django.contrib import admin

from workspaces.admin_console import ReadOnlyAdmin, ServiceAdmin

from . import services
from .models import Environment, EnvironmentBuild, EnvironmentVersion


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdmin):
    """Deleting goes through `environment_delete` (refused while a job names a version)."""

    list_display = ["name", "workspace", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "workspace__name"]
    list_select_related = ["workspace", "created_by"]

    def service_delete(self, actor, obj):
        services.environment_delete(actor=actor, environment=obj)


@admin.register(EnvironmentVersion)
class EnvironmentVersionAdmin(ReadOnlyAdmin):
    list_display = ["environment", "version", "base", "spec_hash", "created_by", "created_at"]
    list_filter = ["base"]
    search_fields = ["environment__name", "requirements", "spec_hash"]
    list_select_related = ["environment", "created_by"]


@admin.register(EnvironmentBuild)
class EnvironmentBuildAdmin(ReadOnlyAdmin):
    list_display = ["version", "host", "state", "size_bytes", "seconds", "finished_at", "last_used_at"]
    list_filter = ["state", "host"]
    search_fields = ["host", "version__environment__name"]
    list_select_related = ["version", "version__environment"]
