from rest_framework import serializers

from commands.models import CodeSnapshot
from studio.api.inputs import QueryInputSerializer


class CodeUploadIn(serializers.Serializer):
    """Either `file` (an archive) or `files` (a folder's files, with `paths`)."""

    file = serializers.FileField(required=False, help_text="A .zip, .tar.gz/.tgz or .tar of the code.")
    files = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        help_text="A folder's files, one part each (at most DATA_UPLOAD_MAX_NUMBER_FILES, 100: send an "
        "archive for more). The server keeps only the last component of a part's filename, so send the "
        "relative paths in `paths`.",
    )
    paths = serializers.ListField(
        child=serializers.CharField(max_length=1024, trim_whitespace=False),
        required=False,
        help_text="Each file's path relative to the folder, in the order of the `files` parts.",
    )
    name = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="Defaults to the archive's or folder's name."
    )

    def validate(self, values):
        has_file, files = "file" in values, values.get("files") or []
        if has_file == bool(files):
            raise serializers.ValidationError(
                {"file": ["Send either `file` (an archive) or `files` (a folder's files)."]}
            )
        paths = values.get("paths")
        if paths is not None and len(paths) != len(files):
            raise serializers.ValidationError(
                {"paths": [f"Give one path per file: {len(files)} files, {len(paths)} paths."]}
            )
        return values


class CodeFileOut(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class CodeSnapshotOut(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = CodeSnapshot
        fields = ["id", "sha256", "name", "size", "file_count", "created_by", "created_at"]


class CodeSnapshotDetailOut(CodeSnapshotOut):
    files = CodeFileOut(many=True)

    class Meta(CodeSnapshotOut.Meta):
        fields = CodeSnapshotOut.Meta.fields + ["files"]


class CodeFileQueryIn(QueryInputSerializer):
    path = serializers.CharField(
        max_length=1024, trim_whitespace=False, help_text="A path from the snapshot's `files`."
    )


class CodeFileTextOut(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    binary = serializers.BooleanField(help_text="True when the file is not UTF-8 text: `text` is then null.")
    truncated = serializers.BooleanField(help_text="True when `text` holds only the file's first 200 KiB.")
    text = serializers.CharField(allow_null=True)
