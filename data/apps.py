from django.apps import AppConfig


class DataConfig(AppConfig):
    name = "data"
    verbose_name = "Data"

    def ready(self) -> None:
        from compute.jobs.kinds import register
        from workspaces.usage import count_register, stored_register

        from .models import INGEST, DataAsset, DataVersion, Ingest, IngestStatus

        # A job kind's handler by its dotted path: imported (with pyarrow) when a job first needs it.
        register(INGEST, "Data ingest", "data.jobs.IngestJob")
        count_register("data_asset_count", DataAsset)
        stored_register(DataVersion.objects.all, workspace_field="asset__workspace", size_field="parquet_size")
        stored_register(  # uploads waiting for their ingest
            lambda: Ingest.objects.filter(
                status__in=[IngestStatus.QUEUED, IngestStatus.RUNNING], base_version__isnull=True
            ),
            workspace_field="workspace",
            size_field="source_size",
        )
