from rest_framework import serializers

from data.dataio import SEMANTIC_TYPES
from data.models import DataAsset, DataVersion, Ingest
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


class IngestOut(serializers.ModelSerializer):
    job = serializers.PrimaryKeyRelatedField(read_only=True)
    version = serializers.SerializerMethodField()

    class Meta:
        model = Ingest
        fields = [
            "id",
            "asset_name",
            "status",
            "error",
            "source_name",
            "source_size",
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
