"""Code snapshots over the API: upload (an archive or a folder's files), list, detail, one file."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from commands import code_selectors, code_services
from commands.api.code_serializers import (
    CodeFileQueryIn,
    CodeFileTextOut,
    CodeSnapshotDetailOut,
    CodeSnapshotOut,
    CodeUploadIn,
)
from commands.code_downloads import code_file_download
from commands.code_uploads import code_upload_admitted, too_large_message
from data.uploads import UploadRefused
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


class CodeSnapshotListApi(WorkspaceListApiView):
    serializer_class = CodeSnapshotOut
    parser_classes = [MultiPartParser]
    # CSRF on the header token only: the body is parsed (and stored) after every check (R9).
    authentication_classes = authentication_before_body()

    def get_queryset(self):
        return code_selectors.code_snapshot_list(workspace=self.workspace)

    @extend_schema(summary="List the workspace's code snapshots, newest first")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(
        request={"multipart/form-data": CodeUploadIn},
        responses={
            201: CodeSnapshotDetailOut,
            200: CodeSnapshotDetailOut,
            413: ErrorSerializer,
            429: ErrorSerializer,
        },
        summary="Upload code: an archive, or a folder's files with their paths",
        description=(
            "Stored once per content: 201 for a new snapshot, 200 with the workspace's existing snapshot "
            "when it has the same files. An archive's single top-level folder is stripped, as are junk "
            "files (.git/, __pycache__/, __MACOSX/, .DS_Store). Refused with 400 naming the member: "
            "absolute paths, `..`, links, devices, duplicates, control characters, compression bombs, "
            "files past STUDIO_CODE_MAX_FILES or unpacked bytes past STUDIO_CODE_MAX_BYTES; 413 for an "
            "upload larger than STUDIO_CODE_MAX_BYTES or the storage quota, or with more than 100 parts. A "
            "session-authenticated call sends its CSRF token in the X-CSRFToken header."
        ),
    )
    def post(self, request, workspace_id):
        try:
            with code_upload_admitted(request._request, workspace=self.workspace):
                return self._upload(request)
        except UploadRefused as exc:
            raise UploadRefusedError(exc) from None

    def _upload(self, request):
        data = CodeUploadIn(data=request.data)  # parsing streams the files through the staging handler
        if request._request.upload_too_large:
            raise UploadRefusedError(UploadRefused(too_large_message(), status=413, code="too_large"))
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            if "file" in values:
                upload = values["file"]
                snapshot = code_services.code_snapshot_create_from_archive(
                    actor=request.user,
                    workspace=self.workspace,
                    path=upload.path,
                    filename=upload.name,
                    name=values.get("name", ""),
                )
            else:
                files = values["files"]
                paths = values.get("paths") or [f.name for f in files]
                snapshot = code_services.code_snapshot_create_from_files(
                    actor=request.user,
                    workspace=self.workspace,
                    name=values.get("name", ""),
                    files=list(zip(paths, files, strict=True)),
                )
        except StorageQuotaExceeded as exc:
            raise UploadRefusedError(UploadRefused(exc.messages[0], status=413, code="quota_exceeded")) from None
        created = not snapshot.already_stored
        return Response(
            CodeSnapshotDetailOut(snapshot).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class CodeSnapshotDetailApi(WorkspaceApiView):
    @extend_schema(responses=CodeSnapshotDetailOut, summary="One code snapshot with its files")
    def get(self, request, workspace_id, snapshot_id):
        snapshot = code_selectors.code_snapshot_get(workspace=self.workspace, snapshot_id=snapshot_id)
        return Response(CodeSnapshotDetailOut(snapshot).data)


class CodeFileApi(WorkspaceApiView):
    @extend_schema(
        parameters=[CodeFileQueryIn],
        responses=CodeFileTextOut,
        summary="One file of a snapshot as text (its first 200 KiB), or null text for a binary file",
    )
    def get(self, request, workspace_id, snapshot_id):
        snapshot = code_selectors.code_snapshot_get(workspace=self.workspace, snapshot_id=snapshot_id)
        path = query_values(CodeFileQueryIn, request)["path"]
        text, size = code_services.code_snapshot_file(snapshot=snapshot, path=path)
        truncated = text is not None and len(text.encode()) < size
        return Response({"path": path, "size": size, "binary": text is None, "truncated": truncated, "text": text})


class CodeFileDownloadApi(WorkspaceApiView):
    @extend_schema(
        parameters=[CodeFileQueryIn],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Download one file of a snapshot",
    )
    def get(self, request, workspace_id, snapshot_id):
        snapshot = code_selectors.code_snapshot_get(workspace=self.workspace, snapshot_id=snapshot_id)
        return code_file_download(snapshot=snapshot, path=query_values(CodeFileQueryIn, request)["path"])
