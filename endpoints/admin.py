from django.contrib import admin

from .models import Deployment, Endpoint, MonitoringBucket


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 0
    fields = ["name", "model_version", "target", "replicas", "status", "backend"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "traffic",
        "mirror_deployment",
        "requests_per_minute",
        "config_version",
        "created_at",
    ]
    search_fields = ["name", "description", "workspace__name"]
    list_select_related = ["workspace"]
    raw_id_fields = ["workspace", "created_by"]
    exclude = ["key1_hash", "key2_hash"]
    readonly_fields = ["key1_prefix", "key2_prefix", "config_version"]
    inlines = [DeploymentInline]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model_version", "target", "replicas", "status", "backend", "created_at"]
    list_filter = ["status", "backend"]
    search_fields = ["name", "endpoint__name", "model_version__model__name"]
    list_select_related = ["endpoint", "model_version", "model_version__model", "target"]
    raw_id_fields = ["endpoint", "model_version", "target", "created_by"]


@admin.register(MonitoringBucket)
class MonitoringBucketAdmin(admin.ModelAdmin):
    list_display = [
        "minute",
        "endpoint",
        "deployment_name",
        "source",
        "requests",
        "errors_4xx",
        "errors_5xx",
        "throttled",
        "rows",
        "mirrored",
    ]
    list_filter = ["mirrored", "minute"]
    search_fields = ["endpoint__name", "deployment_name", "source"]
    list_select_related = ["endpoint"]
    raw_id_fields = ["endpoint", "deployment"]
    date_hierarchy = "minute"
