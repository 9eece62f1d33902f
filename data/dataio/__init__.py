"""The data-ingest engine for tabular data assets: pure Python (pyarrow and numpy), no Django.

The worker's path for an upload, and the reads the pages make later::

    sniffed = sniff(path, original_name)            # first 64 KiB only: format, encoding, dialect
    result = ingest(path, sniffed, dest, limits=Limits(), progress=cb)   # -> IngestResult
    result.schema.to_json(), result.profile         # stored with the version (JSON fields)
    page = read_page(dest, offset, limit)           # preview rows
    chunks = iter_csv(dest, result.schema)          # CSV download, formula-safe
    edit = apply_schema(dest, new_dest, edited)     # a new version with other types / fewer columns
    report = profile(new_dest, edit.schema)         # its profile

Every problem with the data raises ``DataError`` with a message for the user. Files are written
under a temporary name in the destination's directory and renamed when complete; a killed worker
can leave such a file behind (``.<dest name>.*.partial`` or ``.stage``), safe to delete.
"""

from .errors import DataError
from .export import iter_csv
from .ingest import ingest
from .limits import Limits
from .preview import Page, read_page
from .profile import profile
from .schema_edit import IngestResult, apply_schema
from .sniff import Sniffed, sniff
from .types import SEMANTIC_TYPES, ColumnSchema, Schema

__all__ = [
    "SEMANTIC_TYPES",
    "ColumnSchema",
    "DataError",
    "IngestResult",
    "Limits",
    "Page",
    "Schema",
    "Sniffed",
    "apply_schema",
    "ingest",
    "iter_csv",
    "profile",
    "read_page",
    "sniff",
]
