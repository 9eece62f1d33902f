from django import forms
from django.contrib import admin

from compute.jobs import services
from compute.jobs.models import Artifact, Job, JobEvent, JobLogLine, Metric
from workspaces.admin_console import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin

from . import registry_services
from .models import Experiment, ModelAlias, ModelVersion, RegisteredModel


@admin.register(Experiment)
class ExperimentAdmin(ReadOnlyAdmin):
    list_display = ["name", "workspace", "created_by", "created_at"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    raw_id_fields = ["workspace", "created_by"]


class JobEventInline(ReadOnlyInline, admin.TabularInline):
    model = JobEvent
    fields = ["at", "status", "reason", "attempt", "node"]
    readonly_fields = fields
    show_change_link = False


@admin.register(Job)
class JobAdmin(ServiceAdmin):
    """Jobs are read-only here (status and attempts move only through the job engine); deleting one
    goes through `job_delete`: refused while active or referenced, and its files are freed."""

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
    date_hierarchy = "created_at"
    inlines = [JobEventInline]

    def service_delete(self, actor, obj):
        services.job_delete(actor=actor, job=obj)


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdmin):
    list_display = ["job", "at", "status", "reason", "attempt", "node"]
    list_filter = ["status"]
    search_fields = ["reason", "job__display_name"]
    raw_id_fields = ["job", "node"]
    list_select_related = ["job", "node"]  # the node is optional: Django's default join leaves it out


@admin.register(JobLogLine)
class JobLogLineAdmin(ReadOnlyAdmin):
    list_display = ["job", "seq", "at", "attempt", "text"]
    search_fields = ["text"]
    raw_id_fields = ["job"]


@admin.register(Metric)
class MetricAdmin(ReadOnlyAdmin):
    list_display = ["job", "name", "step", "value", "at"]
    list_filter = ["name"]
    search_fields = ["name", "job__display_name"]
    raw_id_fields = ["job"]


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ["job", "name", "kind", "size", "sha256", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "sha256"]
    raw_id_fields = ["job"]


class ModelVersionInline(ReadOnlyInline, admin.TabularInline):
    model = ModelVersion
    fields = ["version", "algorithm", "job", "data_version", "sha256", "created_at"]
    readonly_fields = fields


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ServiceAdmin):
    """The description through `model_update`; versions are deleted one by one (their deployments checked)."""

    list_display = ["name", "workspace", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    fields = ["name", "workspace", "description", "created_by", "created_at"]
    readonly_fields = ["name", "workspace", "created_by", "created_at"]
    inlines = [ModelVersionInline]

    def service_save(self, actor, obj, form):
        registry_services.model_update(actor=actor, model=obj, description=obj.description)


@admin.register(ModelVersion)
class ModelVersionAdmin(ServiceAdmin):
    """Model versions are immutable; deleting one goes through `model_version_delete` (files freed)."""

    list_display = ["__str__", "algorithm", "target_column", "job", "data_version", "file_size", "created_at"]
    list_filter = ["algorithm", "created_at"]
    search_fields = ["model__name", "algorithm", "target_column", "sha256"]
    list_select_related = ["model", "job", "data_version", "data_version__asset"]  # a version's name is its asset's

    def service_delete(self, actor, obj):
        registry_services.model_version_delete(actor=actor, version=obj)


class ModelAliasForm(forms.ModelForm):
    class Meta:
        model = ModelAlias
        fields = ["name", "version"]

    def clean(self):
        data = super().clean()
        if data.get("version"):
            self.instance.model = data["version"].model  # an alias belongs to its version's model
        return data


@admin.register(ModelAlias)
class ModelAliasAdmin(ServiceAdmin):
    """Aliases are set and removed through the registry services (one alias per model points at one version)."""

    list_display = ["__str__", "model", "name", "version"]
    search_fields = ["model__name", "name"]
    form = ModelAliasForm
    fields = ["name", "version"]
    raw_id_fields = ["version"]

    def service_add(self, actor, obj, form):
        registry_services.model_alias_set(actor=actor, version=obj.version, alias=obj.name)
        return ModelAlias.objects.get(model=obj.version.model, name=obj.name.strip())

    def service_delete(self, actor, obj):
        registry_services.model_alias_remove(actor=actor, model=obj.model, alias=obj.name)
