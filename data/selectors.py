"""Read queries for data assets, versions, ingests and datastores, scoped to one workspace."""

from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.http import Http404

from data.models import DataAsset, Datastore, DataVersion, Ingest, IngestSource, IngestStatus
from workspaces.models import Workspace

ASSET_SORTS = {
    "name": F("name").asc(),
    "-name": F("name").desc(),
    "updated": F("updated_at").asc(),
    "-updated": F("updated_at").desc(),
    # Assets without a version sort last on every database (PostgreSQL puts NULLs first otherwise).
    "rows": F("latest_rows").asc(nulls_last=True),
    "-rows": F("latest_rows").desc(nulls_last=True),
    "size": F("latest_size").asc(nulls_last=True),
    "-size": F("latest_size").desc(nulls_last=True),
}


def _latest(field: str):
    return Subquery(DataVersion.objects.filter(asset=OuterRef("pk")).order_by("-version").values(field)[:1])


def data_asset_list(*, workspace: Workspace, q: str = "", sort: str = "-updated") -> QuerySet[DataAsset]:
    """Assets with their latest version's number, rows, columns and size (one query)."""
    assets = (
        DataAsset.objects.filter(workspace=workspace)
        .select_related("created_by")
        .annotate(
            latest_version=_latest("version"),
            latest_rows=_latest("rows"),
            latest_columns=_latest("columns"),
            latest_size=_latest("parquet_size"),
            latest_created_at=_latest("created_at"),
        )
    )
    if q:
        assets = assets.filter(name__icontains=q.strip())
    return assets.order_by(ASSET_SORTS.get(sort, ASSET_SORTS["-updated"]), "name")


def data_asset_get(*, workspace: Workspace, asset_id) -> DataAsset:
    try:
        return data_asset_list(workspace=workspace).get(pk=int(asset_id))
    except (DataAsset.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Data asset not found.") from None


def data_version_list(*, asset: DataAsset) -> QuerySet[DataVersion]:
    return asset.versions.select_related("created_by", "derived_from").order_by("-version")


def data_version_get(*, asset: DataAsset, version) -> DataVersion:
    try:
        return data_version_list(asset=asset).select_related("asset", "asset__workspace").get(version=int(version))
    except (DataVersion.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Version not found.") from None


def data_version_get_by_id(*, workspace: Workspace, version_id) -> DataVersion:
    try:
        return DataVersion.objects.select_related("asset").get(pk=int(version_id), asset__workspace=workspace)
    except (DataVersion.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Data version not found.") from None


def data_versions_ready(*, workspace: Workspace) -> QuerySet[DataVersion]:
    """Every version of every asset, for pickers (newest first)."""
    return (
        DataVersion.objects.filter(asset__workspace=workspace)
        .select_related("asset")
        .order_by("asset__name", "-version")
    )


def data_version_newest_of_asset(*, workspace: Workspace, version_id) -> DataVersion | None:
    """The newest version of the asset that version `version_id` belongs to (new rows come as versions)."""
    return (
        DataVersion.objects.filter(asset__workspace=workspace, asset__versions=version_id).order_by("-version").first()
    )


def ingest_list(*, workspace: Workspace, active_only: bool = False) -> QuerySet[Ingest]:
    ingests = Ingest.objects.filter(workspace=workspace).select_related(
        "version", "version__asset", "job", "created_by", "datastore"
    )
    if active_only:
        ingests = ingests.filter(status__in=[IngestStatus.QUEUED, IngestStatus.RUNNING])
    return ingests.order_by("-created_at", "-id")


def ingest_get(*, workspace: Workspace, ingest_id) -> Ingest:
    try:
        return ingest_list(workspace=workspace).get(pk=int(ingest_id))
    except (Ingest.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Upload not found.") from None


def datastore_list(*, workspace: Workspace) -> QuerySet[Datastore]:
    """Datastores with how many imports each has had."""
    return (
        Datastore.objects.filter(workspace=workspace)
        .select_related("created_by")
        .annotate(import_count=Count("ingests"))
        .order_by("name")
    )


def datastore_get(*, workspace: Workspace, datastore_id) -> Datastore:
    try:
        return datastore_list(workspace=workspace).get(pk=int(datastore_id))
    except (Datastore.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Datastore not found.") from None


def datastore_imports(*, datastore: Datastore) -> QuerySet[Ingest]:
    """What was imported from a datastore (or tried): its ingests, newest first, with their versions."""
    return ingest_list(workspace=datastore.workspace).filter(
        datastore=datastore, source_kind__in=[IngestSource.QUERY, IngestSource.S3]
    )


def url_imports(*, workspace: Workspace) -> QuerySet[Ingest]:
    return ingest_list(workspace=workspace).filter(source_kind=IngestSource.URL)
