"""One file digest for data, artifacts and model files (studio.hashing, defined in modelformat)."""

import hashlib

from modelformat import modelio
from studio import hashing


def test_the_model_format_uses_the_one_file_digest(tmp_path):
    assert modelio.sha256_file is hashing.sha256_file
    path = tmp_path / "blob.bin"
    path.write_bytes(b"x" * (3 << 20))  # several 1 MiB chunks
    assert hashing.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
