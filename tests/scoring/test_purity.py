"""The scoring engine is pure Python: no Django, and no model loading outside modelio (rule R2)."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "endpoints" / "scoring"


def test_the_scoring_engine_imports_no_django():
    for path in PACKAGE.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+django", path.read_text(), re.MULTILINE), path.name


def test_the_scoring_engine_never_unpickles():
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b(pickle|joblib|cloudpickle|dill)\b", text), path.name
        assert "sio.load" not in text and "skops.io" not in text, path.name
