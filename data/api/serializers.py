from rest_framework import serializers

from data.dataio import SEMANTIC_TYPES
from data.models import (
    ASSET_NAME_MESSAGE,
    ASSET_NAME_PATTERN,
    S3_BUCKET_MESSAGE,
    S3_BUCKET_PATTERN,
    S3_REGION_MESSAGE,
    S3_REGION_PATTERN,
    DataAsset,
    Datastore,
    DataVersion,
    Ingest,
)
from studio.api.inputs import InputSerializer, QueryInputSerializer


class UploadIn(serializers.Serializer):
    file = serializers.FileField(help_text="CSV/TSV (any delimiter), .csv.gz or Parquet; streamed to disk.")
    name = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="The data asset: a new name makes a new asset, an existing one its next version.",
    )
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    tags = serializers.CharField(max_length=500, required=False, allow_blank=True, help_text="Comma-separated.")
    allow_identical = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Make a new version even when the file is identical to a version the asset has (else 409).",
    )


class SchemaEditIn(InputSerializer):
    types = serializers.DictField(
        child=serializers.ChoiceField(choices=SEMANTIC_TYPES),
        required=False,
        default=dict,
        help_text="{column: new semantic type}",
    )
    exclude = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class PreviewQueryIn(QueryInputSerializer):
    offset = serializers.IntegerField(min_value=0, max_value=10**12, default=0)
    limit = serializers.IntegerField(min_value=0, max_value=500, default=50)


class VersionFileQueryIn(QueryInputSerializer):
    format = serializers.ChoiceField(choices=["csv", "parquet"], default="csv")


class AssetUpdateIn(InputSerializer):
    description = serializers.CharField(max_length=2000, allow_blank=True)


# Rules the services check, said as patterns so that the OpenAPI schema states what is accepted.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9][A-Za-z0-9.\-]*(:[0-9]{1,5})?(/[^\s\x00]*)?$"
TAGS_PATTERN = r"^[^,\x00]{0,50}(,[^,\x00]{0,50}){0,19}$"
_ENCODED = r"([A-Za-z0-9._~\-]|%0[1-9A-Fa-f]|%[1-7][0-9A-Fa-f])"  # ASCII only, no NUL
ENDPOINT_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9][A-Za-z0-9.\-]*(:[0-9]{1,5})?/?$"
S3_KEY_PATTERN = r"^[^/\x00-\x1f\x7f][^\x00-\x1f\x7f]{0,1023}$"
ACCESS_KEY_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
POSTGRES_URL_PATTERN = (
    rf"^postgres(ql)?://({_ENCODED}+(:{_ENCODED}+)?@)?[A-Za-z0-9][A-Za-z0-9.\-]*(:[0-9]{{1,5}})?"
    rf"(/{_ENCODED}*)?(\?sslmode=(disable|allow|prefer|require|verify-ca|verify-full))?$"
)


def _name_field(**kwargs):
    return serializers.RegexField(
        ASSET_NAME_PATTERN, max_length=100, error_messages={"invalid": ASSET_NAME_MESSAGE}, **kwargs
    )


class ImportCommonIn(InputSerializer):
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    tags = serializers.RegexField(
        TAGS_PATTERN,
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Comma-separated: at most 20 tags of at most 50 characters.",
        error_messages={"invalid": "Give up to 20 tags of at most 50 characters, separated by commas."},
    )


class ImportUrlIn(ImportCommonIn):
    url = serializers.RegexField(
        URL_PATTERN,
        max_length=2000,
        help_text="An http:// or https:// URL of a CSV, TSV, .csv.gz or Parquet file.",
        error_messages={"invalid": "Give an http:// or https:// URL with a host name (no user or password)."},
    )
    name = _name_field(
        required=False,
        allow_blank=True,
        help_text="The data asset: a new name makes a new asset, an existing one its next version. "
        "Empty: the file's name in the URL.",
    )


class ImportQueryIn(ImportCommonIn):
    datastore = serializers.CharField(max_length=100, help_text="The name of a datastore of the workspace.")
    query = serializers.CharField(max_length=100_000, help_text="One SELECT (or WITH) statement; it runs read-only.")
    name = _name_field(help_text="The data asset: a new name makes a new asset, an existing one its next version.")


class ImportS3In(ImportCommonIn):
    datastore = serializers.CharField(max_length=100, help_text="The name of an S3 datastore of the workspace.")
    key = serializers.RegexField(
        S3_KEY_PATTERN,
        max_length=1024,
        help_text="The object's key in the bucket (no leading /), or a prefix ending in / whose CSV/TSV "
        "parts are joined in name order.",
        error_messages={"invalid": "Give the key as it appears in the bucket: no leading /, no control characters."},
    )
    name = _name_field(
        required=False,
        allow_blank=True,
        help_text="The data asset: a new name makes a new asset, an existing one its next version. "
        "Empty: the object's name.",
    )


