"""Look at the first bytes of an upload and decide what it is and how to read it.

``sniff`` reads at most the first 64 KiB (decompressed, for a ``.gz``) and, for Parquet, the last 8
bytes. It never trusts the file name: content decides, the name only adds advice to a message. It
refuses what the studio will not parse (pickles, archives, spreadsheets, binary files, a Parquet
file whose footer does not fit) with a ``DataError`` the user can act on.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from itertools import islice
from pathlib import Path
from pickletools import dis, genops

from ._streams import GZIP_MAGIC, UTF8_BOM, GzipReader, decode_latin1
from .errors import DataError, fmt_bytes, fmt_count
from .limits import Limits

SAMPLE_BYTES = 64 * 1024
FORMATS = ("csv", "csv.gz", "parquet")
ENCODINGS = ("utf-8", "latin-1")
PARQUET_MAGIC = b"PAR1"
# In order of preference: when two delimiters split the sample equally well, the earlier wins.
DELIMITERS = (",", ";", "\t", "|", ":", "^", "~")
_SNIFF_RECORDS = 500


@dataclass(frozen=True)
class Sniffed:
    """What an upload is and how to read it; stored as JSON between the web process and the worker.

    ``format`` is ``"csv"``, ``"csv.gz"`` or ``"parquet"``; the other fields describe text formats
    and are ``None`` for Parquet. ``encoding`` is ``"utf-8"`` or ``"latin-1"`` (decoded as
    windows-1252, the superset browsers use for Latin-1). ``newline`` is the character that ends
    lines (``"\\n"``, or ``"\\r"`` for old Mac files). ``decimal`` is ``"."`` or ``","``.
    ``n_columns`` is the number of fields in the first row, when the sample holds that row whole.
    ``text_columns`` are the 1-based positions of columns whose sampled values are numbers with
    leading zeros (zip codes, phone numbers): they are read as text so no zero is lost.
    ``size`` is the file's size on disk.
    """

    format: str
    size: int
    encoding: str | None = None
    delimiter: str | None = None
    quotechar: str | None = None
    has_header: bool | None = None
    newline: str | None = None
    decimal: str | None = None
    n_columns: int | None = None
    text_columns: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_columns", tuple(self.text_columns))
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}")
        if self.format != "parquet":
            if self.encoding not in ENCODINGS:
                raise ValueError(f"unknown encoding {self.encoding!r}")
            for name in ("delimiter", "quotechar", "newline", "decimal"):
                value = getattr(self, name)
                if not isinstance(value, str) or len(value) != 1:
                    raise ValueError(f"{name} must be one character, not {value!r}")
            if self.delimiter in (self.quotechar, self.newline, "\r", "\n"):
                raise ValueError(f"delimiter {self.delimiter!r} cannot be used")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Sniffed:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def sniff(path: str | os.PathLike, original_name: str = "", *, limits: Limits | None = None) -> Sniffed:
    """Decide the format, encoding and dialect of the file at ``path`` from its first bytes.

    ``original_name`` is the name the user uploaded (a hint for messages only). Raises
    ``DataError`` for an empty file, a file over ``limits.max_file_bytes``, a pickle, an archive or
    spreadsheet, a binary file, a damaged ``.gz``, a Parquet file whose magic bytes or footer size
    are wrong, or a first row with more than ``limits.max_columns`` fields.
    """
    limits = limits or Limits()
    path = Path(path)
    name = original_name.lower()
    size = path.stat().st_size
    if size == 0:
        raise DataError("The file is empty.", code="empty_file")
    if size > limits.max_file_bytes:
        raise DataError(
            f"The file is {fmt_bytes(size)}; the limit is {fmt_bytes(limits.max_file_bytes)}.", code="too_large"
        )
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
        tail = b""
        if size >= 12:
            f.seek(size - 8)
            tail = f.read(8)

    if head[:4] in (PARQUET_MAGIC, b"PARE") or name.endswith((".parquet", ".pq")):
        return _sniff_parquet(head, tail, size, name, limits)
    if head[:2] == GZIP_MAGIC:
        reader = GzipReader(path, limits)
        try:
            sample = reader.read(SAMPLE_BYTES + 1)
        finally:
            reader.close()
        complete = len(sample) <= SAMPLE_BYTES
        sample = sample[:SAMPLE_BYTES]
        if not sample.strip():
            raise DataError("The file is empty: the .gz file holds no data.", code="empty_file")
        if sample[:4] == PARQUET_MAGIC:
            raise DataError(
                "This is a gzip-compressed Parquet file: Parquet is compressed already, so upload "
                "the .parquet file itself.",
                code="unsupported_format",
            )
        _refuse_binary(sample, name, inside_gzip=True, complete=complete)
        return _sniff_text(sample, complete, size, "csv.gz", limits)
    _refuse_binary(head, name, inside_gzip=False, complete=size <= SAMPLE_BYTES)
    return _sniff_text(head, size <= SAMPLE_BYTES, size, "csv", limits)


# --- Parquet -------------------------------------------------------------------------------------
def _sniff_parquet(head: bytes, tail: bytes, size: int, name: str, limits: Limits) -> Sniffed:
    if head[:4] == b"PARE" or tail[4:] == b"PARE":
        raise DataError(
            "Encrypted Parquet files are not supported: upload it without encryption.", code="unsupported_format"
        )
    if head[:4] != PARQUET_MAGIC:
        raise DataError(
            "The file is named .parquet but is not a Parquet file: it does not start with the PAR1 marker.",
            code="bad_parquet",
        )
    if size < 12 or tail[4:] != PARQUET_MAGIC:
        raise DataError(
            "The Parquet file is truncated or damaged: it does not end with the PAR1 marker.", code="bad_parquet"
        )
    footer = int.from_bytes(tail[:4], "little")
    if footer == 0 or footer + 12 > size:
        raise DataError(
            f"The Parquet file is truncated or damaged: its footer claims {fmt_count(footer)} bytes "
            f"but the file has only {fmt_count(size)}.",
            code="bad_parquet",
        )
    if footer > limits.max_parquet_footer_bytes:
        raise DataError(
            f"The Parquet file's metadata is {fmt_bytes(footer)}; the limit is "
            f"{fmt_bytes(limits.max_parquet_footer_bytes)}.",
            code="too_large",
        )
    return Sniffed(format="parquet", size=size)


# --- Content we refuse ---------------------------------------------------------------------------
_SIGNATURES = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or other Office document"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "a program (ELF)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"ARROW1", "an Arrow/Feather file"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"Obj\x01", "an Avro file"),
)
_SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".ods", ".numbers")
# Bytes that never appear in text: C0 controls other than tab, line feed, form feed and carriage return.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"
_NON_CONTROL_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)


def _refuse_binary(sample: bytes, name: str, *, inside_gzip: bool, complete: bool) -> None:
    where = " inside the .gz file" if inside_gzip else ""
    if sample[:2] == b"PK" and sample[2:4] in (b"\x03\x04", b"\x05\x06", b"\x07\x08"):
        if name.endswith(_SPREADSHEET_SUFFIXES) or b"xl/" in sample or b"[Content_Types].xml" in sample:
            raise DataError(
                "Excel workbooks are not supported: save the sheet as CSV (File → Save As → CSV UTF-8) "
                "and upload that.",
                code="unsupported_format",
            )
        raise DataError(
            f"Zip archives are refused{where}: unzip it and upload the CSV or Parquet file inside.",
            code="unsupported_format",
        )
    if _looks_like_pickle(sample, complete=complete):
        raise DataError(
            "Pickle files are refused: they can run code when loaded. Export the data as CSV or Parquet.",
            code="pickle_refused",
        )
    for magic, kind in _SIGNATURES:
        if sample.startswith(magic):
            raise DataError(f"The file is {kind}{where}, not CSV or Parquet.", code="unsupported_format")
    if re.match(rb"BZh[1-9]1AY&SY", sample):
        raise DataError(
            "The file is a bzip2 archive, not CSV or Parquet: decompress it, or use gzip (.csv.gz).",
            code="unsupported_format",
        )
    if sample[257:262] == b"ustar":
        raise DataError(
            f"The file is a tar archive{where}: extract it and upload the CSV or Parquet file inside.",
            code="unsupported_format",
        )
    if sample[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(
            "The file is UTF-16 text: save it as UTF-8 (CSV UTF-8) and upload it again.", code="bad_encoding"
        )
    nul = sample.find(b"\x00")
    if nul != -1:
        raise DataError(
            f"The file is not text: it contains binary data (NUL bytes) near byte {fmt_count(nul)}{where}.",
            code="binary_file",
        )
    controls = len(sample.translate(None, _NON_CONTROL_BYTES))
    if controls > max(8, len(sample) // 100):
        raise DataError(
            f"The file is not text: {fmt_count(controls)} of its first {fmt_count(len(sample))} bytes "
            f"are control characters{where}.",
            code="binary_file",
        )


def _looks_like_pickle(sample: bytes, *, complete: bool) -> bool:
    """A real pickle, decided strictly so that no text table is ever refused as one.

    Protocols 2–5 start with the PROTO opcode (``0x80`` then the protocol), which no text starts
    with. Protocols 0 and 1 have no marker, and text often decodes as a few opcodes (``carat,…``
    is GLOBAL, a line starting with ``0`` is POP, ``.`` is STOP), so they count only when the
    whole stream is well formed (``pickletools.dis`` checks the stack and marks; nothing is
    loaded) up to its STOP, or up to the end of a sample cut from a longer file, and the bytes do
    not read as a delimited table either.
    """
    if len(sample) >= 2 and sample[0] == 0x80 and 2 <= sample[1] <= 5:
        return True
    stream = io.BytesIO(sample)
    try:
        dis(stream, out=io.StringIO())
    except Exception:  # noqa: BLE001 - a malformed stream is "not a pickle", unless only cut short
        if complete or stream.tell() < len(sample) or not _builds_objects(sample):
            return False
    return not _reads_as_delimited_table(sample, complete=complete)


# Opcodes that build containers or objects. Every real pickle has some; one-column text whose lines
# all start with a letter that reads a line (P001, P002, … is a run of PERSID) has none.
_BUILDING_OPCODES = frozenset(
    "MARK EMPTY_LIST EMPTY_DICT EMPTY_TUPLE EMPTY_SET APPEND APPENDS SETITEM SETITEMS ADDITEMS LIST DICT "
    "TUPLE TUPLE1 TUPLE2 TUPLE3 FROZENSET REDUCE BUILD OBJ INST NEWOBJ NEWOBJ_EX".split()
)


def _builds_objects(sample: bytes) -> bool:
    try:
        for opcode, _arg, _pos in genops(io.BytesIO(sample)):
            if opcode.name in _BUILDING_OPCODES:
                return True
    except Exception:  # noqa: BLE001 - the stream was cut short; what was read counts
        return False
    return False


def _reads_as_delimited_table(sample: bytes, *, complete: bool) -> bool:
    """True when some delimiter splits every line of ``sample`` into the same number (≥ 2) of fields."""
    if b"\x00" in sample:
        return False  # text has no NUL bytes; binary pickles (protocol 1) do
    lines = sample.decode("latin-1").splitlines()
    if not complete and not sample.endswith((b"\n", b"\r")):
        lines = lines[:-1]  # the sample ends inside the last line
    if not lines:
        return False
    for delimiter in DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=delimiter) if row}
        if len(counts) == 1 and counts.pop() >= 2:
            return True
    return False


# --- Text ----------------------------------------------------------------------------------------
def _sniff_text(sample: bytes, complete: bool, size: int, fmt: str, limits: Limits) -> Sniffed:
    body = sample[len(UTF8_BOM) :] if sample.startswith(UTF8_BOM) else sample
    if not body.strip():
        raise DataError("The file is empty.", code="empty_file")
    encoding = _detect_encoding(body, complete)
    text = body.decode("utf-8", "ignore") if encoding == "utf-8" else decode_latin1(body)
    if re.match(r"\s*(<!doctype html|<html|<\?xml)", text[:200], re.IGNORECASE):
        raise DataError("The file is HTML or XML, not CSV or Parquet.", code="unsupported_format")
    newline = "\n" if "\n" in text else ("\r" if "\r" in text else "\n")
    if not complete:
        cut = text.rfind(newline)
        first_row_complete = cut != -1
        text = text[: cut + 1] if first_row_complete else text
    else:
        first_row_complete = True
    quotechar = _detect_quotechar(text)
    delimiter = _detect_delimiter(text, quotechar)
    rows = [
        r
        for r in islice(
            csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar), _SNIFF_RECORDS
        )
        if r
    ]
    if not complete and len(rows) > 1 and len(rows) < _SNIFF_RECORDS:
        rows.pop()  # the sample may end inside a quoted field of the last record
    n_columns = len(rows[0]) if rows and first_row_complete else None
    fields_seen = len(rows[0]) if rows else 0
    if fields_seen > limits.max_columns:
        raise DataError(
            f"The file has {'at least ' if n_columns is None else ''}{fmt_count(fields_seen)} columns; "
            f"the limit is {fmt_count(limits.max_columns)}.",
            code="too_many_columns",
        )
    has_header = _detect_header(rows) if first_row_complete else True
    data = rows[1:] if has_header else rows
    decimal = _detect_decimal(data, delimiter)
    text_columns = sorted({j + 1 for row in data for j, value in enumerate(row) if _LEADING_ZERO.fullmatch(value)})
    return Sniffed(
        format=fmt,
        size=size,
        encoding=encoding,
        delimiter=delimiter,
        quotechar=quotechar,
        has_header=has_header,
        newline=newline,
        decimal=decimal,
        n_columns=n_columns,
        text_columns=tuple(text_columns),
    )


def _detect_encoding(body: bytes, complete: bool) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A sample cut in the middle of a multi-byte character is still UTF-8.
        if not complete and exc.reason == "unexpected end of data" and exc.start >= len(body) - 3:
            return "utf-8"
        return "latin-1"
    return "utf-8"


def _detect_quotechar(text: str) -> str:
    """``'`` only when it visibly quotes whole fields and ``"`` never does."""
    if "'" not in text or '"' in text:
        return '"'
    delims = re.escape("".join(DELIMITERS))
    quoted = re.findall(rf"(?:^|[{delims}])'[^'\n]*'(?:[{delims}]|$)", text, re.MULTILINE)
    return "'" if len(quoted) >= 2 else '"'


