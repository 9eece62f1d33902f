"""sniff: format, encoding and dialect from the first bytes; refusals by content, not by name."""

import gzip
import io
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits, Sniffed, sniff
from data.dataio.sniff import SAMPLE_BYTES

# Pickle bytes written out by hand (the studio never imports pickle): protocol 2 of {"a": 1}, and
# the classic protocol-0 payload that runs a shell command when loaded.
PICKLE_PROTOCOL_2 = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."
PICKLE_PROTOCOL_4 = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s."
PICKLE_PROTOCOL_0 = b"cos\nsystem\n(S'echo owned'\ntR."


def sniffed_of(work, data, name="data.csv", **kwargs) -> Sniffed:
    return sniff(work.upload(data), name, **kwargs)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_detects_the_delimiter(work, delimiter):
    text = "".join(
        delimiter.join(row) + "\n"
        for row in [["id", "name", "price"], ["1", "apple", "1.5"], ["2", "pear", "2.25"], ["3", "fig", "0.5"]]
    )
    sniffed = sniffed_of(work, text)
    assert sniffed.delimiter == delimiter
    assert sniffed.format == "csv" and sniffed.has_header is True and sniffed.n_columns == 3


def test_times_with_colons_do_not_beat_the_comma(work):
    text = "id,start,end\n1,10:00:00,11:30:00\n2,12:00:00,12:45:10\n"
    assert sniffed_of(work, text).delimiter == ","


def test_semicolon_file_with_decimal_commas(work):
    sniffed = sniffed_of(work, "name;price;weight\napple;1,5;0,25\npear;2,75;1,5\n")
    assert sniffed.delimiter == ";"
    assert sniffed.decimal == ","


def test_quoted_delimiters_and_line_breaks_do_not_confuse_the_sniffer(work):
    text = 'id,comment\n1,"hello, world"\n2,"two\nlines, and a comma"\n3,plain\n'
    sniffed = sniffed_of(work, text)
    assert (sniffed.delimiter, sniffed.quotechar, sniffed.n_columns) == (",", '"', 2)


def test_single_quotes_are_found_when_they_quote_fields(work):
    text = "id,name\n1,'Smith, John'\n2,'Doe, Jane'\n3,'Roe, Rick'\n"
    assert sniffed_of(work, text).quotechar == "'"


def test_file_without_header(work):
    sniffed = sniffed_of(work, "1,2.5,2024-01-01\n2,3.5,2024-01-02\n3,4.5,2024-01-03\n")
    assert sniffed.has_header is False
    assert sniffed.n_columns == 3


def test_header_of_text_over_text_columns_is_a_header(work):
    assert sniffed_of(work, "colour,size\nred,small\nblue,large\ngreen,small\n").has_header is True


def test_text_rows_whose_first_values_repeat_have_no_header(work):
    assert sniffed_of(work, "red,small\nblue,large\nred,small\nblue,small\n").has_header is False


def test_utf8_with_bom(work):
    sniffed = sniffed_of(work, "\ufeffname,city\nAnna,Zürich\n")
    assert sniffed.encoding == "utf-8" and sniffed.has_header is True


def test_latin1(work):
    assert sniffed_of(work, "name;city\nMüller;Köln\n".encode("latin-1")).encoding == "latin-1"


def test_utf8_sample_cut_inside_a_character_is_still_utf8(work):
    row = "Zoë,Ærø\n".encode()
    body = row * (SAMPLE_BYTES // len(row) + 10)
    # Pad the header so that the sample's last byte starts a two-byte character.
    pad = next(p for p in range(len(row)) if body[SAMPLE_BYTES - 1 - len(b"a,b\n") - p] >= 0xC0)
    data = b"a" * pad + b"a,b\n" + body
    assert data[SAMPLE_BYTES - 1] >= 0xC0
    assert sniffed_of(work, data).encoding == "utf-8"


def test_leading_zero_columns_are_kept_as_text(work):
    sniffed = sniffed_of(work, "zip,count\n01234,5\n10115,7\n")
    assert sniffed.text_columns == (1,)


def test_gzip(work):
    sniffed = sniffed_of(work, gzip.compress(b"a\tb\n1\t2\n3\t4\n"), "data.csv.gz")
    assert (sniffed.format, sniffed.delimiter) == ("csv.gz", "\t")


def test_content_not_the_name_decides(work):
    assert sniffed_of(work, gzip.compress(b"a,b\n1,2\n"), "data.csv").format == "csv.gz"
    assert sniffed_of(work, b"a,b\n1,2\n", "data.csv.gz").format == "csv"


def test_parquet(work):
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), sink)
    assert sniffed_of(work, sink.getvalue(), "anything.bin") == Sniffed(format="parquet", size=len(sink.getvalue()))


def test_sniffed_survives_json(work):
    sniffed = sniffed_of(work, "zip;n\n01234;5\n")
    assert Sniffed.from_json(sniffed.to_json()) == sniffed


# --- Refusals --------------------------------------------------------------------------------------
def refusal(work, data, name="data.csv", **kwargs) -> DataError:
    with pytest.raises(DataError) as caught:
        sniffed_of(work, data, name, **kwargs)
    return caught.value


def test_empty_file(work):
    assert refusal(work, b"").message == "The file is empty."
    assert refusal(work, b"\n\r\n  \n").code == "empty_file"
    assert refusal(work, gzip.compress(b""), "x.csv.gz").code == "empty_file"


def test_binary_file_named_csv(work):
    error = refusal(work, b"id,name\n" + bytes(range(256)) * 8)
    assert error.code == "binary_file"
    assert "binary data (NUL bytes) near byte 8" in error.message


def test_binary_without_nul_bytes(work):
    error = refusal(work, bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16]) * 100)
    assert error.code == "binary_file" and "control characters" in error.message


