"""Model registry API: models, versions, aliases, downloads, registering a job's model."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from compute.jobs.selectors import job_get
from data.selectors import data_version_get_by_id
from data.uploads import UploadRefused
from studio.api.errors import ErrorSerializer
from studio.api.inputs import InputSerializer, QueryInputSerializer, query_values
from studio.authentication import authentication_before_body
from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView

from .. import registry_imports
from .. import registry_selectors as selectors
from .. import registry_services as services
from ..downloads import model_version_download
from ..model_uploads import model_upload_admitted, too_large_message
from ..models import ModelVersion, RegisteredModel


class ModelOut(serializers.ModelSerializer):
    latest_version = serializers.IntegerField(allow_null=True)
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "description", "latest_version", "aliases", "created_at", "updated_at"]

    def get_aliases(self, model) -> dict:
        return {a.name: a.version.version for a in model.aliases.all()}


class ModelVersionOut(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    job = serializers.PrimaryKeyRelatedField(read_only=True)
    data_version = serializers.PrimaryKeyRelatedField(read_only=True)
    aliases = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    onnx = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "version",
            "description",
            "tags",
            "aliases",
            "algorithm",
            "target_column",
            "classes",
            "metrics",
            "signature",
            "lineage",
            "job",
            "data_version",
            "file_size",
            "sha256",
            "onnx",
            "onnx_max_abs_diff",
            "scoring_latency_ms",
            "created_at",
        ]

    def get_onnx(self, version) -> bool:
        return bool(version.onnx_sha256)


class RegisterIn(InputSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    aliases = serializers.ListField(child=serializers.CharField(max_length=50), required=False)


class ModelUploadIn(serializers.Serializer):
    file = serializers.FileField(help_text="A .skops file, an .onnx file, or an MLflow model folder as .zip/.tar.gz.")
    name = serializers.CharField(max_length=100, help_text="The registered model's name (a new version if it exists).")
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    data_version = serializers.IntegerField(
        required=False, help_text="A data version of this workspace to infer the signature from."
    )
    signature = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200_000,
        help_text='The inputs as JSON: [{"name": "age", "type": "numeric"}, ...] (types: numeric, integer, '
        "boolean, categorical, text, identifier, datetime).",
    )
    target_column = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ModelUploadRefused(APIException):
    """An upload answered without storing it (R9), with the status UploadRefused chose."""

    def __init__(self, refused: UploadRefused):
        super().__init__(refused.message, refused.code)
        self.status_code = refused.status


class ModelFileQueryIn(QueryInputSerializer):
    format = serializers.ChoiceField(choices=["skops", "onnx"], default="skops")


class AliasIn(InputSerializer):
    alias = serializers.CharField(max_length=50)


class ModelListApi(WorkspaceListApiView):
    serializer_class = ModelOut

    def get_queryset(self):
        return selectors.model_list(workspace=self.workspace, q=self.request.query_params.get("q", ""))

    @extend_schema(parameters=[OpenApiParameter("q", str)], summary="List registered models")
    def get(self, request, workspace_id):
        return self.list(request)


class ModelVersionListApi(WorkspaceListApiView):
    serializer_class = ModelVersionOut

    def get_queryset(self):
        model = selectors.model_get(workspace=self.workspace, model_id=self.kwargs["model_id"])
        return selectors.model_version_list(model=model).select_related("model")

    @extend_schema(summary="A model's versions, newest first")
    def get(self, request, workspace_id, model_id):
        return self.list(request)


def _version(view, model_id, version):
    return selectors.model_version_get(
        model=selectors.model_get(workspace=view.workspace, model_id=model_id), version=version
    )


class ModelVersionDetailApi(WorkspaceApiView):
    @extend_schema(responses=ModelVersionOut, summary="One model version: metrics, signature, lineage")
    def get(self, request, workspace_id, model_id, version):
        return Response(ModelVersionOut(_version(self, model_id, version)).data)

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Delete a version (refused while deployed)")
    def delete(self, request, workspace_id, model_id, version):
        freed = services.model_version_delete(actor=request.user, version=_version(self, model_id, version))
        return Response({"deleted": True, "bytes_freed": freed})


class ModelVersionAliasApi(WorkspaceApiView):
    @extend_schema(request=AliasIn, responses=ModelVersionOut, summary="Point an alias (e.g. champion) here")
    def post(self, request, workspace_id, model_id, version):
        data = AliasIn(data=request.data)
        data.is_valid(raise_exception=True)
        model_version = services.model_alias_set(
            actor=request.user, version=_version(self, model_id, version), alias=data.validated_data["alias"]
        )
        return Response(ModelVersionOut(_version(self, model_id, model_version.version)).data)


class ModelVersionDownloadApi(WorkspaceApiView):
    @extend_schema(
        parameters=[ModelFileQueryIn],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Download the model file (skops; ONNX where the pipeline converts)",
    )
    def get(self, request, workspace_id, model_id, version):
        model_version = _version(self, model_id, version)
        return model_version_download(model_version, fmt=query_values(ModelFileQueryIn, request)["format"])


class JobRegisterApi(WorkspaceApiView):
    @extend_schema(
        request=RegisterIn,
        responses={201: ModelVersionOut},
        summary="Register a job's model (a train job, a trial, or an Automated ML run's best model)",
    )
    def post(self, request, workspace_id, job_id):
        job = job_get(workspace=self.workspace, job_id=job_id)
        data = RegisterIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.model_register(
            actor=request.user, job=services.registration_source(job), **data.validated_data
        )
        return Response(ModelVersionOut(version).data, status=status.HTTP_201_CREATED)


class ModelUploadApi(WorkspaceApiView):
    parser_classes = [MultiPartParser]
    # CSRF on the header token only: the body is parsed (and staged) after every check (R9).
    authentication_classes = authentication_before_body()

    @extend_schema(
        request={"multipart/form-data": ModelUploadIn},
        responses={201: ModelVersionOut, 400: ErrorSerializer, 413: ErrorSerializer},
        summary="Register a model from a file (skops, ONNX, or an MLflow model folder)",
        description=(
            "The signature is the one given, else the data version's columns minus `target_column`, else "
            "the MLflow model's signature, else the model's own inputs. skops files load with the studio's "
            "allow-list; pickle files and pickle-based MLflow flavours are refused (400) with how to save as "
            "skops or ONNX. 413 past STUDIO_MODEL_UPLOAD_MAX_BYTES."
        ),
    )
    def post(self, request, workspace_id):
        try:
            with model_upload_admitted(request._request, workspace=self.workspace):
                data = ModelUploadIn(data=request.data)  # parsing streams the file to staging
                if request._request.upload_too_large:
                    raise UploadRefused(too_large_message(), status=413, code="too_large")
                data.is_valid(raise_exception=True)
                values = data.validated_data
                data_version = None
                if values.get("data_version") is not None:
                    data_version = data_version_get_by_id(workspace=self.workspace, version_id=values["data_version"])
                upload = values["file"]
                version = registry_imports.model_import(
                    actor=request.user,
                    workspace=self.workspace,
                    name=values["name"],
                    path=upload.path,
                    filename=upload.name or "",
                    description=values["description"],
                    data_version=data_version,
                    signature=values.get("signature") or None,
                    target_column=values["target_column"],
                )
        except UploadRefused as exc:
            raise ModelUploadRefused(exc) from None
        return Response(ModelVersionOut(version).data, status=status.HTTP_201_CREATED)
