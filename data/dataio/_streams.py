"""Byte streams between the upload on disk and pyarrow's CSV reader.

``open_raw`` gives the file's bytes (decompressing ``.gz`` under a size and ratio cap);
``TextSource`` turns them into the UTF-8 text pyarrow parses, checking on the way that no line is
longer than the row budget and that the text decodes. Both work in chunks, so memory stays bounded
whatever the input, and both raise ``DataError`` with the line where a problem is.
"""

from __future__ import annotations

import codecs
import csv
import io
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np

from .arriving import open_bytes
from .errors import DataError, column_label, fmt_bytes, fmt_count
from .limits import Limits

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
_COMPRESSED_CHUNK = 1 << 16


def _windows_1252_table() -> str:
    """Latin-1 as browsers decode it (WHATWG): windows-1252, with its 5 undefined bytes as Latin-1."""
    chars = []
    for byte in range(256):
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(byte))
    return "".join(chars)


LATIN1_TABLE = _windows_1252_table()


def _count(data: bytes, byte: bytes) -> int:
    """``data.count(byte)`` for one byte, about five times faster on large chunks."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == byte[0]))


def decode_latin1(data: bytes) -> str:
    """Decode bytes the way ``encoding="latin-1"`` means throughout this package (never fails)."""
    return codecs.charmap_decode(data, "strict", LATIN1_TABLE)[0]


class RawReader(Protocol):
    bytes_read: int  # bytes taken from the file on disk so far

    def read(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class PlainReader:
    """The file's bytes as they are, from ``start`` up to ``end`` (the end of the file by default)."""

    def __init__(self, path: Path, start: int = 0, end: int | None = None) -> None:
        self._file = open_bytes(path)  # an upload still arriving is read as it comes
        self._file.seek(start)
        self._left = None if end is None else end - start
        self.bytes_read = 0

    def read(self, size: int) -> bytes:
        if self._left is not None:
            size = min(size, self._left)
            self._left -= size
        data = self._file.read(size)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._file.close()


class GzipReader:
    """A ``.gz`` file's decompressed bytes, refusing a bomb while it streams.

    The ratio (bytes out / compressed bytes consumed) is checked after every piece once
    ``limits.gzip_ratio_grace_bytes`` have come out, and the total against
    ``limits.max_decompressed_bytes``; so a file that expands without end is stopped after a few MB.
    Concatenated gzip members are read in turn; NUL padding after the last one is ignored.
    """

    def __init__(self, path: Path, limits: Limits) -> None:
        self._file = open_bytes(path)  # an upload still arriving is read as it comes
        self._limits = limits
        self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes read but not yet consumed
        self._member_has_data = False
        self._eof = False
        self.bytes_read = 0  # compressed bytes read from disk
        self.bytes_out = 0

    def read(self, size: int) -> bytes:
        pieces: list[bytes] = []
        wanted = size
        while wanted > 0 and not self._eof:
            at_end = False
            if not self._pending:
                self._pending = self._file.read(_COMPRESSED_CHUNK)
                self.bytes_read += len(self._pending)
                at_end = not self._pending
            try:
                piece = self._decompressor.decompress(self._pending, wanted)
            except zlib.error as exc:
                raise DataError(f"The .gz file is damaged: {exc}.", code="bad_gzip") from None
            self._member_has_data = True
            if self._decompressor.eof:
                self._pending = self._decompressor.unused_data
                self._next_member()
            else:
                self._pending = self._decompressor.unconsumed_tail
            if at_end and not piece and not self._decompressor.eof:
                self._end_of_file()  # nothing left inside zlib either
                break
            if piece:
                pieces.append(piece)
                wanted -= len(piece)
                self.bytes_out += len(piece)
                self._check_budget()
        return b"".join(pieces)

    def _check_budget(self) -> None:
        consumed = max(1, self.bytes_read - len(self._pending))
        limits = self._limits
        if self.bytes_out > limits.gzip_ratio_grace_bytes and self.bytes_out > limits.max_gzip_ratio * consumed:
            raise DataError(
                f"The .gz file expands more than {limits.max_gzip_ratio:g}× (stopped at {fmt_bytes(self.bytes_out)}): "
                "refusing a possible decompression bomb.",
                code="gzip_bomb",
            )
        if self.bytes_out > limits.max_decompressed_bytes:
            raise DataError(
                f"The .gz file expands to more than {fmt_bytes(limits.max_decompressed_bytes)}, the limit.",
                code="too_large",
            )

    def _next_member(self) -> None:
        rest = self._pending + self._file.read(2) if len(self._pending) < 2 else self._pending
        self.bytes_read += len(rest) - len(self._pending)
        self._pending = rest
        if rest[:2] == GZIP_MAGIC:
            self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._member_has_data = False
            return
        # Only NUL padding may follow the last member (some tape-era tools write it).
        while rest:
            if rest.strip(b"\0"):
                raise DataError("The .gz file has unexpected data after its end.", code="bad_gzip")
            rest = self._file.read(_COMPRESSED_CHUNK)
            self.bytes_read += len(rest)
        self._pending = b""
        self._eof = True

    def _end_of_file(self) -> None:
        if self._member_has_data and not self._decompressor.eof:
            raise DataError("The .gz file is truncated: it ends in the middle of the compressed data.", code="bad_gzip")
        self._eof = True

    def close(self) -> None:
        self._file.close()


