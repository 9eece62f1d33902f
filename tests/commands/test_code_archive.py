"""The archive engine (commands/archive.py, no Django): real archives built here with zipfile and
tarfile, hostile ones included."""

import gzip
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from commands.archive import ArchiveError, FileEntry, extract, extract_files, manifest_hash

LIMITS = {"max_files": 50, "max_bytes": 1_000_000, "max_ratio": 100}
FILES = {
    "train.py": b"print('hello')\n",
    "src/my model/caf\u00e9 \u00fcber.py": "# \u00e9t\u00e9 \u2014 \u65e5\u672c\n".encode(),
    "data/blob.bin": bytes(range(256)) * 4,
}


def make_zip(path: Path, members: dict, *, top: str = "project") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return path


def make_tar(path: Path, members: dict, *, top: str = "project", mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        tf.addfile(info, io.BytesIO(data) if data else None)
    return path


def refused(archive: Path, dest: Path, **limits) -> str:
    with pytest.raises(ArchiveError) as caught:
        extract(archive, dest, **{**LIMITS, **limits})
    return caught.value.message


def tree(dest: Path) -> dict:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_zip_tar_gz_tar_and_folder_of_the_same_code_unpack_alike_with_the_top_folder_stripped(tmp_path):
    zipped = extract(make_zip(tmp_path / "c.zip", FILES), tmp_path / "z", **LIMITS)
    tarred = extract(make_tar(tmp_path / "c.tgz", FILES), tmp_path / "t", **LIMITS)
    plain = extract(make_tar(tmp_path / "c.tar", FILES, mode="w"), tmp_path / "p", **LIMITS)
    sources = []
    for name, data in FILES.items():
        (tmp_path / "folder" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / name).write_bytes(data)
        sources.append((f"project/{name}", lambda n=name: open(tmp_path / "folder" / n, "rb")))
    folder = extract_files(sources, tmp_path / "f", max_files=50, max_bytes=1_000_000)
    assert zipped == tarred == plain == folder
    assert [e.path for e in zipped] == sorted(FILES)
    assert tree(tmp_path / "z") == tree(tmp_path / "t") == tree(tmp_path / "f") == FILES
    assert len({manifest_hash(e) for e in (zipped, tarred, plain, folder)}) == 1


def test_a_folder_not_wrapped_in_one_top_folder_keeps_its_paths_and_junk_is_skipped(tmp_path):
    members = {
        **FILES,
        ".git/HEAD": b"ref",
        "src/__pycache__/x.pyc": b"\0",
        "__MACOSX/._train.py": b"x",
        ".DS_Store": b"x",
    }
    entries = extract(make_zip(tmp_path / "c.zip", members, top=""), tmp_path / "out", **LIMITS)
    assert [e.path for e in entries] == sorted(FILES)
    assert not (tmp_path / "out" / ".git").exists()


def test_the_manifest_hash_depends_on_paths_and_contents_not_order(tmp_path):
    a, b = FileEntry("a.py", 1, "1" * 64), FileEntry("b.py", 1, "2" * 64)
    assert manifest_hash([a, b]) == manifest_hash([b, a])
    assert manifest_hash([a, b]) != manifest_hash([a, FileEntry("c.py", 1, "2" * 64)])
    assert manifest_hash([a]) != manifest_hash([FileEntry("a.py", 1, "3" * 64)])


@pytest.mark.parametrize(
    "name, words",
    [
        ("/etc/passwd", "absolute"),
        ("C:/Windows/evil.py", "absolute"),
        ("../outside.py", ".."),
        ("project/../../outside.py", ".."),
        ("project\\..\\..\\outside.py", ".."),
        ("bad\x01name.py", "control character"),
        ("a/" + "x" * 300 + ".py", "too long"),
    ],
)
def test_hostile_member_names_are_refused_in_zips_and_tars(tmp_path, name, words):
    zipped = tmp_path / "h.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("ok.py", b"fine")
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    message = refused(zipped, tmp_path / "z")
    assert words in message and "“" in message
    tarred = make_tar(tmp_path / "h.tgz", {"ok.py": b"fine", name: b"evil"}, top="")
    assert words in refused(tarred, tmp_path / "t")
    assert not (tmp_path / "outside.py").exists() and not Path("/tmp/outside.py").exists()


@pytest.mark.parametrize(
    "kind, words",
    [
        (tarfile.SYMTYPE, "symbolic link"),
        (tarfile.LNKTYPE, "hard link"),
        (tarfile.CHRTYPE, "character device"),
        (tarfile.BLKTYPE, "block device"),
        (tarfile.FIFOTYPE, "FIFO"),
    ],
)
def test_links_devices_and_fifos_in_a_tar_are_refused_naming_the_member(tmp_path, kind, words):
    info = tarfile.TarInfo("project/link to passwd")
    info.type = kind
    info.linkname = "/etc/passwd"
    message = refused(tar_with(tmp_path / "l.tgz", info), tmp_path / "out")
    assert words in message and "link to passwd" in message
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))


def test_a_symlink_in_a_zip_is_refused(tmp_path):
    archive = tmp_path / "l.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("project/secrets")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert "symbolic link" in refused(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "secrets").exists()


