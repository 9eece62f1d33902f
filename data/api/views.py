from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from data import selectors, services
from data.api.serializers import (
    AssetOut,
    AssetUpdateIn,
    DatastoreDetailOut,
    DatastoreIn,
    DatastoreOut,
    DeletedOut,
    ImportQueryIn,
    ImportS3In,
    ImportUrlIn,
    IngestOut,
    PreviewOut,
    PreviewQueryIn,
    SchemaEditIn,
    UploadIn,
    VersionDetailOut,
    VersionFileQueryIn,
    VersionOut,
)
from data.dataio import Schema, read_page
from data.downloads import data_version_download, data_version_file
from data.uploads import UploadRefused, too_large_message, upload_admitted
from studio.api.errors import ErrorSerializer
from studio.api.inputs import query_values
from studio.authentication import authentication_before_body
from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView
from workspaces.services import StorageQuotaExceeded


class UploadRefusedError(APIException):
    """An upload answered without storing it (R9), with the status UploadRefused chose."""

    def __init__(self, refused: UploadRefused):
        super().__init__(refused.message, refused.code)
        self.status_code = refused.status


class AssetListApi(WorkspaceListApiView):
    serializer_class = AssetOut
    parser_classes = [MultiPartParser]
    # CSRF on the header token only: the body is parsed (and stored) after every check (R9).
    authentication_classes = authentication_before_body()

    def get_queryset(self):
        params = self.request.query_params
        return selectors.data_asset_list(
            workspace=self.workspace, q=params.get("q", ""), sort=params.get("sort", "-updated")
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str),
            OpenApiParameter("sort", str, description="name, -name, updated, -updated, rows, -rows, size, -size"),
        ],
        summary="List data assets with their latest version",
    )
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(
        request={"multipart/form-data": UploadIn},
        responses={202: IngestOut, 413: ErrorSerializer, 429: ErrorSerializer},
        summary="Upload a file as a new data asset or its next version (ingested by a job)",
        description=(
            "Refused before the body is stored: 413 past the upload limit (by Content-Length or while "
            "streaming) or the workspace's storage quota, 429 while you already have "
            "STUDIO_UPLOAD_MAX_CONCURRENT uploads in progress; 409 for a file identical to a version of the "
            "asset (unless allow_identical). A session-authenticated call sends its "
            "CSRF token in the X-CSRFToken header."
        ),
    )
    def post(self, request, workspace_id):
        try:
            with upload_admitted(request._request, workspace=self.workspace):
                return self._upload(request)
        except UploadRefused as exc:
            raise UploadRefusedError(exc) from None

    def _upload(self, request):
        data = UploadIn(data=request.data)  # parsing streams the file through the staging handler
        if request._request.upload_too_large:
            raise UploadRefusedError(UploadRefused(too_large_message(), status=413, code="too_large"))
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            ingest = services.data_upload(
                actor=request.user,
                workspace=self.workspace,
                upload=values["file"],
                name=values.get("name", ""),
                description=values.get("description", ""),
                tags=values.get("tags", ""),
                allow_identical=values.get("allow_identical", False),
            )
        except StorageQuotaExceeded as exc:
            raise UploadRefusedError(UploadRefused(exc.messages[0], status=413, code="quota_exceeded")) from None
        except services.IdenticalUpload as exc:
            raise UploadRefusedError(UploadRefused(exc.messages[0], status=409, code="identical_upload")) from None
        return Response(IngestOut(ingest).data, status=status.HTTP_202_ACCEPTED)


class AssetDetailApi(WorkspaceApiView):
    @extend_schema(responses=AssetOut, summary="One data asset")
    def get(self, request, workspace_id, asset_id):
        return Response(AssetOut(selectors.data_asset_get(workspace=self.workspace, asset_id=asset_id)).data)

    @extend_schema(request=AssetUpdateIn, responses=AssetOut, summary="Describe a data asset")
    def patch(self, request, workspace_id, asset_id):
        asset = selectors.data_asset_get(workspace=self.workspace, asset_id=asset_id)
        data = AssetUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.data_asset_update(actor=request.user, asset=asset, **data.validated_data)
        return Response(AssetOut(selectors.data_asset_get(workspace=self.workspace, asset_id=asset_id)).data)

    @extend_schema(responses=DeletedOut, summary="Delete an asset and all its versions (refused while in use)")
    def delete(self, request, workspace_id, asset_id):
        asset = selectors.data_asset_get(workspace=self.workspace, asset_id=asset_id)
        return Response({"deleted": True, "bytes_freed": services.data_asset_delete(actor=request.user, asset=asset)})


