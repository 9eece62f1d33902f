"""Unpacking a code snapshot (pure: no Django): a .zip, .tar.gz/.tgz or .tar archive, or a folder's
files, written under a fresh directory with every hostile trick refused.

Refused with an `ArchiveError` naming the member: absolute paths and drive letters, `..`,
symbolic and hard links, devices and FIFOs, sparse or encrypted members, names with control
characters or not valid UTF-8, names too long, the same path twice (or a path that is both a file
and a folder), more than `max_files` files, more than `max_bytes` bytes written, and a compression
bomb (more than `max_ratio` times the archive's size decompressed). Sizes are counted on the bytes
actually read, never taken from headers; a gzip stream is counted as it is decompressed, headers
and skipped members included.

Decisions (documented for users in the README):
- **One top-level folder is stripped**: a zip of `project/` holds `project/train.py`; the snapshot
  holds `train.py`, as does the folder dropped in the browser, so the same code is the same
  snapshot however it was packed, and the command runs from the code's own root. A leading `./`
  is dropped too; `\\` is read as a separator (old Windows zips).
- **Junk is skipped**, not refused: `.git/`, `__pycache__/`, `__MACOSX/`, `.DS_Store`,
  `Thumbs.db`, AppleDouble `._*` files. Their names are still checked.
- Paths are normalised to Unicode NFC (macOS writes NFD), so a folder from a Mac and a zip from
  Linux hash the same. Folders themselves are not kept (only files; empty folders vanish).
- Files are written 0644 whatever the archive says: a command runs `bash run.sh`, not `./run.sh`.
"""

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import unicodedata
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
# Below this size an archive may still expand `max_ratio` times this much: tiny archives of text
# compress far better than big ones, and are harmless.
RATIO_FLOOR = 64 * 1024
# Members of any kind (folders and skipped junk included) read per file allowed: bounds the work.
MEMBERS_PER_FILE = 4
MAX_PATH_BYTES = 1024
MAX_NAME_BYTES = 255
JUNK_PARTS = frozenset({".git", "__pycache__", "__MACOSX", ".DS_Store", "Thumbs.db"})


class ArchiveError(Exception):
    """The archive (or folder) is refused; `message` says why, naming the member at fault."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, "/"-separated, NFC
    size: int
    sha256: str

    def to_json(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def manifest_hash(entries: Iterable[FileEntry]) -> str:
    """The content address of a snapshot: SHA-256 over its sorted "path\\0sha256\\n" lines."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def _shown(name: str) -> str:
    """A member name safe to put in a message (control characters and bad bytes escaped)."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= 200 else text[:200] + "…"


def clean_path(name: str) -> str | None:
    """The member's relative path as stored, None for a folder or junk; ArchiveError if hostile."""
    if not isinstance(name, str) or not name:
        raise ArchiveError("A member has an empty name.")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # tarfile keeps undecodable bytes as surrogates
        raise ArchiveError(f"“{_shown(name)}”: the name is not valid UTF-8; rename it and pack again.") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ArchiveError(f"“{_shown(name)}”: the name holds a control character.")
    text = unicodedata.normalize("NFC", name.replace("\\", "/"))
    if text.startswith("/") or (len(text) >= 2 and text[1] == ":" and text[0].isalpha()):
        raise ArchiveError(f"“{_shown(name)}”: absolute paths are refused.")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"“{_shown(name)}”: paths with “..” are refused.")
    if not parts:
        return None  # the archive's root folder itself
    if len(text.encode()) > MAX_PATH_BYTES or any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise ArchiveError(f"“{_shown(name)}”: the path is too long.")
    if any(p in JUNK_PARTS or p.startswith("._") for p in parts):
        return None
    if text.endswith("/"):
        return None  # a folder: made when a file inside it is written
    return "/".join(parts)


def common_folder(paths: Iterable[str]) -> str | None:
    """The one top-level folder every path is inside, if there is one (it is stripped)."""
    tops = set()
    for path in paths:
        head, sep, _ = path.partition("/")
        if not sep:
            return None
        tops.add(head)
        if len(tops) > 1:
            return None
    return tops.pop() if tops else None


