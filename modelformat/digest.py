"""The studio's one file digest, in a module of its own: the apps import it (through studio.hashing)
on every process's start path, and the model format module beside it imports skops and scikit-learn."""

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
