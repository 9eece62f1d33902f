"""Downloading a data version: one helper for the version page and the API."""

from pathlib import Path

from django.http import Http404, HttpResponseBase

from studio import objectstore
from studio.downloads import checked_file, csv_attachment, file_attachment

from .dataio import DataError, Schema, iter_csv
from .models import DataVersion
from .services import data_version_path

DATA_VERSION_FORMATS = ("csv", "parquet")


def data_version_file(data_version: DataVersion, *, missing: str = "The version's file is missing.") -> Path:
    """The version's Parquet file on this host for a page or an API answer: 404 when neither this
    host nor object storage has it."""
    try:
        return data_version_path(data_version)
    except objectstore.ObjectMissing:
        raise Http404(missing) from None


def data_version_download(data_version: DataVersion, *, fmt: str) -> HttpResponseBase:
    """The version as Parquet, or as CSV with formula cells neutralised.

    A schema that no longer parses still downloads (CSV with the stored columns as they are)."""
    if fmt not in DATA_VERSION_FORMATS:
        raise Http404("Unknown format.")
    missing = "The version's file is missing."
    path = data_version_file(data_version, missing=missing)
    name = f"{data_version.asset.name}-v{data_version.version}"
    if fmt == "parquet":
        return file_attachment(path, filename=f"{name}.parquet", missing=missing)
    try:
        schema = Schema.from_json(data_version.schema)
    except DataError:
        schema = None
    return csv_attachment(iter_csv(checked_file(path, missing=missing), schema), filename=f"{name}.csv")