class _Writer:
    """Writes files under `dest`, enforcing the path rules and the count and byte limits."""

    def __init__(self, dest: Path, *, max_files: int, max_bytes: int, budget: int | None = None):
        self.dest = dest
        self.max_files, self.max_bytes = max_files, max_bytes
        self.budget = budget  # decompressed bytes allowed (the ratio cap), counted by the caller too
        self.members = 0
        self.written = 0
        self.entries: dict[str, FileEntry] = {}
        self.folders: set[str] = set()

    def member(self, name: str) -> str | None:
        """Count one member and check its name; the path to write or None to skip it."""
        self.members += 1
        if self.members > self.max_files * MEMBERS_PER_FILE:
            raise ArchiveError(f"The archive has more than {self.max_files * MEMBERS_PER_FILE:,} members.")
        return clean_path(name)

    def write(self, path: str, source: BinaryIO, *, name: str) -> None:
        if path in self.entries:
            raise ArchiveError(f"“{_shown(name)}” is in the archive twice.")
        if path in self.folders:
            raise ArchiveError(f"“{_shown(name)}” is both a file and a folder.")
        parents = path.split("/")[:-1]
        for i in range(1, len(parents) + 1):
            folder = "/".join(parents[:i])
            if folder in self.entries:
                raise ArchiveError(f"“{_shown(name)}”: “{folder}” is both a file and a folder.")
        if len(self.entries) >= self.max_files:
            raise ArchiveError(f"More than {self.max_files:,} files: the limit is {self.max_files:,}.")
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.folders.add("/".join(parts[:i]))
        target = self.dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        # O_EXCL and O_NOFOLLOW: the directory is fresh and holds no link, but never follow one.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                self.written += len(chunk)
                if self.written > self.max_bytes:
                    raise ArchiveError(
                        f"“{_shown(name)}”: the files come to more than the limit of {self.max_bytes:,} bytes."
                    )
                if self.budget is not None and self.written > self.budget:
                    raise _bomb(name)
                out.write(chunk)
                digest.update(chunk)
        self.entries[path] = FileEntry(path, size, digest.hexdigest())

    def finish(self) -> list[FileEntry]:
        """Strip one common top-level folder (see the module's docstring); entries sorted by path."""
        top = common_folder(self.entries)
        if top is None:
            return sorted(self.entries.values(), key=lambda e: e.path)
        moved = self.dest / f".strip-{uuid.uuid4().hex}"
        (self.dest / top).rename(moved)
        for child in list(moved.iterdir()):
            child.rename(self.dest / child.name)
        moved.rmdir()
        cut = len(top) + 1
        return sorted((FileEntry(e.path[cut:], e.size, e.sha256) for e in self.entries.values()), key=lambda e: e.path)


def _bomb(name: str) -> ArchiveError:
    return ArchiveError(f"“{_shown(name)}”: the archive expands far more than its size (a compression bomb?).")


def _ratio_budget(archive: Path, max_ratio: float) -> int:
    return int(max(archive.stat().st_size, RATIO_FLOOR) * max_ratio)


def _detect(archive: Path) -> str:
    with open(archive, "rb") as fh:
        head = fh.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[257:262] == b"ustar":
        return "tar"
    raise ArchiveError("This is not a .zip, .tar.gz, .tgz or .tar archive.")


def _prepare(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest} must be an empty folder")


def extract(archive: Path, dest: Path, *, max_files: int, max_bytes: int, max_ratio: float) -> list[FileEntry]:
    """Unpack `archive` into the empty folder `dest`; the files written, sorted by path. On an
    ArchiveError `dest` may hold part of the files: the caller removes the folder."""
    archive, dest = Path(archive), Path(dest)
    _prepare(dest)
    kind = _detect(archive)
    budget = _ratio_budget(archive, max_ratio)
    writer = _Writer(dest, max_files=max_files, max_bytes=max_bytes, budget=budget if kind != "tar" else None)
    try:
        if kind == "zip":
            _extract_zip(archive, writer)
        else:
            _extract_tar(archive, writer, gz=kind == "tar.gz", budget=budget, max_bytes=max_bytes)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, gzip.BadGzipFile, EOFError, NotImplementedError) as exc:
        raise ArchiveError(f"The archive is damaged or not supported: {exc}") from None
    return writer.finish()


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_IFMT(mode):  # Unix: the high bits may hold the file type
        if stat.S_ISLNK(mode):
            return "a symbolic link"
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return "a device, FIFO or socket"
    return ""


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name: zip tools on Linux and macOS write UTF-8 without setting the flag that
    says so, and Python then reads the bytes as cp437; read them as UTF-8 when they are."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename  # a genuine cp437 name (old DOS and Windows tools)