def test_a_zip_bomb_is_refused_by_its_ratio_before_the_size_limit(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("zeros.txt", b"\0" * 20_000_000)
    assert archive.stat().st_size < 100_000
    message = refused(archive, tmp_path / "out", max_bytes=100_000_000)
    assert "compression bomb" in message
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()) <= 64 * 1024 * 100


def test_a_tar_gz_bomb_hidden_in_skipped_junk_is_counted_while_decompressing(tmp_path):
    # The member is junk (skipped, never written), but decompressing it is work all the same.
    archive = make_tar(tmp_path / "bomb.tgz", {".git/objects/pack": b"\0" * 30_000_000, "a.py": b"x"}, top="")
    assert "compression bomb" in refused(archive, tmp_path / "out", max_bytes=100_000_000)


def test_too_many_files_and_too_many_bytes_are_refused(tmp_path):
    many = make_zip(tmp_path / "many.zip", {f"f{i}.py": b"x" for i in range(6)})
    assert "More than 5 files" in refused(many, tmp_path / "a", max_files=5)
    big = make_tar(tmp_path / "big.tgz", {"a.bin": b"a" * 3000, "b.bin": b"b" * 3000})
    assert "more than the limit of 5,000 bytes" in refused(big, tmp_path / "b", max_bytes=5000)


def test_a_tar_member_claiming_a_smaller_size_than_its_data_is_refused(tmp_path):
    data = b"A" * 5000
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("project/liar.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        info2 = tarfile.TarInfo("project/next.py")
        info2.size = 1
        tf.addfile(info2, io.BytesIO(b"x"))
    block = bytearray(raw.getvalue())
    block[124:136] = b"%011o\0" % 10  # the header now claims 10 bytes; 4,990 follow regardless
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block[:512])
    archive = tmp_path / "liar.tar.gz"
    archive.write_bytes(gzip.compress(bytes(block)))
    message = refused(archive, tmp_path / "out")
    assert "damaged" in message and "wrong size" in message
    liar = tmp_path / "out" / "project" / "liar.py"
    assert not liar.exists() or liar.stat().st_size <= 10


def test_a_zip_member_claiming_a_smaller_size_than_its_data_is_refused(tmp_path):
    archive = make_zip(tmp_path / "liar.zip", {"liar.py": b"B" * 50_000}, top="")
    raw = bytearray(archive.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")  # uncompressed size: 10 bytes
    archive.write_bytes(bytes(raw))
    assert "damaged" in refused(archive, tmp_path / "out")


def test_duplicates_and_a_path_both_file_and_folder_are_refused(tmp_path):
    archive = tmp_path / "dup.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        for data in (b"one", b"two"):
            info = tarfile.TarInfo("project/a.py")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert "twice" in refused(archive, tmp_path / "a")
    both = make_zip(tmp_path / "both.zip", {"a": b"file", "a/b.py": b"inside"})
    assert "both a file and a folder" in refused(both, tmp_path / "b")


def test_a_tar_name_that_is_not_utf8_is_refused_clearly_and_a_legacy_zip_name_is_read(tmp_path):
    archive = tmp_path / "latin.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        info = tarfile.TarInfo("caf\u00e9.py")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    message = refused(archive, tmp_path / "a")
    assert "not valid UTF-8" in message and "caf" in message
    legacy = tmp_path / "dos.zip"
    with zipfile.ZipFile(legacy, "w") as zf:
        zf.writestr("r\u00e9sum\u00e9.txt", b"cp437")  # Python writes this name as cp437, no UTF-8 flag
    assert [e.path for e in extract(legacy, tmp_path / "b", **LIMITS)] == ["r\u00e9sum\u00e9.txt"]


def test_something_that_is_not_an_archive_is_refused_and_dest_must_be_empty(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"print('not a zip')\n")
    assert "not a .zip" in refused(tmp_path / "x.zip", tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "there").write_text("x")
    with pytest.raises(ValueError):
        extract(make_zip(tmp_path / "ok.zip", FILES), tmp_path / "b", **LIMITS)


def test_a_folders_paths_get_the_same_rules(tmp_path):
    with pytest.raises(ArchiveError, match=r"\.\."):
        extract_files([("../x.py", lambda: io.BytesIO(b"x"))], tmp_path / "a", max_files=5, max_bytes=100)
    entries = extract_files(
        [("My Project/a b.py", lambda: io.BytesIO(b"x")), ("My Project/.git/config", lambda: io.BytesIO(b"y"))],
        tmp_path / "b",
        max_files=5,
        max_bytes=100,
    )
    assert [e.path for e in entries] == ["a b.py"]


def test_a_zip_of_many_tiny_entries_is_refused_before_its_directory_is_read(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(250):
            zf.writestr(f"d{i}/", b"")  # folders: not files, but members all the same
    assert "directory lists more than 200 members" in refused(archive, tmp_path / "a", max_files=50)
    # Within the limit, members with zip64 fields are counted and unpacked.
    big = tmp_path / "z64.zip"
    with zipfile.ZipFile(big, "w") as zf:
        for i in range(30):
            with zf.open(f"f{i}.py", "w", force_zip64=True) as out:
                out.write(b"x")
    assert len(extract(big, tmp_path / "c", **LIMITS)) == 30
