"""The budgets a worker enforces while it reads an upload (R: "Hostile input" in RELIABILITY.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Budgets for one ingest; the defaults suit a worker with a few GB of memory.

    Every budget is enforced while streaming, before the work it protects is done, and breaking
    one raises a ``DataError`` that names the limit. Sizes are in bytes (decimal units in messages).

    * ``max_file_bytes`` — size of the file on disk (the web layer caps uploads itself; this is the
      engine's own backstop, 20 GB).
    * ``max_decompressed_bytes`` — bytes a ``.gz`` upload may expand to (50 GB).
    * ``max_gzip_ratio`` — decompressed / compressed bytes, checked continuously once
      ``gzip_ratio_grace_bytes`` (1 MB) have come out: a decompression bomb is stopped after a few
      MB, not after it has filled the disk. Ordinary CSVs compress 3–20×.
    * ``max_rows`` (100 million), ``max_columns`` (2,000), ``max_column_name_chars`` (1,000).
    * ``max_row_bytes`` — longest line (10 MB); a longer line is refused without reading it whole.
    * ``max_cell_bytes`` — longest single text value (1 MB).
    * ``max_parquet_footer_bytes`` (64 MB) and ``max_row_group_bytes`` (1 GB uncompressed) — what a
      Parquet upload may declare before any of it is read.
    * ``block_bytes`` — how much text the CSV parser takes at a time (1 MB). A row longer than this
      (but within ``max_row_bytes``) makes the engine retry with blocks of ``max_row_bytes``.
    * ``row_group_rows`` / ``row_group_bytes`` — the shape of the Parquet we write: row groups of at
      most 131,072 rows and about 64 MB, whichever comes first (preview pages read one row group).
    * ``in_memory_text_bytes`` — a CSV whose text is at most this size (512 MB) keeps its parsed
      columns in memory for type inference and the profile, instead of reading them back from the
      Parquet just written (about 1.2× the text); a larger one is read back one column at a time.
    * ``halves_from_bytes`` — a plain CSV at least this large (32 MB), within ``in_memory_text_bytes``,
      is parsed as two halves at once when pyarrow has two CPUs or more (its reader parses on one).
    * ``own_process_from_bytes`` — an upload at least this large (16 MB) is ingested by the worker in
      a fresh process with only the engine loaded (``own_process``), not in the worker's own.
    """

    max_file_bytes: int = 20_000_000_000
    max_decompressed_bytes: int = 50_000_000_000
    max_gzip_ratio: float = 100.0
    gzip_ratio_grace_bytes: int = 1_000_000
    max_rows: int = 100_000_000
    max_columns: int = 2_000
    max_column_name_chars: int = 1_000
    max_row_bytes: int = 10_000_000
    max_cell_bytes: int = 1_000_000
    max_parquet_footer_bytes: int = 64_000_000
    max_row_group_bytes: int = 1_000_000_000
    block_bytes: int = 1 << 20
    row_group_rows: int = 131_072
    row_group_bytes: int = 64_000_000
    in_memory_text_bytes: int = 512_000_000
    halves_from_bytes: int = 32_000_000
    own_process_from_bytes: int = 16_000_000

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, not {value!r}.")
        if self.max_cell_bytes > self.max_row_bytes:
            raise ValueError("Limits.max_cell_bytes cannot exceed max_row_bytes.")