@pytest.mark.parametrize("payload", [PICKLE_PROTOCOL_2, PICKLE_PROTOCOL_4, PICKLE_PROTOCOL_0])
def test_pickle_is_refused(work, payload):
    error = refusal(work, payload, "model.csv")
    assert error.code == "pickle_refused"
    assert error.message.startswith("Pickle files are refused: they can run code when loaded")


def test_pickle_inside_gzip_is_refused(work):
    assert refusal(work, gzip.compress(PICKLE_PROTOCOL_0), "data.csv.gz").code == "pickle_refused"


def test_csv_that_starts_like_pickle_opcodes_is_not_a_pickle(work):
    assert sniffed_of(work, "city,pop\nParis,2\nLondon,9\n").delimiter == ","
    assert sniffed_of(work, "I,J\n1,2\n").n_columns == 2


DIAMONDS = (
    "carat,cut,color,clarity,depth,table,price,x,y,z\n"
    "0.23,Ideal,E,SI2,61.5,55,326,3.95,3.98,2.43\n"
    "0.21,Premium,E,SI1,59.8,61,326,3.89,3.84,2.31\n"
    "0.23,Good,E,VS1,56.9,65,327,4.05,4.07,2.31\n"
)


@pytest.mark.parametrize(
    "text",
    [
        DIAMONDS,  # GLOBAL reads two lines, "0" is POP, "." is STOP
        DIAMONDS * 2000,  # the same, larger than the sniffed sample
        "c,d\n1,2\n0,3\n.5,4\n",
        "(a,b\n1,2\n)\n",
        "count;name\n1;x\n0;y\n.;z\n",
        "Part,qty\n" + "".join(f"P{i:03d},{i}\n" for i in range(20)),  # PERSID reads each line
        "Part,qty\n" + "".join(f"P{i:05d},{i}\n" for i in range(10_000)),
        "Product\n" + "".join(f"P{i:06d}\n" for i in range(20_000)),  # one column, longer than the sample
        "Value\n" + "".join(f"V{i}\n" for i in range(20_000)),
    ],
    ids=[
        "diamonds",
        "diamonds-large",
        "short",
        "mark",
        "semicolon",
        "persid",
        "persid-large",
        "one-column-persid",
        "one-column-unicode",
    ],
)
def test_text_tables_whose_bytes_decode_as_pickle_opcodes_are_accepted(work, text):
    assert sniffed_of(work, text).format == "csv"


class _Point:
    """A class a pickle refers to by name (GLOBAL / STACK_GLOBAL)."""

    def __init__(self, x):
        self.x = x


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    "obj",
    [
        {"a": 1, "b": [1.5, "x,y"]},
        [[1, 2, 3], [4, 5, 6]] * 50,
        "a,b\n1,2\n",
        _Point(3),
        list(range(20_000)),  # longer than the sniffed sample
    ],
    ids=["dict", "rows", "csv-string", "object", "long-list"],
)
def test_real_pickles_of_every_protocol_are_refused(work, protocol, obj):
    import pickle  # only to write the refused bytes; nothing is ever loaded

    payload = pickle.dumps(obj, protocol=protocol)
    assert refusal(work, payload, "data.csv").code == "pickle_refused"
    assert refusal(work, gzip.compress(payload), "data.csv.gz").code == "pickle_refused"


def zip_bytes(files: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return sink.getvalue()


def test_excel_workbook_is_refused_with_advice(work):
    xlsx = zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    error = refusal(work, xlsx, "sales.xlsx")
    assert error.code == "unsupported_format" and "save the sheet as CSV" in error.message


def test_zip_archive_is_refused(work):
    error = refusal(work, zip_bytes({"data.csv": b"a,b\n1,2\n"}), "data.zip")
    assert error.message.startswith("Zip archives are refused")


@pytest.mark.parametrize(
    ("magic", "words"),
    [
        (b"%PDF-1.7\n", "PDF"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
        (b"SQLite format 3\x00", "SQLite"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "Excel"),
        (b"BZh91AY&SY", "bzip2"),
    ],
)
def test_other_binary_formats_are_named(work, magic, words):
    assert words in refusal(work, magic + b"\x00" * 100).message


def test_utf16_is_refused_with_advice(work):
    error = refusal(work, "a,b\n1,2\n".encode("utf-16"))
    assert "UTF-16" in error.message and error.code == "bad_encoding"


def test_html_is_refused(work):
    assert "HTML" in refusal(work, "<!DOCTYPE html><html><body>Not found</body></html>").message


def parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(100))}), sink)
    return sink.getvalue()


def test_truncated_parquet(work):
    error = refusal(work, parquet_bytes()[:-100], "data.parquet")
    assert error.code == "bad_parquet" and "does not end with the PAR1 marker" in error.message


def test_parquet_footer_larger_than_the_file(work):
    data = bytearray(parquet_bytes())
    data[-8:-4] = (len(data) * 2).to_bytes(4, "little")
    error = refusal(work, bytes(data), "data.parquet")
    assert "footer claims" in error.message


def test_file_named_parquet_without_the_magic(work):
    assert "not a Parquet file" in refusal(work, b"a,b\n1,2\n", "data.parquet").message


def test_too_many_columns_is_refused_from_the_first_row(work):
    error = refusal(work, ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(["1"] * 10_000) + "\n")
    assert error.code == "too_many_columns"
    assert "10,000 columns; the limit is 2,000" in error.message


def test_file_over_the_size_limit(work):
    error = refusal(work, "a,b\n" + "1,2\n" * 100, limits=Limits(max_file_bytes=100))
    assert error.code == "too_large" and "the limit is 100 bytes" in error.message
