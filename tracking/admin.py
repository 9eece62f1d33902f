from django.contrib import admin

from workspaces.admin_console import ReadOnlyAdmin

from .models import ExperimentTag, RunTag


@admin.register(RunTag)
class RunTagAdmin(ReadOnlyAdmin):
    """Tags set on runs through the MLflow API: read-only here."""

    list_display = ["job", "key", "value"]
    search_fields = ["key", "value", "job__display_name"]
    list_select_related = ["job"]


@admin.register(ExperimentTag)
class ExperimentTagAdmin(ReadOnlyAdmin):
    """Tags set on experiments through the MLflow API: read-only here."""

    list_display = ["experiment", "key", "value"]
    search_fields = ["key", "value", "experiment__name"]
    list_select_related = ["experiment"]
