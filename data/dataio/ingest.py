"""Turn an uploaded CSV, TSV, ``.csv.gz`` or Parquet file into the studio's Parquet, streaming.

``ingest`` runs in a worker after ``sniff``. It parses the upload block by block with pyarrow,
checks every budget in ``Limits`` as it goes, writes Parquet row group by row group (on a second
thread), then infers each column's semantic type and profiles it and, when a column must change
its stored type (text dates, overrides), rewrites the file once more, streaming. A CSV within
``Limits.in_memory_text_bytes`` keeps its parsed columns for the typing and the profile (several
columns at a time, each let go once done: memory about 1.2× the text); a larger file is read back
from the Parquet one column at a time, so memory stays bounded by a few blocks, one row group and
one column, whatever the size of the file.

On any error nothing is left at the destination (see ``sink.ParquetSink``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import os
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ._halves import HalfFailed, SecondHalf, first_half_ended_in_quotes, middle_line_start
from ._streams import PlainReader, TextSource, open_raw
from .arriving import expected_size
from .errors import DataError, column_label, fmt_bytes, fmt_count
from .limits import Limits
from .profile import ColumnFacts, assemble, profile_column, read_column
from .schema_edit import ColumnPlan, IngestResult, Progress, rewrite
from .sink import ParquetSink, label_columns
from .sniff import Sniffed, sniff
from .types import (
    CSV_FALSE_VALUES,
    CSV_TRUE_VALUES,
    FALSE_WORDS,
    SEMANTIC_TYPES,
    TRUE_WORDS,
    ColumnSchema,
    Schema,
    infer_column,
    infer_from_type,
    physical_type_for,
)

_MAX_TYPE_RETRIES = 6
_PARQUET_BATCH_ROWS = 65_536
_HALF_TRIM_BATCHES = 4
_MAX_ROW_END_TRIES = 1_000  # line breaks inside quotes skipped to find where a block's last whole row ends
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error")
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")


def ingest(
    path: str | os.PathLike,
    sniffed: Sniffed,
    dest_parquet: str | os.PathLike,
    *,
    limits: Limits | None = None,
    progress: Progress | None = None,
    column_types: Mapping[str, str] | None = None,
    with_profile: bool = True,
    with_sha256: bool = False,
) -> IngestResult:
    """Parse the upload at ``path`` (as ``sniff`` described it) into ``dest_parquet``.

    ``column_types`` overrides the inferred semantic type of some columns, by their final name
    (after unnamed columns are renamed ``column_<n>``); a value that does not convert is an error.
    ``progress(rows_done, bytes_done)`` is called after every block (``bytes_done`` counts bytes of
    the file on disk); it may start again from zero when the engine re-reads the file (a column
    whose type changes late in the file, or a row longer than one block).

    With ``with_profile`` (the default) the result carries the file's profile too, computed from
    the same column reads as type inference: the same document as ``profile(dest, result.schema)``,
    for about half the reading. With ``with_sha256`` it carries the written file's SHA-256 too,
    hashed on a thread while the columns are profiled (None when a column had to be cast, as the
    file is then written again).

    Returns the schema (inferred types), row count, size written and warnings. Raises
    ``DataError`` for every problem with the data (see ``errors`` for the row convention); the
    destination then does not exist (an existing one is left untouched).
    """
    limits = limits or Limits()
    path, dest = Path(path), Path(dest_parquet)
    size = expected_size(path)  # of an upload still arriving, as announced
    if size > limits.max_file_bytes:
        raise DataError(
            f"The file is {fmt_bytes(size)}; the limit is {fmt_bytes(limits.max_file_bytes)}.", code="too_large"
        )
    stage = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.stage"
    try:
        if sniffed.format == "parquet":
            names, warnings = _parquet_to_stage(path, stage, limits, progress)
            return _finish(stage, dest, names, warnings, column_types or {}, limits, with_profile, with_sha256)
        reader = _CsvReader(path, sniffed, limits, progress)
        names, warnings = reader.read_into(stage)
        columns, reader.columns = reader.columns, None
        try:
            overrides = column_types or {}
            result = _finish(
                stage, dest, names, warnings, overrides, limits, with_profile, with_sha256, columns, reader.sink
            )
        except BaseException:
            reader.sink.abort()
            raise
        booleans = [c.name for c in result.schema.columns if c.physical_type == "bool"]
        if not booleans:
            return result
        spellings = reader.spellings(booleans)
        columns = tuple(replace(c, spelling=spellings.get(c.name)) for c in result.schema.columns)
        return replace(result, schema=Schema(columns))
    finally:
        stage.unlink(missing_ok=True)


# --- Column names --------------------------------------------------------------------------------
def check_names(raw_names: Sequence[str], limits: Limits) -> tuple[list[str], list[dict]]:
    """Validate header names: refuse duplicates and over-long names; rename empty ones with a warning.

    Names are stripped of surrounding spaces. An empty name becomes ``column_<position>`` (the
    unnamed index column of a spreadsheet or pandas export is the usual case).
    """
    if len(raw_names) > limits.max_columns:
        raise DataError(
            f"The file has {fmt_count(len(raw_names))} columns; the limit is {fmt_count(limits.max_columns)}.",
            code="too_many_columns",
        )
    stripped = [str(n).strip() for n in raw_names]
    first_at: dict[str, int] = {}
    duplicates = []
    for position, name in enumerate(stripped, 1):
        if len(name) > limits.max_column_name_chars:
            raise DataError(
                f"The name of column {position} is {fmt_count(len(name))} characters long; the limit is "
                f"{fmt_count(limits.max_column_name_chars)}.",
                code="bad_column_name",
                column=position,
            )
        if not name:
            continue
        if name in first_at:
            duplicates.append(f"Column {position} ({name!r}) has the name of column {first_at[name]}.")
            if len(duplicates) == 1:
                first_duplicate = name
        else:
            first_at[name] = position
    if duplicates:
        more = f" ({len(duplicates) - 5} more.)" if len(duplicates) > 5 else ""
        raise DataError(
            " ".join(duplicates[:5]) + more + " Give each column its own name.",
            code="duplicate_column",
            column=first_duplicate,
        )
    names, warnings = [], []
    taken = set(first_at)
    for position, name in enumerate(stripped, 1):
        if not name:
            name = candidate = f"column_{position}"
            suffix = 2
            while name in taken:
                name, suffix = f"{candidate}_{suffix}", suffix + 1
            taken.add(name)
            warnings.append(
                {
                    "code": "unnamed_column",
                    "column": name,
                    "message": f"Column {position} has no name; it is called {name!r}.",
                }
            )
        names.append(name)
    return names, warnings


def _check_cells(batch: pa.RecordBatch, rows_before: int, first_row: int, limits: Limits) -> None:
    """Refuse a text value longer than ``limits.max_cell_bytes``; ``first_row`` numbers the batch's first row."""
    for position, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True), 1):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        text = column.buffers()[2]
        if text is None or text.size <= limits.max_cell_bytes:
            continue  # all of the column's text is within the limit, so each value is
        lengths = pc.binary_length(column)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > limits.max_cell_bytes:
            index = pc.index(pc.greater(lengths, limits.max_cell_bytes), True).as_py()
            row = first_row + rows_before + index
            raise DataError(
                f"Row {fmt_count(row)} has a value of {fmt_bytes(longest)} in "
                f"{column_label(position, name)}; the limit for one value is "
                f"{fmt_bytes(limits.max_cell_bytes)}.",
                code="cell_too_long",
                row=row,
                column=name,
            )


