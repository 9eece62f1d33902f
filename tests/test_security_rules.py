"""The reliability rules that a grep can check (RELIABILITY.md R2, R8): model files are data, and
output stays escaped."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = ["studio", "workspaces", "compute", "training", "endpoints", "modelformat"]
MODEL_LOADER = REPO / "modelformat" / "modelio.py"

UNSAFE_LOADS = [
    r"\bpickle\.loads?\(",
    r"\bcPickle\b",
    r"\bjoblib\.load\(",
    r"\bcloudpickle\b",
    r"\bdill\.loads?\(",
    r"read_pickle\(",
    r"allow_pickle\s*=\s*True",
    r"get_untrusted_types\(",
    r"trusted\s*=\s*True",
    r"\bmarshal\.loads?\(",
    r"\beval\(",
    r"\bexec\(",
    r"shell\s*=\s*True",
]


def python_files():
    for app in APPS:
        yield from (p for p in (REPO / app).rglob("*.py") if "migrations" not in p.parts)


def test_no_unsafe_deserialisation_or_code_execution_in_the_studio():
    offences = []
    for path in python_files():
        text = path.read_text()
        for pattern in UNSAFE_LOADS:
            for match in re.finditer(pattern, text):
                line = text[: match.start()].count("\n") + 1
                offences.append(f"{path.relative_to(REPO)}:{line}: {match.group(0)}")
    assert not offences, "\n".join(offences)


def test_model_files_are_loaded_in_one_place():
    """skops loading happens only in modelformat/modelio.py (the reviewed allow-list)."""
    offences = []
    for path in python_files():
        if path == MODEL_LOADER:
            continue
        text = path.read_text()
        for pattern in (r"\bsio\.loads?\(", r"skops\.io\.loads?\(", r"from skops\.io import load"):
            if re.search(pattern, text):
                offences.append(str(path.relative_to(REPO)))
    assert not offences, offences


def test_templates_never_mark_user_data_safe():
    offences = []
    for path in (REPO / "templates").rglob("*.html"):
        text = path.read_text()
        if "|safe" in text or "{% autoescape off" in text:
            offences.append(str(path.relative_to(REPO)))
    for path in python_files():
        if "mark_safe(" in path.read_text():
            offences.append(str(path.relative_to(REPO)))
    assert not offences, offences


def test_no_inline_scripts_in_templates():
    offences = []
    for path in (REPO / "templates").rglob("*.html"):
        for match in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>", path.read_text()):
            offences.append(f"{path.relative_to(REPO)}: {match.group(0)}")
        if re.search(r"\son(click|load|submit|change|error)=", path.read_text()):
            offences.append(f"{path.relative_to(REPO)}: inline event handler")
    assert not offences, offences
