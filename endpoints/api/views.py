"""Endpoints API: endpoints, keys, deployments, traffic, monitoring (scoring itself is /score/<name>/)."""

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from compute.models import ComputeTarget
from studio.api.inputs import InputSerializer, QueryInputSerializer, query_values
from training.registry_selectors import model_version_get_by_id
from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView

from .. import selectors, services
from ..models import ENDPOINT_NAME_PATTERN, Deployment, Endpoint
from ..openapi import endpoint_openapi


class EndpointIn(InputSerializer):
    name = serializers.RegexField(ENDPOINT_NAME_PATTERN, max_length=63)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    requests_per_minute = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)


class EndpointUpdateIn(InputSerializer):
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    requests_per_minute = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)


class AutoscaleIO(InputSerializer):
    min_replicas = serializers.IntegerField(min_value=0, max_value=20, required=False, help_text="0: scale to zero.")
    max_replicas = serializers.IntegerField(min_value=1, max_value=20, required=False)
    target_in_flight = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, help_text="Requests being scored per replica to aim at."
    )
    scale_in_seconds = serializers.IntegerField(
        min_value=10, max_value=86400, required=False, help_text="Below the target this long, replicas leave."
    )


class DeploymentOut(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    target = serializers.CharField(source="target.name")
    autoscale = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "model_version",
            "target",
            "replicas",
            "autoscale",
            "status",
            "status_reason",
            "backend",
            "created_at",
        ]

    def get_model_version(self, d) -> dict:
        return {"id": d.model_version_id, "name": str(d.model_version)}

    @extend_schema_field(AutoscaleIO(allow_null=True))
    def get_autoscale(self, d) -> dict | None:
        if not d.autoscales:
            return None
        return {field: getattr(d, field) for field in services.AUTOSCALE_FIELDS}


class EndpointOut(serializers.ModelSerializer):
    scoring_url = serializers.SerializerMethodField()
    deployments = DeploymentOut(many=True, read_only=True)

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "name",
            "description",
            "auth_mode",
            "scoring_url",
            "traffic",
            "mirror_deployment",
            "mirror_percent",
            "requests_per_minute",
            "key1_prefix",
            "key2_prefix",
            "deployments",
            "created_at",
            "updated_at",
        ]

    def get_scoring_url(self, endpoint) -> str:
        request = self.context.get("request")
        path = f"/score/{endpoint.name}/"
        return request.build_absolute_uri(path) if request else path


class KeysOut(serializers.Serializer):
    primary_key = serializers.CharField(allow_null=True, help_text="Shown once.")
    secondary_key = serializers.CharField(allow_null=True, help_text="Shown once.")


class DeploymentIn(InputSerializer):
    name = serializers.RegexField(ENDPOINT_NAME_PATTERN, max_length=63)
    model_version = serializers.IntegerField(help_text="Id of a registered model version of this workspace.")
    target = serializers.IntegerField(help_text="Id of an inference cluster of this workspace.")
    replicas = serializers.IntegerField(min_value=1, max_value=20, required=False, default=1)
    autoscale = AutoscaleIO(required=False, help_text="Replicas follow the load between min and max.")


class DeploymentUpdateIn(InputSerializer):
    replicas = serializers.IntegerField(min_value=1, max_value=20, required=False)
    autoscale = AutoscaleIO(required=False, allow_null=True, help_text="null turns autoscaling off.")
    model_version = serializers.IntegerField(required=False, help_text="Replace the model in place.")


class TrafficIn(InputSerializer):
    traffic = serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=100))
    mirror_deployment = serializers.CharField(required=False, allow_blank=True, default="")
    mirror_percent = serializers.IntegerField(min_value=0, max_value=100, required=False, default=0)


class MonitoringQueryIn(QueryInputSerializer):
    range = serializers.ChoiceField(choices=["hour", "day", "week"], default="hour")


class KeyRegenerateIn(InputSerializer):
    which = serializers.ChoiceField(choices=["primary", "secondary"])


def _out(view, endpoint_id):
    return EndpointOut(
        selectors.endpoint_get(workspace=view.workspace, endpoint_id=endpoint_id), context={"request": view.request}
    ).data


class EndpointListApi(WorkspaceListApiView):
    serializer_class = EndpointOut

    def get_queryset(self):
        return selectors.endpoint_list(workspace=self.workspace)

    @extend_schema(summary="List endpoints with their deployments and traffic")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(
        request=EndpointIn,
        responses={201: EndpointOut},
        summary="Create an endpoint; its two keys are in the response, once",
    )
    def post(self, request, workspace_id):
        data = EndpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.endpoint_create(actor=request.user, workspace=self.workspace, **data.validated_data)
        body = _out(self, created.endpoint.pk) | {"primary_key": created.primary, "secondary_key": created.secondary}
        return Response(body, status=status.HTTP_201_CREATED)