def _detect_delimiter(text: str, quotechar: str) -> str:
    """The delimiter that splits the sample's records into the same number (≥ 2) of fields most often.

    The first row must have that number too (it rules out the decimal comma of a semicolon file);
    among near-equal candidates the earlier in ``DELIMITERS`` wins (so ``10:30`` never beats a comma).
    """
    scored = []
    for priority, delimiter in enumerate(DELIMITERS):
        if delimiter not in text:
            continue
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
        counts = [len(r) for r in islice(reader, _SNIFF_RECORDS) if r]
        if not counts:
            continue
        mode, freq = Counter(counts).most_common(1)[0]
        if mode < 2:
            continue
        consistency = freq / len(counts)
        fits_first = counts[0] == mode
        scored.append((fits_first, round(consistency, 2), -priority, delimiter))
    if not scored:
        return ","  # one column
    return max(scored)[3]


_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?%?")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T].*)?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}( .*)?")
_LEADING_ZERO = re.compile(r"\s*[+-]?0\d+\s*")
_BOOLEAN = {"true", "false", "yes", "no", "t", "f", "y", "n"}
_MISSING = {"", "na", "n/a", "nan", "null", "none", "#n/a", "-"}


def _kind(value: str) -> str:
    value = value.strip()
    if value.lower() in _MISSING:
        return "missing"
    if _NUMBER.fullmatch(value):
        return "number"
    if _DATE.fullmatch(value):
        return "date"
    if value.lower() in _BOOLEAN:
        return "boolean"
    return "text"