def _check_rows(rows: int, limits: Limits) -> None:
    if rows > limits.max_rows:
        raise DataError(f"The file has more than {fmt_count(limits.max_rows)} rows, the limit.", code="too_many_rows")


# --- CSV -----------------------------------------------------------------------------------------
class _Retry(Exception):  # noqa: N818 - control flow inside _CsvReader, never escapes
    """Read the file again with what the failed pass learnt (names, text columns, block size)."""


class _HalvesWrong(Exception):  # noqa: N818 - control flow inside _CsvReader, never escapes
    """The two halves met inside a quoted value: read the file again on one thread."""


@contextlib.contextmanager
def _csv_reader(source: TextSource, read, parse, convert) -> Iterator[pcsv.CSVStreamingReader]:
    """pyarrow's streaming reader over ``source``, closed on the way out. Left to the garbage
    collector, a reader could let go of the Python file from one of Arrow's threads while the
    interpreter exits, which aborted the process (apache/arrow#33975)."""
    reader = pcsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
    try:
        yield reader
    finally:
        reader.close()


def _plain(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def _as_label(column: pa.Array) -> pa.Array:
    return column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)


def _first_then_second(first: Iterable[pa.RecordBatch], second: SecondHalf) -> Iterator[pa.RecordBatch]:
    last = None
    for last in first:
        yield last
    if first_half_ended_in_quotes(last):
        raise _HalvesWrong
    yield from second