class EndpointDetailApi(WorkspaceApiView):
    @extend_schema(responses=EndpointOut, summary="One endpoint")
    def get(self, request, workspace_id, endpoint_id):
        return Response(_out(self, endpoint_id))

    @extend_schema(request=EndpointUpdateIn, responses=EndpointOut, summary="Describe or re-limit an endpoint")
    def patch(self, request, workspace_id, endpoint_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        data = EndpointUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.endpoint_update(actor=request.user, endpoint=endpoint, **data.validated_data)
        return Response(_out(self, endpoint_id))

    @extend_schema(responses={204: None}, summary="Delete an endpoint")
    def delete(self, request, workspace_id, endpoint_id):
        services.endpoint_delete(
            actor=request.user, endpoint=selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointKeysApi(WorkspaceApiView):
    @extend_schema(request=KeyRegenerateIn, responses=KeysOut, summary="Regenerate the primary or secondary key")
    def post(self, request, workspace_id, endpoint_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        data = KeyRegenerateIn(data=request.data)
        data.is_valid(raise_exception=True)
        keys = services.key_regenerate(actor=request.user, endpoint=endpoint, which=data.validated_data["which"])
        return Response({"primary_key": keys.primary, "secondary_key": keys.secondary})


class DeploymentListApi(WorkspaceApiView):
    @extend_schema(
        request=DeploymentIn,
        responses={201: DeploymentOut},
        summary="Deploy a registered model version (loaded and checked before it takes traffic)",
    )
    def post(self, request, workspace_id, endpoint_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        data = DeploymentIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        target = ComputeTarget.objects.filter(workspace=self.workspace, pk=values["target"]).first()
        if target is None:
            raise ValidationError(
                {"target": ValidationError("This workspace has no compute target with that id.", code="not_found")}
            )
        deployment = services.deployment_create(
            actor=request.user,
            endpoint=endpoint,
            name=values["name"],
            target=target,
            replicas=values["replicas"],
            autoscale=values.get("autoscale"),
            model_version=model_version_get_by_id(workspace=self.workspace, version_id=values["model_version"]),
        )
        return Response(DeploymentOut(deployment).data, status=status.HTTP_201_CREATED)


class DeploymentDetailApi(WorkspaceApiView):
    @extend_schema(
        request=DeploymentUpdateIn,
        responses=DeploymentOut,
        summary="Change replicas or autoscaling, or replace the model (no request is dropped)",
    )
    def patch(self, request, workspace_id, endpoint_id, deployment_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        deployment = selectors.deployment_get(endpoint=endpoint, deployment_id=deployment_id)
        data = DeploymentUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        version = (
            model_version_get_by_id(workspace=self.workspace, version_id=values["model_version"])
            if "model_version" in values
            else None
        )
        deployment = services.deployment_update(
            actor=request.user,
            deployment=deployment,
            replicas=values.get("replicas"),
            model_version=version,
            autoscale=values.get("autoscale", services.UNCHANGED),
        )
        return Response(DeploymentOut(deployment).data)

    @extend_schema(responses={204: None}, summary="Remove a deployment (move its traffic away first)")
    def delete(self, request, workspace_id, endpoint_id, deployment_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        services.deployment_delete(
            actor=request.user, deployment=selectors.deployment_get(endpoint=endpoint, deployment_id=deployment_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrafficApi(WorkspaceApiView):
    @extend_schema(request=TrafficIn, responses=EndpointOut, summary="Split traffic (percents) and mirror a share")
    def put(self, request, workspace_id, endpoint_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        data = TrafficIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.traffic_set(actor=request.user, endpoint=endpoint, **data.validated_data)
        return Response(_out(self, endpoint_id))


class MonitoringApi(WorkspaceApiView):
    @extend_schema(
        parameters=[MonitoringQueryIn],
        responses={200: OpenApiTypes.OBJECT},
        summary="Requests, errors, latency percentiles, rows, predicted classes, input drift and (regression) "
        "prediction drift per deployment",
    )
    def get(self, request, workspace_id, endpoint_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        data = selectors.monitoring(endpoint=endpoint, range_name=query_values(MonitoringQueryIn, request)["range"])
        body = {
            "since": data.since,
            "step_seconds": data.step.total_seconds(),
            "total_requests": data.total_requests,
            "deployments": {
                name: {
                    "requests": s.requests,
                    "errors_4xx": s.errors_4xx,
                    "errors_5xx": s.errors_5xx,
                    "throttled": s.throttled,
                    "rows": s.rows,
                    "p50_ms": s.p(0.5),
                    "p90_ms": s.p(0.9),
                    "p95_ms": s.p(0.95),
                    "p99_ms": s.p(0.99),
                    "predicted": dict(s.predicted),
                    "mirrored": s.mirrored,
                    "drift": s.drift,
                    "prediction_drift": s.prediction_drift,
                    "quality": s.quality,
                }
                for name, s in data.deployments.items()
            },
            "series": {"times": data.times, "deployments": data.series},
        }
        return Response(body)


class EndpointOpenApiApi(WorkspaceApiView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="The endpoint's own OpenAPI document")
    def get(self, request, workspace_id, endpoint_id):
        endpoint = selectors.endpoint_get(workspace=self.workspace, endpoint_id=endpoint_id)
        return Response(endpoint_openapi(endpoint, request.build_absolute_uri(f"/score/{endpoint.name}/")))