class VersionListApi(WorkspaceListApiView):
    serializer_class = VersionOut

    def get_queryset(self):
        return selectors.data_version_list(
            asset=selectors.data_asset_get(workspace=self.workspace, asset_id=self.kwargs["asset_id"])
        )

    @extend_schema(summary="An asset's versions, newest first")
    def get(self, request, workspace_id, asset_id):
        return self.list(request)


def _version(view, asset_id, version):
    asset = selectors.data_asset_get(workspace=view.workspace, asset_id=asset_id)
    return selectors.data_version_get(asset=asset, version=version)


class VersionDetailApi(WorkspaceApiView):
    @extend_schema(responses=VersionDetailOut, summary="One version with its schema and profile")
    def get(self, request, workspace_id, asset_id, version):
        return Response(VersionDetailOut(_version(self, asset_id, version)).data)

    @extend_schema(responses=DeletedOut, summary="Delete a version (refused while a job or model uses it)")
    def delete(self, request, workspace_id, asset_id, version):
        freed = services.data_version_delete(actor=request.user, version=_version(self, asset_id, version))
        return Response({"deleted": True, "bytes_freed": freed})


class VersionPreviewApi(WorkspaceApiView):
    @extend_schema(
        parameters=[PreviewQueryIn],
        responses=PreviewOut,
        summary="A page of rows",
    )
    def get(self, request, workspace_id, asset_id, version):
        data_version = _version(self, asset_id, version)
        query = query_values(PreviewQueryIn, request)
        offset, limit = query["offset"], query["limit"]
        page = read_page(data_version_file(data_version), offset, limit, schema=Schema.from_json(data_version.schema))
        return Response({"columns": page.columns, "rows": page.rows, "total_rows": page.total_rows, "offset": offset})


class VersionSchemaApi(WorkspaceApiView):
    @extend_schema(
        request=SchemaEditIn,
        responses={202: IngestOut},
        summary="Make the next version with column types changed or columns excluded",
    )
    def post(self, request, workspace_id, asset_id, version):
        data_version = _version(self, asset_id, version)
        data = SchemaEditIn(data=request.data)
        data.is_valid(raise_exception=True)
        ingest = services.data_schema_edit(actor=request.user, version=data_version, **data.validated_data)
        return Response(IngestOut(ingest).data, status=status.HTTP_202_ACCEPTED)


class VersionDownloadApi(WorkspaceApiView):
    @extend_schema(
        parameters=[VersionFileQueryIn],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
        },
        summary="Download a version as CSV (formula cells neutralised) or Parquet",
    )
    def get(self, request, workspace_id, asset_id, version):
        data_version = _version(self, asset_id, version)
        return data_version_download(data_version, fmt=query_values(VersionFileQueryIn, request)["format"])


class IngestListApi(WorkspaceListApiView):
    serializer_class = IngestOut

    def get_queryset(self):
        return selectors.ingest_list(workspace=self.workspace)

    @extend_schema(summary="Uploads and schema edits, with their status")
    def get(self, request, workspace_id):
        return self.list(request)


class IngestDetailApi(WorkspaceApiView):
    @extend_schema(responses=IngestOut, summary="One upload's status (poll until ready or failed)")
    def get(self, request, workspace_id, ingest_id):
        return Response(IngestOut(selectors.ingest_get(workspace=self.workspace, ingest_id=ingest_id)).data)


IMPORT_DESCRIPTION = (
    "Made by an ingest job (poll the ingest): it fetches the data within the limits (see the README, "
    "STUDIO_IMPORT_*), then parses, profiles and versions it as an upload. A refusal found by the job "
    "is the ingest's error."
)


class ImportUrlApi(WorkspaceApiView):
    @extend_schema(
        request=ImportUrlIn,
        responses={202: IngestOut},
        summary="Import the file at an HTTP(S) URL as a new data asset or its next version",
        description=IMPORT_DESCRIPTION
        + " The download follows at most 5 redirects, stops at STUDIO_IMPORT_MAX_BYTES and refuses "
        "private addresses unless the studio allows them.",
    )
    def post(self, request, workspace_id):
        data = ImportUrlIn(data=request.data)
        data.is_valid(raise_exception=True)
        ingest = services.data_import_url(actor=request.user, workspace=self.workspace, **data.validated_data)
        return Response(IngestOut(ingest).data, status=status.HTTP_202_ACCEPTED)


