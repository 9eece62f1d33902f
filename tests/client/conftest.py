import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def studio_data_dir():
    """The data directory in a folder the sandbox user of a command job can reach by path: pytest's
    tmp_path sits in a 0700 folder of root when the tests run as root (as in tests/sandbox)."""
    root = Path("/var/cache/studio-sandbox-tests") if os.geteuid() == 0 else REPO / "var"
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="cli data ", dir=root))
    folder.chmod(0o755)
    (folder / "artifacts").mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