@dataclass
class _CsvReader:
    """Reads a text upload into a stage Parquet file, re-reading it when a pass learns something.

    pyarrow infers column types from the first block; a column that turns out later to hold
    values of another type (or to be empty in the whole first block) is read again as text, and
    its type is inferred afterwards from all its values.
    """

    path: Path
    sniffed: Sniffed
    limits: Limits
    progress: Progress | None
    names: list[str] | None = None
    warnings: list[dict] = field(default_factory=list)
    text_positions: set[int] = field(default_factory=set)  # 0-based
    all_text: bool = False
    block: int = 0
    rows: int = 0
    # The parsed columns (one list of arrays per column) while the text read stays within
    # ``limits.in_memory_text_bytes``; None once it is larger (the profile then reads the Parquet back).
    columns: list[list[pa.Array] | None] | None = None
    # Parse the file from ``middle`` on another thread (see _halves); False once that went wrong.
    middle: int | None = None
    in_halves: bool = False
    # After read_into: the stage file's writer, still writing its last row groups (see _finish).
    sink: ParquetSink | None = None

    def read_into(self, stage: Path) -> tuple[list[str], list[dict]]:
        sniffed = self.sniffed
        self.block = self.limits.block_bytes
        self.text_positions = {p - 1 for p in sniffed.text_columns}
        self.middle = self._middle() if self._halves_pay() else None
        self.in_halves = self.middle is not None
        if not sniffed.has_header:
            if not sniffed.n_columns:
                raise ValueError("a file without a header needs Sniffed.n_columns")
            self.names, self.warnings = check_names(
                [f"column_{i}" for i in range(1, sniffed.n_columns + 1)], self.limits
            )
        for _attempt in range(2 * (_MAX_TYPE_RETRIES + 3)):
            try:
                self._read_once(stage)
                return self.names, self.warnings
            except _Retry:
                continue
            except (_HalvesWrong, DataError, HalfFailed):
                if not self.in_halves:
                    raise
                # Read on one thread, from what the sniffer said: that pass finds the error (and its row) or
                # the types again, without anything the halves may have got wrong.
                self.in_halves = False
                self.text_positions = {p - 1 for p in sniffed.text_columns}
                self.all_text = False
                self.block = self.limits.block_bytes
        raise AssertionError("the last pass reads every column as text and cannot ask for another")

    def _halves_pay(self) -> bool:
        """Two halves pay for a plain text file large enough, within the in-memory budget (the second
        half's batches wait in memory for the first half's end), on a node with two cores or more."""
        sniffed, limits = self.sniffed, self.limits
        size = expected_size(self.path)
        return (
            sniffed.format != "csv.gz"
            and pa.cpu_count() > 1
            and limits.halves_from_bytes <= size <= limits.in_memory_text_bytes
        )

    @property
    def _first_row(self) -> int:
        """The row number of the first data row (the header is row 1)."""
        return 2 if self.sniffed.has_header else 1

    def _options(self, *, invalid_rows: list | None = None, header: bool = True):
        sniffed, names = self.sniffed, self.names
        read = pcsv.ReadOptions(
            # The streaming reader parses on one thread either way (the halves are how the engine uses two);
            # without Arrow's thread pool, no work on the Python file outlives the read (apache/arrow#50482:
            # a process that read through a Python file could hang or crash at exit).
            use_threads=False,
            block_size=self.block,
            column_names=names,
            skip_rows=1 if names is not None and sniffed.has_header and header else 0,
        )

        def on_invalid_row(row):
            if invalid_rows is not None:
                invalid_rows.append(row)
            return "error"

        parse = pcsv.ParseOptions(
            delimiter=sniffed.delimiter,
            quote_char=sniffed.quotechar,
            double_quote=True,
            escape_char=False,
            newlines_in_values=True,
            ignore_empty_lines=True,
            invalid_row_handler=on_invalid_row,
        )
        types = {}
        if names is not None:
            positions = range(len(names)) if self.all_text else sorted(self.text_positions)
            types = {names[p]: pa.string() for p in positions if p < len(names)}
        convert = pcsv.ConvertOptions(
            column_types=types,
            true_values=CSV_TRUE_VALUES,
            false_values=CSV_FALSE_VALUES,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            check_utf8=False,
            decimal_point=sniffed.decimal,
        )
        return read, parse, convert

    def _source(self, start: int = 0, end: int | None = None) -> TextSource:
        """The file's text (from byte ``start`` to ``end`` when reading in halves)."""
        sniffed = self.sniffed
        if start or end is not None:
            raw = PlainReader(self.path, start, end)
        else:
            raw = open_raw(self.path, sniffed.format == "csv.gz", self.limits)
        source = TextSource(
            raw,
            encoding=sniffed.encoding,
            newline=sniffed.newline,
            delimiter=sniffed.delimiter,
            quotechar=sniffed.quotechar,
            limits=self.limits,
            header=bool(sniffed.has_header) and not start,
            at_start=not start,
        )
        if self.names is not None:
            source.column_names = self.names
        return source

    def _read_once(self, stage: Path) -> None:
        invalid_rows: list = []
        self.rows = 0
        self.columns = None
        middle = self.middle if self.in_halves else None
        source = self._source(end=middle)
        sources = [source]
        second = None
        read, parse, convert = self._options(invalid_rows=invalid_rows)
        try:
            with contextlib.closing(source), _csv_reader(source, read, parse, convert) as reader:
                if self.names is None:
                    self.names, self.warnings = check_names(reader.schema.names, self.limits)
                    source.column_names = self.names
                    if self.text_positions:
                        raise _Retry  # column types are given by name, so open again with the names
                elif len(reader.schema) > self.limits.max_columns:
                    check_names(reader.schema.names, self.limits)
                times = {i for i, f in enumerate(reader.schema) if pa.types.is_time(f.type)} - self.text_positions
                if times:
                    # Times of day stay text as written ("22:00", not "22:00:00.000"), typed by the text rules.
                    self.text_positions |= times
                    raise _Retry
                schema = pa.schema([pa.field(n, f.type) for n, f in zip(self.names, reader.schema, strict=True)])
                batches = reader
                if middle is not None:
                    batches = iter(reader)
                    first = next(batches, None)
                    labels = label_columns(schema, first) if first is not None else frozenset()
                    sources.append(self._source(start=middle))
                    second = SecondHalf(lambda: self._second_half(sources[1], schema, labels))
                    second.start()
                    batches = _first_then_second(itertools.chain([first] if first is not None else [], batches), second)
                batch = None
                self.columns = [[] for _ in schema]
                with ParquetSink(stage, schema, self.limits) as sink:
                    for parsed in batches:
                        rows_before = self.rows
                        self.rows += parsed.num_rows
                        _check_rows(self.rows, self.limits)
                        batch = pa.RecordBatch.from_arrays([_plain(c) for c in parsed.columns], schema=schema)
                        _check_cells(batch, rows_before, self._first_row, self.limits)
                        if sink.write(batch) and self.columns is not None:
                            _give_back_memory()  # what the parser and the writer freed, before the next blocks
                        if self.columns is not None:
                            if sum(s.bytes_in for s in sources) > self.limits.in_memory_text_bytes:
                                self.columns = None
                            else:
                                for kept, field_, column in zip(self.columns, schema, parsed.columns, strict=True):
                                    # Labels as dictionaries, as read_column reads them: smaller, and counted by index.
                                    kept.append(_as_label(column) if field_.name in sink.labels else column)
                        if self.progress:
                            self.progress(self.rows, sum(s.bytes_read for s in sources))
                    if self.rows == 0:
                        raise DataError("The file has a header but no data rows.", code="no_rows")
                    self._check_last_row(batch, odd_quotes=sum(s.quotes for s in sources) % 2 == 1)
                    sink.hand_over()
                    self.sink = sink
        except pa.ArrowInvalid as exc:
            self._explain(exc, invalid_rows)
        except HalfFailed as exc:
            if not isinstance(exc.error, pa.ArrowInvalid) or not _CONVERSION_ERROR.search(str(exc.error)):
                raise
            self._explain(exc.error, [])  # a value of another type in the second half: that column as text
        finally:
            if second is not None:
                second.stop()
            for later in sources[1:]:
                later.close()

    def _middle(self) -> int | None:
        sniffed = self.sniffed
        return middle_line_start(
            self.path, expected_size(self.path), newline=sniffed.newline, quotechar=sniffed.quotechar
        )

    def _second_half(self, source: TextSource, schema: pa.Schema, labels: frozenset[str]) -> Iterator[pa.RecordBatch]:
        """The second half's batches, typed as the first block typed the columns (or as text, as learnt),
        with the labels as dictionaries already: they wait in memory for the first half's end."""
        read, parse, convert = self._options(header=False)
        convert.column_types = {f.name: f.type for f in schema}
        source.column_names = self.names
        with _csv_reader(source, read, parse, convert) as reader:
            for number, batch in enumerate(reader, 1):
                if number % _HALF_TRIM_BATCHES == 0:
                    # This thread's frees wait in its own malloc arena until a trim: between the first half's
                    # row groups they added ~50 MB to the peak on 1M rows.
                    _give_back_memory()
                named = zip(schema.names, batch.columns, strict=True)
                columns = [pc.dictionary_encode(c) if n in labels else c for n, c in named]
                yield pa.RecordBatch.from_arrays(columns, names=schema.names)

    def _explain(self, exc: pa.ArrowInvalid, invalid_rows: list) -> None:
        """Turn a pyarrow error into a retry or a ``DataError`` in the user's words."""
        message = str(exc)
        conversion = _CONVERSION_ERROR.search(message)
        if conversion and self.names is not None and not self.all_text:
            # A value of another type after the first block: read that column as text.
            self.text_positions.add(int(conversion.group(1)))
            self.all_text = len(self.text_positions) > _MAX_TYPE_RETRIES
            raise _Retry from None
        ragged = _RAGGED.search(message)
        if ragged:
            expected, actual = int(ragged.group(1)), int(ragged.group(2))
            found = invalid_rows[0] if invalid_rows else None
            row = found.number if found is not None and found.number else self._locate_invalid_row()
            text = found.text if found is not None else ""
            if len(text) > 60:
                text = text[:60] + "…"
            where = "the header" if self.sniffed.has_header else "the first row"
            at = f"Row {fmt_count(row)}" if row else "A row"
            raise DataError(
                f"{at} has {fmt_count(actual)} fields; {where} has {fmt_count(expected)}."
                + (f" The row starts: {text!r}." if text else ""),
                code="ragged_row",
                row=row,
            ) from None
        if "straddling" in message:
            if self.block < self.limits.max_row_bytes:
                self.block = self.limits.max_row_bytes + (1 << 20)
                raise _Retry from None
            row = self._first_row + self.rows
            raise DataError(
                f"Near row {fmt_count(row)} a quoted field never ends (an unmatched quote "
                f"character?), or a row is longer than {fmt_bytes(self.limits.max_row_bytes)}.",
                code="row_too_long",
                row=row,
            ) from None
        raise DataError(
            f"The file could not be read as CSV near row {fmt_count(self._first_row + self.rows)}: {message}",
            code="parse_error",
            row=self._first_row + self.rows,
        ) from None

    def _check_last_row(self, batch: pa.RecordBatch, *, odd_quotes: bool) -> None:
        """Refuse if a quote left open swallowed the end of the file.

        pyarrow ends such a field silently at the end of the file; the sign is a last row whose last
        value holds line breaks. The count of quote characters cannot confirm it (a literal quote, as
        in ``5" pipe``, counts too), so a quote-aware read of the file does; the count decides only if
        that read fails.
        """
        last = batch.slice(batch.num_rows - 1)
        for position, column in reversed(list(enumerate(last.columns, 1))):
            value = column[0].as_py()
            if value is None:
                continue
            if isinstance(value, str) and ("\n" in value or "\r" in value) and self._ends_inside_quotes(odd_quotes):
                row = self._first_row + self.rows - 1
                lines = value.count("\n") or value.count("\r")
                raise DataError(
                    f"Row {fmt_count(row)} has a quoted field that never ends in "
                    f"{column_label(position, self.names[position - 1])}: an unmatched "
                    f"{self.sniffed.quotechar} character took in the remaining {fmt_count(lines)} lines of the file.",
                    code="unterminated_quote",
                    row=row,
                    column=self.names[position - 1],
                )
            return

    def _ends_inside_quotes(self, odd_quotes: bool) -> bool:
        """Whether the file ends inside a quoted field, read again by Python's csv module (a rare case:
        the last value holds a line break). A sentinel line after the file stays a record of its own
        only if no quote was left open; csv's lenient rules for stray quotes are pyarrow's."""
        sniffed, sentinel = self.sniffed, "studio-end-of-file"
        csv.field_size_limit(max(csv.field_size_limit(), self.limits.max_row_bytes))
        source = self._source()
        with contextlib.closing(source):
            text = io.TextIOWrapper(io.BufferedReader(source), encoding="utf-8", newline="")
            lines = itertools.chain(text, ["\n", sentinel + "\n"])
            try:
                last = deque(csv.reader(lines, delimiter=sniffed.delimiter, quotechar=sniffed.quotechar), maxlen=1)
            except csv.Error:  # unexpected (values are shorter than the limit): the count decides
                return odd_quotes
        return list(last) != [[sentinel]]

    def spellings(self, names: list[str]) -> dict[str, tuple[str, str]]:
        """How the file writes false and true in these boolean columns: the most common spelling
        of each in the first block (read again as text; the stored column holds only booleans)."""
        read, parse, convert = self._options()
        convert.include_columns = names
        convert.column_types = {name: pa.string() for name in names}
        source = self._source()
        with contextlib.closing(source):
            head = source.read(self.block)
        # Parsed from memory: a streaming reader stopped after its first batch kept reading the file
        # ahead on Arrow's I/O thread, and a process exiting meanwhile aborted (apache/arrow#33975).
        head = head[: self._rows_end(head)] if len(head) == self.block else head
        try:
            batch = pcsv.read_csv(pa.py_buffer(head), read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid:  # the first block was read whole before: the cut found no row's end
            return {}
        found = {}
        for name in names:
            best: dict[bool, tuple[int, str]] = {}
            for item in pc.value_counts(pc.utf8_trim_whitespace(batch.column(name).drop_null())).to_pylist():
                word, count = item["values"], item["counts"]
                meaning = True if word.lower() in TRUE_WORDS else False if word.lower() in FALSE_WORDS else None
                if meaning is not None and count > best.get(meaning, (0, ""))[0]:
                    best[meaning] = (count, word)
            if best:
                true = best[True][1] if True in best else _counterpart(best[False][1])
                false = best[False][1] if False in best else _counterpart(best[True][1])
                found[name] = (false, true)
        return found

    def _rows_end(self, head: bytes) -> int:
        """Where the last whole row of ``head`` ends: after its last line break outside quotes
        (len(head) when there is none to find)."""
        newline, quote = self.sniffed.newline.encode(), self.sniffed.quotechar.encode()
        end = head.rfind(newline)
        quotes = head.count(quote, 0, end) if end > 0 else 0
        for _ in range(_MAX_ROW_END_TRIES):
            if end <= 0:
                break
            if quotes % 2 == 0:
                return end + len(newline)
            before = head.rfind(newline, 0, end)
            quotes -= head.count(quote, max(before, 0), end)
            end = before
        return len(head)

    def _locate_invalid_row(self) -> int | None:
        """Parse again on one thread (which numbers rows) up to the invalid row; convert one column only."""
        found: list = []
        read, parse, convert = self._options(invalid_rows=found)
        if self.names:
            convert.include_columns = self.names[:1]
            convert.column_types = {self.names[0]: pa.string()}
        source = self._source()
        with contextlib.closing(source), contextlib.suppress(pa.ArrowInvalid, DataError):
            with _csv_reader(source, read, parse, convert) as reader:
                for _batch in reader:
                    pass
        return found[0].number if found else None


def _counterpart(word: str) -> str:
    """The other boolean word in the same style: "TRUE" → "FALSE", "Yes" → "No", "f" → "t"."""
    lower = word.lower()
    other = FALSE_WORDS[TRUE_WORDS.index(lower)] if lower in TRUE_WORDS else TRUE_WORDS[FALSE_WORDS.index(lower)]
    if word.isupper():
        return other.upper()
    return other.title() if word.istitle() else other


# --- Parquet -------------------------------------------------------------------------------------
def _parquet_to_stage(path: Path, stage: Path, limits: Limits, progress: Progress | None):
    # The magic bytes and the footer's declared size again, before pyarrow reads the footer.
    if sniff(path, limits=limits).format != "parquet":
        raise DataError("The file is not a Parquet file.", code="bad_parquet")
    try:
        source = pq.ParquetFile(path)
        metadata = source.metadata
        arrow_schema = source.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"The Parquet file is damaged or truncated: {exc}", code="bad_parquet") from None
    if len(arrow_schema) > limits.max_columns:
        raise DataError(
            f"The file has {fmt_count(len(arrow_schema))} columns; the limit is {fmt_count(limits.max_columns)}.",
            code="too_many_columns",
        )
    nested = [f"{f.name!r} ({f.type})" for f in arrow_schema if _is_nested(f.type)]
    if nested:
        raise DataError(
            f"Columns with nested values (lists, structs, maps) are not supported: {', '.join(nested)}. "
            "Flatten them into plain columns first.",
            code="nested_column",
            column=next(f.name for f in arrow_schema if _is_nested(f.type)),
        )
    if metadata.num_rows == 0:
        raise DataError("The Parquet file has no rows.", code="no_rows")
    _check_rows(metadata.num_rows, limits)
    total = 0
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index).total_byte_size
        total += group
        if group > limits.max_row_group_bytes:
            raise DataError(
                f"Row group {index + 1} of the Parquet file expands to {fmt_bytes(group)}; the limit is "
                f"{fmt_bytes(limits.max_row_group_bytes)}. Write it with smaller row groups.",
                code="too_large",
            )
    if total > limits.max_decompressed_bytes:
        raise DataError(
            f"The Parquet file expands to {fmt_bytes(total)}; the limit is {fmt_bytes(limits.max_decompressed_bytes)}.",
            code="too_large",
        )
    names, warnings = check_names(arrow_schema.names, limits)
    targets = [_stored_type(name, f.type) for name, f in zip(names, arrow_schema, strict=True)]
    schema = pa.schema([pa.field(n, t) for n, t in zip(names, targets, strict=True)])
    rows = 0
    with ParquetSink(stage, schema, limits) as sink:
        try:
            for batch in source.iter_batches(batch_size=_PARQUET_BATCH_ROWS, use_threads=True):
                arrays = [
                    _to_stored(name, column, target, rows)
                    for name, column, target in zip(names, batch.columns, targets, strict=True)
                ]
                out = pa.RecordBatch.from_arrays(arrays, schema=schema)
                _check_cells(out, rows, 1, limits)
                sink.write(out)
                rows += batch.num_rows
                if progress:
                    progress(rows, int(path.stat().st_size * rows / metadata.num_rows))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"The Parquet file is damaged or truncated: {exc}", code="bad_parquet") from None
        if rows != metadata.num_rows:
            raise DataError(
                f"The Parquet file is damaged: it declares {fmt_count(metadata.num_rows)} rows but holds "
                f"{fmt_count(rows)}.",
                code="bad_parquet",
            )
        sink.commit()
    return names, warnings