def _zip_count_members(archive: Path, limit: int) -> None:
    """Count the central directory's records before zipfile reads them all into memory: a small
    zip can hold a million tiny entries. The records are counted, not the count the header claims."""
    size = archive.stat().st_size
    with open(archive, "rb") as fh:
        fh.seek(max(0, size - 65_557))
        tail = fh.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) < end + 22:
            return  # zipfile says what is wrong
        end_pos = size - len(tail) + end
        cd_size = int.from_bytes(tail[end + 12 : end + 16], "little")
        if cd_size == 0xFFFFFFFF and end >= 20 and tail[end - 20 : end - 16] == b"PK\x06\x07":  # zip64
            fh.seek(int.from_bytes(tail[end - 12 : end - 4], "little"))
            record = fh.read(56)
            if record[:4] != b"PK\x06\x06":
                raise ArchiveError("The archive is damaged: its zip64 end record is missing.")
            end_pos = fh.tell() - 56
            cd_size = int.from_bytes(record[40:48], "little")
        # zipfile reads the directory just before the end record, whatever offset the record says.
        fh.seek(max(0, end_pos - cd_size))
        count = 0
        while (fixed := fh.read(46))[:4] == b"PK\x01\x02" and len(fixed) == 46:
            count += 1
            if count > limit:
                raise ArchiveError(f"The zip's directory lists more than {limit:,} members.")
            skip = sum(int.from_bytes(fixed[i : i + 2], "little") for i in (28, 30, 32))
            fh.seek(skip, os.SEEK_CUR)


def _extract_zip(archive: Path, writer: _Writer) -> None:
    _zip_count_members(archive, writer.max_files * MEMBERS_PER_FILE)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            info.filename = _zip_name(info)
            path = writer.member(info.filename)
            if info.is_dir():
                continue
            kind = _zip_kind(info)
            if kind:
                raise ArchiveError(f"“{_shown(info.filename)}” is {kind}: only regular files are accepted.")
            if path is None:
                continue
            if info.flag_bits & 0x1:
                raise ArchiveError(f"“{_shown(info.filename)}” is encrypted.")
            if info.file_size > writer.max_bytes:  # an early refusal; the real count is while reading
                raise ArchiveError(f"“{_shown(info.filename)}” is larger than the limit of {writer.max_bytes:,} bytes.")
            with zf.open(info) as source:
                writer.write(path, source, name=info.filename)


class _CountingReader:
    """A decompressed stream that refuses to yield more than `limit` bytes (headers included)."""

    def __init__(self, raw: BinaryIO, limit: int, on_limit: Callable[[], ArchiveError]):
        self.raw, self.limit, self.on_limit, self.count = raw, limit, on_limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size is not None and size >= 0 else CHUNK)
        self.count += len(data)
        if self.count > self.limit:
            raise self.on_limit()
        return data


_TAR_REFUSED = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
}


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile ends an archive quietly at the first invalid header after the first member: the
    members after a member that lied about its size would vanish without a word. Refuse instead."""

    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:
            raise ArchiveError(
                f"The archive is damaged: a header is invalid ({exc}); a member before it may claim a wrong size."
            ) from None


def _extract_tar(archive: Path, writer: _Writer, *, gz: bool, budget: int, max_bytes: int) -> None:
    with open(archive, "rb") as raw:
        stream: BinaryIO = raw
        if gz:
            # Count every decompressed byte: headers, padding and skipped members cost work too.
            # Tar framing adds 1 KiB per member at most, hence the allowance beyond max_bytes.
            limit = min(budget, max_bytes + writer.max_files * MEMBERS_PER_FILE * 1024 + 2 * CHUNK)
            stream = _CountingReader(gzip.GzipFile(fileobj=raw, mode="rb"), limit, lambda: _bomb(archive.name))
        with tarfile.open(
            fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape", tarinfo=_StrictTarInfo
        ) as tf:
            for member in tf:
                path = writer.member(member.name)
                if member.type in _TAR_REFUSED:
                    what = _TAR_REFUSED[member.type]
                    raise ArchiveError(f"“{_shown(member.name)}” is {what}: only regular files are accepted.")
                if member.isdir():
                    continue
                if not member.isreg() or member.issparse():
                    raise ArchiveError(f"“{_shown(member.name)}” is not a regular file (type {member.type!r}).")
                if path is None:
                    continue
                if member.size > writer.max_bytes:
                    raise ArchiveError(
                        f"“{_shown(member.name)}” is larger than the limit of {writer.max_bytes:,} bytes."
                    )
                source = tf.extractfile(member)
                writer.write(path, source, name=member.name)


def extract_files(
    files: Iterable[tuple[str, Callable[[], BinaryIO]]], dest: Path, *, max_files: int, max_bytes: int
) -> list[FileEntry]:
    """Write a folder's files (each a relative path and a way to open it) into the empty folder
    `dest`, with the same rules on the paths and limits as an archive's members."""
    dest = Path(dest)
    _prepare(dest)
    writer = _Writer(dest, max_files=max_files, max_bytes=max_bytes)
    for name, opener in files:
        path = writer.member(name)
        if path is None:
            continue
        with opener() as source:
            writer.write(path, source, name=name)
    return writer.finish()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
