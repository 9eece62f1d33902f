from django.contrib import admin

from workspaces.admin_console import ReadOnlyAdmin, ServiceAdmin

from . import services
from .models import InstanceLab, InstanceSchedule


@admin.register(InstanceLab)
class InstanceLabAdmin(ReadOnlyAdmin):
    """What each instance's lab process last reported; the sealed token is never shown."""

    list_display = ["target", "state", "reason", "environment_version", "host", "pid", "ready_at", "updated_at"]
    list_filter = ["state"]
    search_fields = ["target__name", "target__workspace__name", "reason", "host"]
    list_select_related = ["target", "environment_version__environment"]
    exclude = ["token_sealed"]


@admin.register(InstanceSchedule)
class InstanceScheduleAdmin(ServiceAdmin):
    """Schedules are made by the instance's owner in the studio; staff may delete one (schedule_delete)."""

    list_display = ["target", "action", "time_of_day", "weekdays", "time_zone", "enabled", "last_fired_at"]
    list_filter = ["action", "enabled"]
    search_fields = ["target__name", "target__workspace__name", "time_zone"]
    list_select_related = ["target"]
    readonly_fields = [f.name for f in InstanceSchedule._meta.fields]

    def service_delete(self, actor, obj):
        services.schedule_delete(actor=actor, schedule=obj)