def _is_nested(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_nested(kind.value_type)
    return pa.types.is_nested(kind) or pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind)


def _stored_type(name: str, kind: pa.DataType) -> pa.DataType:
    """The type a Parquet upload's column is stored as: plain, 64-bit, no dictionaries."""
    if pa.types.is_dictionary(kind):
        return _stored_type(name, kind.value_type)
    if pa.types.is_null(kind) or pa.types.is_boolean(kind) or pa.types.is_timestamp(kind) or pa.types.is_date32(kind):
        return kind
    if pa.types.is_integer(kind):
        return pa.int64()
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return pa.float64()
    if pa.types.is_date64(kind):
        return pa.timestamp("ms")
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_binary_view(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_time(kind)
    ):
        return pa.string()
    raise DataError(
        f"Column {name!r} has the type {kind}, which data assets do not support.", code="unsupported_type", column=name
    )


def _to_stored(name: str, column: pa.Array, target: pa.DataType, rows_before: int) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if column.type == target:
        return column
    if pa.types.is_time(column.type):
        with contextlib.suppress(pa.ArrowInvalid):
            column = pc.cast(column, pa.time32("s"), safe=True)  # "10:30:00", not "10:30:00.000"
    try:
        return pc.cast(column, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        what = "bytes that are not UTF-8 text" if pa.types.is_string(target) else f"a value that does not fit {target}"
        raise DataError(
            f"Column {name!r} holds {what} (in data rows {fmt_count(rows_before + 1)}–"
            f"{fmt_count(rows_before + len(column))}).",
            code="unsupported_type",
            column=name,
        ) from None


# --- Types ---------------------------------------------------------------------------------------
def _sha256_in_background(path: Path) -> Callable[[], str]:
    """Hash ``path`` on a thread (hashlib lets go of the GIL); the returned call waits for the hex digest.

    The file is opened here, so renaming it meanwhile changes nothing.
    """
    source = open(path, "rb")  # noqa: SIM115 - closed by the thread

    def digest() -> str:
        with source:
            hasher = hashlib.sha256()
            while chunk := source.read(1 << 20):
                hasher.update(chunk)
            return hasher.hexdigest()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
    future = pool.submit(digest)
    pool.shutdown(wait=False)
    return future.result


def _give_back_memory() -> None:
    """Return the pages pyarrow's allocator keeps after frees to the system: a column let go should
    make room for the next one's work, not raise the process's peak."""
    pa.default_memory_pool().release_unused()  # malloc_trim with the system pool the ingest job uses


def _finish(
    stage: Path,
    dest: Path,
    names: list[str],
    warnings: list[dict],
    column_types: Mapping[str, str],
    limits: Limits,
    with_profile: bool,
    with_sha256: bool = False,
    columns: list[list[pa.Array] | None] | None = None,
    writing: ParquetSink | None = None,
) -> IngestResult:
    """Infer each column's type (and profile it), then publish the stage file, rewritten if a type must change.

    Each column is read once: its inference and, when its stored type stays, its profile come from
    the same read. Columns that are cast are profiled from the rewritten file.

    ``columns`` are the parsed columns when the reader kept them (a file within
    ``limits.in_memory_text_bytes``): they are used instead of reading the stage file back, several
    at a time on pyarrow's CPUs, and each is let go once profiled. Without them the stage file is
    read one column at a time (memory: one column, whatever the file's size).

    ``writing`` is the stage file's writer when it may still be writing its last row groups: the
    columns kept in memory are profiled meanwhile (the writer had a core to itself for ~0.15 s).
    """
    unknown = [n for n in column_types if n not in names]
    if unknown:
        raise DataError(
            f"Type overrides name columns the file does not have: {', '.join(map(repr, unknown))}.",
            code="unknown_column",
            column=unknown[0],
        )
    bad = {n: t for n, t in column_types.items() if t not in SEMANTIC_TYPES}
    if bad:
        name, kind = next(iter(bad.items()))
        raise DataError(
            f"Column {name!r}: unknown type {kind!r}; the types are {', '.join(SEMANTIC_TYPES)}.",
            code="invalid_schema",
            column=name,
        )
    if writing is not None and columns is None:
        writing.commit()  # the columns are read back from the file
        writing = None
    if writing is not None:
        arrow_schema, rows, stage_sha256 = writing.stored_schema(), writing.rows, None
    else:
        stage_file = pq.ParquetFile(stage)
        arrow_schema = stage_file.schema_arrow
        rows = stage_file.metadata.num_rows
        stage_sha256 = _sha256_in_background(stage) if with_sha256 else None

    def written() -> Callable[[], str] | None:
        """Wait for the writer's last row groups, then hash the file (while columns are profiled)."""
        writing.commit()
        return _sha256_in_background(stage) if with_sha256 else None

    def column_data(index: int, stored: pa.Field) -> pa.ChunkedArray:
        if columns is None:
            return read_column(stage, stored.name)
        chunks, columns[index] = columns[index], None  # the caller's reference is the last one
        data = pa.chunked_array(chunks, type=chunks[0].type) if chunks else pa.chunked_array([], stored.type)
        if pa.types.is_dictionary(data.type):
            return data
        # As the Parquet holds it (seconds are stored as milliseconds, for one).
        return data if data.type == stored.type else data.cast(stored.type)

    def plan_column(index: int) -> tuple[ColumnPlan, dict | None, bool]:
        name, stored = names[index], arrow_schema.field(index)
        inferred = infer_from_type(stored.type)
        facts = None
        if inferred is None or with_profile:
            facts = ColumnFacts(column_data(index, stored))
        elif columns is not None:
            columns[index] = None
        inferred = inferred or infer_column(name, facts.data, lambda: facts.distinct)
        semantic = column_types.get(name, inferred.semantic_type)
        if semantic == inferred.semantic_type:
            target, fmt = inferred.physical_type, inferred.datetime_format
        else:
            target, fmt = physical_type_for(semantic, stored.type), None
        cast = target != stored.type
        plan = ColumnPlan(name, semantic, inferred.semantic_type, fmt)
        # A column that keeps its stored type is profiled from this read; a cast one after the rewrite.
        summary = None
        if with_profile and not cast:
            summary = profile_column(ColumnSchema(name, semantic, str(stored.type)), facts, rows)
        counted = facts is not None and not facts.sortable
        facts = None  # let the column go before giving memory back
        if columns is not None and counted:
            # A text column's hash table of values (a million ids: ~60 MB in small pieces) stays in
            # this thread's malloc arena: given back, 524 → 405 MB on a wide file. Numbers' sorted
            # copies are reused as they are (trimming after each cost 0.12 s of 1.6 s, for 20 MB).
            _give_back_memory()
        return plan, summary, cast

    workers = min(pa.cpu_count(), len(names)) if columns is not None else 1
    _give_back_memory()
    if workers > 1:
        # numpy's sorts and pyarrow's kernels let go of the GIL: columns are profiled side by side.
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="profile") as pool:
            plans_coming = pool.map(plan_column, range(len(names)))  # all submitted now
            if writing is not None:
                stage_sha256 = written()
            planned = list(plans_coming)
    else:
        planned = [plan_column(index) for index in range(len(names))]
        if writing is not None:
            stage_sha256 = written()
    plans = [plan for plan, _, _ in planned]
    summaries = [summary for _, summary, _ in planned]
    must_rewrite = any(cast for _, _, cast in planned)
    del planned
    if must_rewrite:
        result = rewrite(stage, dest, plans, limits=limits, warnings=warnings)
    else:
        os.replace(stage, dest)
        described = tuple(
            ColumnSchema(
                name=p.name, semantic_type=p.semantic_type, physical_type=str(f.type), inferred_type=p.inferred_type
            )
            for p, f in zip(plans, arrow_schema, strict=True)
        )
        result = IngestResult(
            Schema(described), rows, dest.stat().st_size, tuple(warnings), sha256=stage_sha256 and stage_sha256()
        )
    if not with_profile:
        return result
    if None in summaries:
        summaries = [
            summary or profile_column(column, read_column(dest, column.name), rows)
            for column, summary in zip(result.schema.columns, summaries, strict=True)
        ]
    return replace(result, profile=assemble(rows, summaries))
