"""The corpus files are what the generator writes, small, and listed in the folder's README."""

from pathlib import Path

from tests.data.corpus.generate import FILES, write

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"


def test_the_generator_writes_the_committed_files_and_each_is_small(tmp_path):
    for name in FILES:
        committed = (CORPUS / name).read_bytes()
        assert write(name, tmp_path).read_bytes() == committed, f"{name}: run generate.py again"
        assert len(committed) <= 200_000, name


def test_the_generator_makes_bigger_versions(tmp_path):
    bigger = write("churn.csv", tmp_path, scale=3).read_text(encoding="utf-8").splitlines()
    assert len(bigger) == 3 * 2_500 + 1 and bigger[0].startswith("customer id,signup date")


def test_the_readme_lists_every_file():
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in FILES)