class ImportQueryApi(WorkspaceApiView):
    @extend_schema(
        request=ImportQueryIn,
        responses={202: IngestOut},
        summary="Import the rows of a SELECT query on a datastore as a new data asset or its next version",
        description=IMPORT_DESCRIPTION
        + " The query runs in a read-only transaction with STUDIO_IMPORT_STATEMENT_TIMEOUT_MS; more than "
        "STUDIO_IMPORT_MAX_ROWS rows fails the import (narrow it with WHERE or LIMIT).",
    )
    def post(self, request, workspace_id):
        data = ImportQueryIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        name = values.pop("datastore")
        datastore = selectors.datastore_list(workspace=self.workspace).filter(name=name).first()
        if datastore is None:
            raise NotFound(f"No datastore named {name} in this workspace.")
        ingest = services.data_import_query(actor=request.user, workspace=self.workspace, datastore=datastore, **values)
        return Response(IngestOut(ingest).data, status=status.HTTP_202_ACCEPTED)


class ImportS3Api(WorkspaceApiView):
    @extend_schema(
        request=ImportS3In,
        responses={202: IngestOut},
        summary="Import an object (or the CSV parts under a prefix) of an S3 datastore as a new data asset "
        "or its next version",
        description=IMPORT_DESCRIPTION + " The download stops at STUDIO_IMPORT_MAX_BYTES; a refused key pair, "
        "a missing bucket or object is the ingest's error.",
    )
    def post(self, request, workspace_id):
        data = ImportS3In(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        name = values.pop("datastore")
        datastore = selectors.datastore_list(workspace=self.workspace).filter(name=name).first()
        if datastore is None:
            raise NotFound(f"No datastore named {name} in this workspace.")
        ingest = services.data_import_s3(actor=request.user, workspace=self.workspace, datastore=datastore, **values)
        return Response(IngestOut(ingest).data, status=status.HTTP_202_ACCEPTED)


class DatastoreListApi(WorkspaceListApiView):
    serializer_class = DatastoreOut

    def get_queryset(self):
        return selectors.datastore_list(workspace=self.workspace)

    @extend_schema(summary="Datastores (connections that data is imported from), without their URLs")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(
        request=DatastoreIn,
        responses={201: DatastoreOut},
        summary="Save a PostgreSQL connection or an S3 bucket; the URL or key pair is sealed at rest and never "
        "shown again",
    )
    def post(self, request, workspace_id):
        data = DatastoreIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        common = {
            "actor": request.user,
            "workspace": self.workspace,
            "name": values["name"],
            "description": values.get("description", ""),
        }
        if values["kind"] == "s3":
            datastore = services.datastore_create_s3(
                bucket=values.get("bucket", ""),
                region=values.get("region", ""),
                endpoint_url=values.get("endpoint_url", ""),
                access_key_id=values.get("access_key_id", ""),
                secret_access_key=values.get("secret_access_key", ""),
                **common,
            )
        else:
            datastore = services.datastore_create(url=values.get("url", ""), **common)
        datastore = selectors.datastore_get(workspace=self.workspace, datastore_id=datastore.pk)
        return Response(DatastoreOut(datastore).data, status=status.HTTP_201_CREATED)


class DatastoreDetailApi(WorkspaceApiView):
    @extend_schema(responses=DatastoreDetailOut, summary="One datastore with what was imported from it")
    def get(self, request, workspace_id, datastore_id):
        datastore = selectors.datastore_get(workspace=self.workspace, datastore_id=datastore_id)
        imports = selectors.datastore_imports(datastore=datastore)[:100]
        return Response(DatastoreDetailOut(datastore, context={"imports": imports}).data)

    @extend_schema(responses=DeletedOut, summary="Forget a datastore (the versions imported from it stay)")
    def delete(self, request, workspace_id, datastore_id):
        datastore = selectors.datastore_get(workspace=self.workspace, datastore_id=datastore_id)
        services.datastore_delete(actor=request.user, datastore=datastore)
        return Response({"deleted": True, "bytes_freed": 0})
