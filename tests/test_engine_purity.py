"""The pure engines import no Django and no app, and never load a model outside modelio (rule R2).

Each engine package is imported, every module of it, in a fresh interpreter in which Django, DRF and
Celery cannot be imported at all; the test then lists the modules that interpreter loaded. An
engine may use its own parent package's ``__init__`` (empty), nothing else of an app.
"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The Django-free engines (dotted names of packages, whose folders follow, or of single modules).
ENGINE_PACKAGES = (
    "training.ml",
    "data.dataio",
    "modelformat",
    "endpoints.scoring",
    "environments.builder",
    "environments.bases",
    "commands.archive",
    "compute.sandbox",
)
# What an engine must never bring in: the web framework, the task queue, and the apps.
FORBIDDEN = (
    "django",
    "rest_framework",
    "celery",
    "workspaces",
    "compute",
    "training",
    "endpoints",
    "data",
    "studio",
    "commands",
    "environments",
    "portal",
)
BLOCKED = ("django", "rest_framework", "celery")
MODEL_LOADER = "modelformat/modelio.py"

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "endpoints" / "scoring"

IMPORT_EVERY_MODULE = """
import importlib, json, sys

BLOCKED = {blocked!r}
assert not any(name.split(".")[0] in BLOCKED for name in sys.modules), "Django is loaded before the test starts"


class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: a pure engine must not import it")
        return None


sys.meta_path.insert(0, Blocked())
for module in {modules!r}:
    importlib.import_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def package_dir(package: str) -> Path:
    return REPO.joinpath(*package.split("."))


def package_files(package: str) -> list[Path]:
    """The engine's source files: a package's, or the one file of a single-module engine."""
    folder = package_dir(package)
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]


def package_modules(package: str) -> list[str]:
    modules = []
    for path in package_files(package):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(".".join(parts))
    return modules


def allowed(package: str, module: str) -> bool:
    """The engine's own modules, the ``__init__`` of each package above it, and other engines."""
    parents = package.split(".")
    own = module == package or module.startswith(package + ".")
    engine = any(module == other or module.startswith(other + ".") for other in ENGINE_PACKAGES)
    return own or engine or module in {".".join(parents[:i]) for i in range(1, len(parents))}


def imported_by(package: str) -> list[str]:
    script = IMPORT_EVERY_MODULE.format(blocked=BLOCKED, modules=package_modules(package))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"importing {package} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", ENGINE_PACKAGES)
def test_an_engine_package_imports_no_django_and_no_app(package):
    assert package_files(package)[0].exists(), f"{package} is listed in ENGINE_PACKAGES but does not exist"
    offences = [
        module for module in imported_by(package) if module.split(".")[0] in FORBIDDEN and not allowed(package, module)
    ]
    assert offences == [], f"{package} imports {offences}"


def imports_in_source(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function, relative imports resolved."""
    here = list(path.relative_to(REPO).with_suffix("").parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level] if node.level else []
            found.add(".".join(base + ([node.module] if node.module else [])))
    return found


@pytest.mark.parametrize("package", ENGINE_PACKAGES)
def test_no_engine_module_imports_an_app_even_inside_a_function(package):
    offences = [
        f"{path.relative_to(REPO)}: {module}"
        for path in package_files(package)
        for module in sorted(imports_in_source(path))
        if module.split(".")[0] in FORBIDDEN and not allowed(package, module)
    ]
    assert offences == []


def test_the_check_blocks_django_and_tells_an_engine_from_its_app():
    script = IMPORT_EVERY_MODULE.format(blocked=BLOCKED, modules=["django.db"])
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "django is blocked" in result.stderr
    assert allowed("training.ml", "training") and allowed("training.ml", "training.ml.columns")
    assert not allowed("training.ml", "training.models") and not allowed("training.ml", "training.mlflow")
    assert not allowed("endpoints.scoring", "endpoints.models")
    assert allowed("environments.builder", "environments.bases") and allowed("environments.builder", "environments")
    assert not allowed("environments.builder", "environments.services")


@pytest.mark.parametrize("package", ENGINE_PACKAGES)
def test_an_engine_package_never_unpickles_nor_loads_skops_outside_modelio(package):
    loaders = re.compile(r"\b(pickle|joblib|cloudpickle|dill)\.(load|loads|Unpickler)\b|import (pickle|joblib|dill)\b")
    for path in package_files(package):
        text = path.read_text()
        assert not loaders.search(text), path
        if path.relative_to(REPO).as_posix() != MODEL_LOADER:
            assert "sio.load" not in text and "skops.io" not in text, path


def test_the_scoring_engine_imports_no_django():
    for path in PACKAGE.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+django", path.read_text(), re.MULTILINE), path.name


def test_the_scoring_engine_never_unpickles():
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b(pickle|joblib|cloudpickle|dill)\b", text), path.name
        assert "sio.load" not in text and "skops.io" not in text, path.name
