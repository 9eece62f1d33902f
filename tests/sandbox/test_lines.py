"""Log lines: escaped binary, no terminal control, cut long lines, masked secrets, partial last line."""

from compute.sandbox.launcher import unpack
from compute.sandbox.lines import LineSplitter
from compute.sandbox.sandbox import pack_settings


def feed_all(splitter: LineSplitter, *chunks: bytes) -> list[str]:
    lines = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines + splitter.flush()


def test_lines_split_across_chunks_and_a_partial_last_line_is_kept():
    assert feed_all(LineSplitter(100), b"one\ntw", b"o\nthr", b"ee") == ["one", "two", "three"]


def test_binary_is_escaped_and_control_characters_dropped_but_tab_kept():
    assert feed_all(LineSplitter(100), b"\xff\xfe a\tb\x00\x07\x1b[1;31mred\x1b[0m\r\n") == ["\\xff\\xfe a\tbred"]


def test_a_huge_line_is_cut_without_keeping_it_whole():
    splitter = LineSplitter(10)
    for _ in range(1000):
        splitter.feed(b"z" * 10_000)
        assert len(splitter.head) <= splitter.keep_bytes
    assert splitter.flush() == ["z" * 10 + "… [cut 9999990 chars]"]


def test_a_cut_counts_characters_not_bytes():
    assert feed_all(LineSplitter(3), "ééééé\n".encode()) == ["ééé… [cut 2 chars]"]


def test_secrets_are_masked_even_when_split_across_chunks_and_empty_ones_ignored():
    splitter = LineSplitter(100, ["s3cr3t-token", "", "s3cr3t"])
    assert feed_all(splitter, b"key=s3cr", b"3t-token and s3cr3t\n") == ["key=*** and ***"]


def test_an_empty_line_stays_a_line():
    assert feed_all(LineSplitter(100), b"a\n\nb\n") == ["a", "", "b"]


def test_the_launcher_reads_back_what_the_node_packs():
    settings = {
        "cwd": "/work dir/ü",
        "cgroup": None,
        "uid": 65534,
        "gid": None,
        "bubblewrap": True,
        "rlimits": {"NOFILE": 128, "CORE": 0},
        "argv": ["/bin/sh", "-c", "echo 'a=b' ✓", ""],
        "env": {"A": "x=y=z", "EMPTY": "", "UNI": "ünï \udcff"},
    }
    assert unpack(pack_settings(settings)) == settings
