from django.apps import AppConfig


class DataConfig(AppConfig):
    name = "data"
    verbose_name = "Data"

    def ready(self) -> None:
        from workspaces.usage import count_register, stored_register

        from . import jobs  # noqa: F401 - registers the ingest job kind with the job engine
        from .models import DataAsset, DataVersion, Ingest, IngestStatus

        count_register("data_asset_count", DataAsset)
        stored_register(DataVersion.objects.all, workspace_field="asset__workspace", size_field="parquet_size")
        stored_register(  # uploads waiting for their ingest
            lambda: Ingest.objects.filter(
                status__in=[IngestStatus.QUEUED, IngestStatus.RUNNING], base_version__isnull=True
            ),
            workspace_field="workspace",
            size_field="source_size",
        )
