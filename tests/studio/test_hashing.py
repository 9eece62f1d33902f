"""One file digest for data, artifacts and model files (studio/hashing.py)."""

import hashlib

from studio import hashing
from training.ml import modelio


def test_the_model_format_uses_the_one_file_digest(tmp_path):
    assert modelio.sha256_file is hashing.sha256_file
    path = tmp_path / "blob.bin"
    path.write_bytes(b"x" * (3 << 20))  # several 1 MiB chunks
    assert hashing.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
