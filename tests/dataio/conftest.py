"""Helpers for the data-ingest engine's tests: plain files in a temporary directory, no database."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data.dataio import DataError, Limits, ingest, sniff


class Workdir:
    """An upload directory (files under generated names, like the web layer's) and an output directory."""

    def __init__(self, root: Path) -> None:
        self.uploads = root / "uploads"
        self.out = root / "out"
        self.uploads.mkdir()
        self.out.mkdir()
        self._count = 0

    def upload(self, data: bytes | str, encoding: str = "utf-8") -> Path:
        self._count += 1
        path = self.uploads / f"upload-{self._count}.bin"
        path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
        return path

    @property
    def dest(self) -> Path:
        return self.out / "version-1.parquet"

    def ingest(self, data: bytes | str | Path, name: str = "data.csv", *, limits: Limits | None = None, **kwargs):
        """Sniff and ingest ``data`` (bytes, text or a path already written); returns the result."""
        path = data if isinstance(data, Path) else self.upload(data)
        sniffed = sniff(path, name, limits=limits)
        return ingest(path, sniffed, self.dest, limits=limits, **kwargs)

    def table(self):
        return pq.read_table(self.dest)

    def refused(self, data: bytes | str | Path, name: str = "data.csv", **kwargs) -> DataError:
        """Ingest must fail with a DataError and leave nothing in the output directory."""
        with pytest.raises(DataError) as caught:
            self.ingest(data, name, **kwargs)
        assert self.leftovers() == []
        return caught.value

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.out.iterdir())


@pytest.fixture
def work(tmp_path) -> Workdir:
    return Workdir(tmp_path)
