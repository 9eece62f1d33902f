from django.contrib import admin

from workspaces.admin_console import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin

from . import services
from .models import Deployment, Endpoint, MonitoringBucket


class DeploymentInline(ReadOnlyInline, admin.TabularInline):
    model = Deployment
    fields = ["name", "model_version", "target", "replicas", "status", "backend"]
    readonly_fields = fields


@admin.register(Endpoint)
class EndpointAdmin(ServiceAdmin):
    """Traffic goes through `traffic_set` (sums to 100 %, serving processes reload), the rest through
    `endpoint_update`; endpoints are created in the studio, which shows their keys once."""

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
    fields = [
        "name",
        "workspace",
        "description",
        "requests_per_minute",
        "traffic",
        "mirror_deployment",
        "mirror_percent",
        "key1_prefix",
        "key2_prefix",
        "config_version",
        "created_by",
    ]
    readonly_fields = ["name", "workspace", "key1_prefix", "key2_prefix", "config_version", "created_by"]
    inlines = [DeploymentInline]

    def service_save(self, actor, obj, form):
        changed = set(form.changed_data)
        if changed & {"description", "requests_per_minute"}:
            services.endpoint_update(
                actor=actor, endpoint=obj, description=obj.description, requests_per_minute=obj.requests_per_minute
            )
        if changed & {"traffic", "mirror_deployment", "mirror_percent"}:
            services.traffic_set(
                actor=actor,
                endpoint=obj,
                traffic=obj.traffic,
                mirror_deployment=obj.mirror_deployment,
                mirror_percent=obj.mirror_percent,
            )

    def service_delete(self, actor, obj):
        services.endpoint_delete(actor=actor, endpoint=obj)


@admin.register(Deployment)
class DeploymentAdmin(ServiceAdmin):
    """Replicas and autoscaling through `deployment_update`, removal through `deployment_delete` (refused while the
    deployment takes live traffic); deployments are made in the studio, which warms the model up."""

    list_display = ["__str__", "model_version", "target", "replicas", "status", "backend", "created_at"]
    list_filter = ["status", "backend"]
    search_fields = ["name", "endpoint__name", "model_version__model__name"]
    list_select_related = ["endpoint", "model_version", "model_version__model", "target"]
    fields = [
        "endpoint",
        "name",
        "model_version",
        "target",
        "replicas",
        *services.AUTOSCALE_FIELDS,
        "status",
        "status_reason",
        "backend",
    ]
    readonly_fields = ["endpoint", "name", "model_version", "target", "status", "status_reason", "backend"]

    def service_save(self, actor, obj, form):
        # Autoscaling is on while max_replicas is set; replicas are then the autoscaler's to set.
        if obj.max_replicas is None:
            services.deployment_update(actor=actor, deployment=obj, replicas=obj.replicas, autoscale=None)
        else:
            autoscale = {f: getattr(obj, f) for f in services.AUTOSCALE_FIELDS if getattr(obj, f) is not None}
            services.deployment_update(actor=actor, deployment=obj, autoscale=autoscale)

    def service_delete(self, actor, obj):
        services.deployment_delete(actor=actor, deployment=obj)


@admin.register(MonitoringBucket)
class MonitoringBucketAdmin(ReadOnlyAdmin):
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
    date_hierarchy = "minute"