def open_raw(path: Path, compressed: bool, limits: Limits) -> RawReader:
    return GzipReader(path, limits) if compressed else PlainReader(path)


class TextSource(io.RawIOBase):
    """UTF-8 text for pyarrow from a raw reader, checked and transcoded in chunks.

    * ``encoding`` is ``"utf-8"`` (validated: the first invalid byte raises ``DataError`` naming the
      row and, when it can tell, the column) or ``"latin-1"`` (decoded as windows-1252, transcoded).
    * A line longer than ``limits.max_row_bytes`` raises ``DataError`` after reading at most one
      chunk past the limit.
    * A UTF-8 byte-order mark at the start is dropped (``at_start=False``: the bytes are a later
      part of the file, read on their own).

    ``read(n)`` returns exactly ``n`` bytes until the end (pyarrow's reader needs full blocks).
    An encoding error names its column from ``column_names`` when set, else (``header=True``) from
    the file's first line.
    """

    def __init__(
        self,
        raw: RawReader,
        *,
        encoding: str,
        newline: str,
        delimiter: str,
        quotechar: str,
        limits: Limits,
        header: bool = False,
        at_start: bool = True,
    ) -> None:
        super().__init__()
        if encoding not in ("utf-8", "latin-1"):
            raise ValueError(f"unsupported encoding {encoding!r}")
        self._raw = raw
        self._encoding = encoding
        self._newline = newline.encode()
        self._delimiter = delimiter
        self._quotechar = quotechar
        self._limits = limits
        self._chunk = limits.max_row_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = bytearray()
        self._first = at_start  # a byte-order mark is dropped at the start of the file only
        self._done = False
        self._line_run = 0  # bytes since the last line break
        self._chunk_lines = 0  # line breaks in the chunk being read
        self.lines = 0  # line breaks seen before the current chunk
        self.bytes_in = 0  # decoded-side bytes (after decompression, before transcoding)
        self.column_names: list[str] | None = None
        self._header = header
        self._quote = quotechar.encode()
        self.quotes = 0  # quote characters seen: an odd count at the end means one was never closed

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the file on disk (compressed bytes for a .gz), for progress."""
        return self._raw.bytes_read

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        if not self._buffer and not self._done:
            chunk = self._next_chunk(size)
            if len(chunk) == size:
                return chunk  # the common case: no copy
            self._buffer += chunk
        while len(self._buffer) < size and not self._done:
            self._buffer += self._next_chunk(size - len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readinto(self, buffer) -> int:  # io.RawIOBase protocol
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _next_chunk(self, wanted: int) -> bytes:
        # Never more than max_row_bytes at a time: _check_line_lengths relies on it.
        raw = self._raw.read(max(1, min(wanted, self._chunk)))
        if not raw:
            self._done = True
            if self._encoding == "utf-8":
                try:
                    self._decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise DataError(
                        f"Row {fmt_count(self.lines + 1)} is not valid UTF-8 text: the file ends in the middle "
                        "of a character.",
                        code="bad_encoding",
                        row=self.lines + 1,
                    ) from None
            return b""
        if self._first:
            self._first = False
            if raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
        self._check_line_lengths(raw)
        if self._header and self.column_names is None and self.bytes_in == 0:
            self._read_header_names(raw)
        if self._encoding == "utf-8":
            self._check_utf8(raw)
            out = raw
        else:
            out = decode_latin1(raw).encode("utf-8")
        self.lines += self._chunk_lines
        self.quotes += _count(raw, self._quote)
        self.bytes_in += len(raw)
        return out

    def _read_header_names(self, raw: bytes) -> None:
        end = raw.find(self._newline)
        if end == -1:
            return
        line = raw[:end].decode("utf-8", "replace") if self._encoding == "utf-8" else decode_latin1(raw[:end])
        fields = next(csv.reader([line], delimiter=self._delimiter, quotechar=self._quotechar), [])
        # Empty names get the name the engine gives them.
        self.column_names = [f.strip() or f"column_{i}" for i, f in enumerate(fields, 1)]

    def _check_line_lengths(self, raw: bytes) -> None:
        # Chunks are at most max_row_bytes long, so only the runs that cross chunk edges can be too long.
        limit = self._limits.max_row_bytes
        self._chunk_lines = _count(raw, self._newline)
        first = raw.find(self._newline)
        if first == -1:
            self._line_run += len(raw)
            line = self.lines + 1
        else:
            if self._line_run + first > limit:
                self._line_run += first
                line = self.lines + 1
            else:
                self._line_run = len(raw) - raw.rfind(self._newline) - 1
                line = self.lines + self._chunk_lines + 1
        if self._line_run > limit:
            raise DataError(
                f"Row {fmt_count(line)} is longer than {fmt_bytes(limit)}, the limit for one row "
                f"(stopped reading after {fmt_bytes(self._line_run)} of it).",
                code="row_too_long",
                row=line,
            )

    def _check_utf8(self, raw: bytes) -> None:
        pending = self._decoder.getstate()[0]
        if not pending and raw.isascii():
            return
        try:
            self._decoder.decode(raw)
        except UnicodeDecodeError as exc:
            offset = max(0, exc.start - len(pending))
            line = self.lines + raw.count(self._newline, 0, offset) + 1
            byte = raw[offset : offset + 1].hex().upper() or "?"
            where = self._column_at(raw, offset)
            at = f" in {where}" if where else ""
            column = where and self._column_key(raw, offset)
            raise DataError(
                f"Row {fmt_count(line)}{at} is not valid UTF-8 text (byte 0x{byte} at byte "
                f"{fmt_count(self.bytes_in + offset)} of the text). The start of the file is UTF-8; "
                "save the whole file as UTF-8.",
                code="bad_encoding",
                row=line,
                column=column or None,
            ) from None

    def _line_prefix(self, raw: bytes, offset: int) -> str | None:
        start = raw.rfind(self._newline, 0, offset)
        if start == -1 and self.bytes_in:
            return None  # the line started in an earlier chunk
        return raw[start + 1 : offset].decode("utf-8", "replace")

    def _position_at(self, raw: bytes, offset: int) -> int | None:
        prefix = self._line_prefix(raw, offset)
        if prefix is None:
            return None
        fields = next(csv.reader([prefix], delimiter=self._delimiter, quotechar=self._quotechar), [""])
        return max(1, len(fields))

    def _column_at(self, raw: bytes, offset: int) -> str | None:
        position = self._position_at(raw, offset)
        if position is None:
            return None
        names = self.column_names
        name = names[position - 1] if names and position <= len(names) else None
        return column_label(position, name)

    def _column_key(self, raw: bytes, offset: int) -> str | int | None:
        position = self._position_at(raw, offset)
        names = self.column_names
        if position is not None and names and position <= len(names):
            return names[position - 1]
        return position
