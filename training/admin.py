from django.contrib import admin

from .models import Artifact, Experiment, Job, JobEvent, JobLogLine, Metric, ModelAlias, ModelVersion, RegisteredModel


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_by", "created_at"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    raw_id_fields = ["workspace", "created_by"]


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    readonly_fields = ["at", "status", "reason", "attempt", "node"]
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "display_name",
        "kind",
        "status",
        "workspace",
        "target",
        "node",
        "attempt",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["display_name", "workspace__name", "target__name", "status_reason", "error"]
    list_select_related = ["workspace", "target", "node"]
    raw_id_fields = ["workspace", "experiment", "parent", "target", "node", "data_version", "submitted_by"]
    date_hierarchy = "created_at"
    inlines = [JobEventInline]


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ["job", "at", "status", "reason", "attempt", "node"]
    list_filter = ["status"]
    search_fields = ["reason", "job__display_name"]
    raw_id_fields = ["job", "node"]


@admin.register(JobLogLine)
class JobLogLineAdmin(admin.ModelAdmin):
    list_display = ["job", "seq", "at", "attempt", "text"]
    search_fields = ["text"]
    raw_id_fields = ["job"]


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ["job", "name", "step", "value", "at"]
    list_filter = ["name"]
    search_fields = ["name", "job__display_name"]
    raw_id_fields = ["job"]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["job", "name", "kind", "size", "sha256", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "sha256"]
    raw_id_fields = ["job"]


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    fields = ["version", "algorithm", "job", "data_version", "sha256", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    raw_id_fields = ["workspace", "created_by"]
    inlines = [ModelVersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "algorithm", "target_column", "job", "data_version", "file_size", "created_at"]
    list_filter = ["algorithm", "created_at"]
    search_fields = ["model__name", "algorithm", "target_column", "sha256"]
    list_select_related = ["model", "job", "data_version"]
    raw_id_fields = ["model", "job", "data_version", "created_by"]
    readonly_fields = ["sha256", "onnx_sha256"]


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model", "name", "version"]
    search_fields = ["model__name", "name"]
    raw_id_fields = ["model", "version"]