class DatastoreIn(InputSerializer):
    name = _name_field()
    kind = serializers.RegexField(
        r"^(postgresql|s3)$",
        required=False,
        default="postgresql",
        help_text="postgresql (give url) or s3 (give bucket, access_key_id, secret_access_key, and region "
        "and endpoint_url as needed).",
        error_messages={"invalid": "Give postgresql or s3."},
    )
    bucket = serializers.RegexField(
        S3_BUCKET_PATTERN, max_length=63, required=False, error_messages={"invalid": S3_BUCKET_MESSAGE}
    )
    region = serializers.RegexField(
        S3_REGION_PATTERN,
        max_length=50,
        required=False,
        allow_blank=True,
        help_text="Empty: us-east-1.",
        error_messages={"invalid": S3_REGION_MESSAGE},
    )
    endpoint_url = serializers.RegexField(
        ENDPOINT_URL_PATTERN,
        max_length=300,
        required=False,
        allow_blank=True,
        help_text="An S3-compatible API (MinIO and the like) as http(s)://host[:port]; empty: AWS S3.",
        error_messages={"invalid": "Give the endpoint as http(s)://host[:port], with no path."},
    )
    access_key_id = serializers.RegexField(
        ACCESS_KEY_ID_PATTERN,
        max_length=128,
        required=False,
        write_only=True,
        error_messages={"invalid": "Give the access key id: 1–128 characters, no spaces."},
    )
    secret_access_key = serializers.CharField(
        max_length=256, required=False, write_only=True, help_text="Sealed at rest and never shown again."
    )
    url = serializers.RegexField(
        POSTGRES_URL_PATTERN,
        max_length=2000,
        required=False,
        write_only=True,
        help_text="postgresql://user:password@host:port/database[?sslmode=…], special characters "
        "percent-encoded — sealed at rest and never shown again.",
        error_messages={"invalid": "Give a postgresql://user:password@host:port/database URL."},
    )
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class DatastoreOut(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    import_count = serializers.IntegerField(default=0)
    # Plain text: a choice set would be one more enum named "kind" in the OpenAPI schema.
    kind = serializers.CharField(read_only=True, help_text="postgresql or s3")

    class Meta:
        model = Datastore
        fields = [
            "id",
            "name",
            "kind",
            "display",
            "bucket",
            "region",
            "endpoint_url",
            "description",
            "import_count",
            "created_by",
            "created_at",
        ]


class IngestOut(serializers.ModelSerializer):
    job = serializers.PrimaryKeyRelatedField(read_only=True)
    version = serializers.SerializerMethodField()
    datastore = serializers.SlugRelatedField(slug_field="name", read_only=True)
    source_url = serializers.CharField(
        read_only=True, help_text="The URL given, for an import from a URL; s3://bucket/key for an S3 import."
    )

    class Meta:
        model = Ingest
        fields = [
            "id",
            "asset_name",
            "status",
            "error",
            "source_kind",
            "source_name",
            "source_size",
            "source_url",
            "datastore",
            "query",
            "object_key",
            "progress_rows",
            "progress_bytes",
            "job",
            "version",
            "created_at",
            "finished_at",
        ]

    def get_version(self, ingest) -> dict | None:
        if not ingest.version_id:
            return None
        return {"id": ingest.version_id, "asset_id": ingest.version.asset_id, "version": ingest.version.version}


class AssetOut(serializers.ModelSerializer):
    latest_version = serializers.IntegerField(allow_null=True)
    latest_rows = serializers.IntegerField(allow_null=True)
    latest_columns = serializers.IntegerField(allow_null=True)
    latest_size = serializers.IntegerField(allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DataAsset
        fields = [
            "id",
            "name",
            "description",
            "latest_version",
            "latest_rows",
            "latest_columns",
            "latest_size",
            "created_by",
            "created_at",
            "updated_at",
        ]


class VersionOut(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    derived_from = serializers.IntegerField(source="derived_from.version", default=None)

    class Meta:
        model = DataVersion
        fields = [
            "id",
            "version",
            "description",
            "tags",
            "source_name",
            "source_format",
            "source_size",
            "rows",
            "columns",
            "parquet_size",
            "parquet_sha256",
            "derived_from",
            "created_by",
            "created_at",
        ]


class VersionDetailOut(VersionOut):
    class Meta(VersionOut.Meta):
        fields = VersionOut.Meta.fields + ["schema", "profile"]


class PreviewOut(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField())
    total_rows = serializers.IntegerField()
    offset = serializers.IntegerField()


class DeletedOut(serializers.Serializer):
    deleted = serializers.BooleanField()
    bytes_freed = serializers.IntegerField()


class DatastoreDetailOut(DatastoreOut):
    imports = serializers.SerializerMethodField()

    class Meta(DatastoreOut.Meta):
        fields = DatastoreOut.Meta.fields + ["imports"]

    def get_imports(self, datastore) -> list[dict]:
        return IngestOut(self.context["imports"], many=True).data