def _detect_header(rows: list[list[str]]) -> bool:
    """True when the first row looks like names and the rows below look like data.

    Each column votes: text above numbers, dates or booleans says "header"; the same kind above
    and below, or a first value that repeats further down a text column, says "data". Ties — such
    as a file of text columns only — go to "header", the common case.
    """
    if not rows:
        return True
    first, below = rows[0], rows[1:]
    if not below:
        return any(_kind(v) == "text" for v in first)
    header_votes = data_votes = 0
    for j, value in enumerate(first):
        top = _kind(value)
        kinds = [_kind(r[j]) for r in below if j < len(r)]
        kinds = [k for k in kinds if k != "missing"]
        if top == "missing" or not kinds:
            continue
        dominant, count = Counter(kinds).most_common(1)[0]
        if count < 0.8 * len(kinds):
            continue
        if dominant != "text":
            if top == "text":
                header_votes += 1
            elif top == dominant:
                data_votes += 1
        elif top == "text" and value in {r[j] for r in below if j < len(r)}:
            data_votes += 1
    return header_votes >= data_votes


def _detect_decimal(rows: list[list[str]], delimiter: str) -> str:
    """``","`` when a non-comma-delimited file writes numbers as ``3,14`` and never as ``3.14``."""
    if delimiter == ",":
        return "."
    comma = dot = 0
    for row in rows[:200]:
        for value in row:
            value = value.strip()
            if re.fullmatch(r"[+-]?\d*,\d+", value):
                # "1,234" could be a thousands separator; only other digit counts are decisive.
                comma += len(value.split(",")[1]) != 3
            elif re.fullmatch(r"[+-]?\d*\.\d+", value):
                dot += 1
    return "," if comma and not dot else "."
