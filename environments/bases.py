"""The curated bases an environment starts from (no Django: the builder and the pages both read them).

"studio-sklearn" pins the studio's own scientific stack to the versions the studio itself runs, so a
model a job saves with skops loads in the studio; "python" is the bare interpreter.
"""

import functools
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

# The studio's scientific stack, in the order the page lists it.
STUDIO_STACK = ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "skops", "lightgbm")


@dataclass(frozen=True)
class Base:
    key: str
    label: str
    description: str
    python_version: str
    packages: tuple[str, ...]  # "name==version" pins, installed before the requirements

    def pinned(self) -> dict[str, str]:
        """{package name: pinned version}."""
        return dict(pin.split("==", 1) for pin in self.packages)


def python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def base_python() -> Path:
    """The interpreter environments are made from: the one the studio's own virtualenv is built on."""
    return Path(getattr(sys, "_base_executable", None) or sys.executable).resolve()


@functools.cache
def bases() -> dict[str, Base]:
    """Every base by key. Versions are read once per process from what the studio has installed."""
    stack = tuple(f"{name}=={importlib.metadata.version(name)}" for name in STUDIO_STACK)
    return {
        base.key: base
        for base in (
            Base(
                key="studio-sklearn",
                label="Studio scientific stack",
                description=(
                    "The libraries the studio itself runs, at the same versions: models saved with skops "
                    "in a job load in the studio and its endpoints."
                ),
                python_version=python_version(),
                packages=stack,
            ),
            Base(
                key="python",
                label="Python",
                description="Bare Python 3 with nothing extra: only what your requirements name.",
                python_version=python_version(),
                packages=(),
            ),
        )
    }


def base_get(key: str) -> Base | None:
    return bases().get(key) if isinstance(key, str) else None
