"""The environment builder (pure: no Django): requirement checks, the spec hash, and the host's cache.

The cache is a folder per specification hash on the node's own disk:

    <cache_dir>/.lock              flock: one build per host at a time
    <cache_dir>/<hash>/            a relocatable virtualenv, ready once it holds ENTRY_FILE
    <cache_dir>/<hash>/.studio-entry.json   what was built: the freeze, size, seconds
    <cache_dir>/<hash>/.studio-used         its mtime is the last use (for LRU eviction)
    <cache_dir>/.tmp-*             a build in progress, renamed into place when complete

Reuse reads one small file and touches another: no subprocess, well under a millisecond. A node
process keeps a shared flock on the stamp of the environment it prepared last, so eviction (which
needs an exclusive one) never removes an environment a job may still be running in.
"""

import collections
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .bases import Base, base_python

ENTRY_FILE = ".studio-entry.json"
STAMP_FILE = ".studio-used"
LOCK_FILE = ".lock"
MAX_REQUIREMENT_LINES = 200
MAX_REQUIREMENT_LENGTH = 300
TAIL_LINES = 10
_HASH = re.compile(r"^[0-9a-f]{64}$")


class RequirementError(ValueError):
    """A requirements text that is not a list of plain package requirements; the message names the line."""


class BuildFailed(Exception):
    """The installer failed; the message ends with its last lines."""


@dataclass(frozen=True)
class Prepared:
    python: Path  # the interpreter to run the job with
    prefix: Path  # the environment's folder
    freeze: str  # `uv pip freeze` of the environment
    built: bool  # False: reused from the cache
    seconds: float  # how long the build took (0 when reused)
    size_bytes: int
    evicted: list[str] = field(default_factory=list)  # hashes removed to stay under the size limit


# --- Requirements and the specification hash -----------------------------------------------------------
def _canonical(requirement: Requirement) -> str:
    text = canonicalize_name(requirement.name)
    if requirement.extras:
        text += "[" + ",".join(sorted(canonicalize_name(extra) for extra in requirement.extras)) + "]"
    text += str(requirement.specifier)  # a SpecifierSet prints its parts sorted
    if requirement.marker:
        text += f"; {requirement.marker}"
    return text


def requirements_parse(text: str, *, pinned: dict[str, str] | None = None) -> list[str]:
    """The requirement lines of `text` in canonical form, sorted. Blank lines and comments are
    skipped; every other line must be a PEP 508 requirement naming a package on the index: no pip
    options (-e, -r, --index-url), no URLs or paths. A requirement that excludes a version the base
    pins (`pinned`: {name: version}) is refused here rather than failing the build later."""
    if not isinstance(text, str):
        raise RequirementError("Give the requirements as text, one per line.")
    pinned = {canonicalize_name(name): version for name, version in (pinned or {}).items()}
    lines = text.splitlines()
    if len(lines) > MAX_REQUIREMENT_LINES:
        raise RequirementError(f"Give at most {MAX_REQUIREMENT_LINES} requirement lines.")
    found: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"Line {number} ({line[:60]!r})"
        if len(line) > MAX_REQUIREMENT_LENGTH:
            raise RequirementError(f"Line {number}: use at most {MAX_REQUIREMENT_LENGTH} characters.")
        if line.startswith("-"):
            raise RequirementError(
                f"{where}: pip options (-e, -r, --index-url, …) are not allowed; give one package per line."
            )
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            raise RequirementError(
                f"{where} is not a package requirement; write a name and an optional version, e.g. tabulate==0.9.0."
            ) from None
        if requirement.url:
            raise RequirementError(f"{where}: URLs and paths are not allowed; name a package from the index.")
        if any(not specifier.version for specifier in requirement.specifier):
            raise RequirementError(f"{where}: a version comparison needs a version, e.g. tabulate==0.9.0.")
        name = canonicalize_name(requirement.name)
        if name in found:
            raise RequirementError(f"{where}: {requirement.name} is already required on another line.")
        version = pinned.get(name)
        if version is not None and not requirement.specifier.contains(version, prereleases=True):
            raise RequirementError(
                f"{where}: the base pins {requirement.name} to {version}; leave it out or allow that version."
            )
        found[name] = _canonical(requirement)
    return sorted(found.values())


def spec_hash(base: Base, requirements: list[str]) -> str:
    """The cache key: SHA-256 of the Python version, the base's pins and the canonical requirements."""
    spec = {
        "format": 1,
        "python": base.python_version,
        "base": base.key,
        "packages": sorted(base.packages),
        "requirements": sorted(requirements),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


# --- The cache ----------------------------------------------------------------------------------------
_pins: dict[str, tuple[str, int]] = {}  # cache_dir -> (hash, fd holding a shared flock on its stamp)
_pins_lock = threading.Lock()


def _pin(cache_dir: Path, key: str) -> bool:
    """Hold a shared flock on the entry's stamp (this process's last environment; eviction skips it).
    False if the entry is gone (evicted meanwhile)."""
    with _pins_lock:
        held = _pins.get(str(cache_dir))
        if held and held[0] == key:
            return True
        stamp = cache_dir / key / STAMP_FILE
        try:
            fd = os.open(stamp, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        fcntl.flock(fd, fcntl.LOCK_SH)  # eviction holds LOCK_EX only while it renames the entry away
        try:
            still_there = os.fstat(fd).st_ino == os.stat(stamp).st_ino
        except FileNotFoundError:
            still_there = False
        if not still_there:
            os.close(fd)
            return False
        if held:
            os.close(held[1])
        _pins[str(cache_dir)] = (key, fd)
        return True


def _check_cache_dir(cache_dir: Path) -> None:
    """The cache holds code every job runs: it must be this user's, writable by no one else."""
    info = os.stat(cache_dir)
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise BuildFailed(
            f"The environment cache {cache_dir} must belong to this user and be writable by no one else "
            "(see STUDIO_ENVIRONMENT_CACHE_DIR)."
        )


def reuse(*, spec_hash: str, cache_dir: Path) -> Prepared | None:
    """The ready environment for this hash, its last use stamped now; None if there is none."""
    _check_hash(spec_hash)
    try:
        _check_cache_dir(Path(cache_dir))
    except FileNotFoundError:
        return None
    prefix = Path(cache_dir) / spec_hash
    try:
        meta = json.loads((prefix / ENTRY_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    python = prefix / "bin" / "python"
    if not python.exists():  # the interpreter it was made from is gone: build it again
        return None
    if not _pin(Path(cache_dir), spec_hash):
        return None
    os.utime(prefix / STAMP_FILE)
    return Prepared(
        python=python, prefix=prefix, freeze=meta["freeze"], built=False, seconds=0.0, size_bytes=meta["size_bytes"]
    )


def prepare(
    *,
    spec_hash: str,
    base_packages: list[str],
    requirements: list[str],
    cache_dir: Path,
    size_limit_bytes: int,
    on_line: Callable[[str], None],
    python: Path | None = None,
) -> Prepared:
    """The environment for `spec_hash`: reused from the cache, or built with uv (one build per host
    at a time), then least-recently-used environments are evicted while the cache is over the limit."""
    _check_hash(spec_hash)
    cache_dir = Path(cache_dir)
    ready = reuse(spec_hash=spec_hash, cache_dir=cache_dir)
    if ready is not None:
        return ready
    cache_dir.mkdir(mode=0o755, parents=True, exist_ok=True)  # the sandbox user reads, never writes
    _check_cache_dir(cache_dir)
    with open(cache_dir / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_line("Waiting for another environment build on this host to finish…")
            fcntl.flock(lock, fcntl.LOCK_EX)
        ready = reuse(spec_hash=spec_hash, cache_dir=cache_dir)  # the build we waited for may be this one
        if ready is not None:
            on_line("The environment was built meanwhile; reusing it.")
            return ready
        _sweep(cache_dir, spec_hash)
        built = _build(
            spec_hash=spec_hash,
            packages=[*base_packages, *requirements],
            cache_dir=cache_dir,
            on_line=on_line,
            python=Path(python) if python else base_python(),
        )
        _pin(cache_dir, spec_hash)
        evicted = _evict(cache_dir, keep=spec_hash, size_limit_bytes=size_limit_bytes)
        for key in evicted:
            on_line(f"Evicted the least recently used environment {key[:12]} to stay under the cache size limit.")
    return Prepared(**{**built.__dict__, "evicted": evicted})


def _check_hash(spec_hash: str) -> None:
    if not isinstance(spec_hash, str) or not _HASH.match(spec_hash):
        raise ValueError("A specification hash is 64 lowercase hexadecimal digits.")  # it names a folder


def _sweep(cache_dir: Path, spec_hash: str) -> None:
    """Under the build lock: remove what interrupted builds and evictions left behind."""
    for child in cache_dir.iterdir():
        if child.name.startswith((".tmp-", ".trash-")):
            shutil.rmtree(child, ignore_errors=True)
    leftover = cache_dir / spec_hash
    if leftover.exists():  # a folder without its entry file (or with a lost interpreter) is not ready
        _remove(leftover, cache_dir)


def _remove(path: Path, cache_dir: Path) -> None:
    trash = cache_dir / f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}"
    os.rename(path, trash)  # atomic: the entry stops being ready before a byte of it goes
    shutil.rmtree(trash, ignore_errors=True)


def uv_binary() -> Path:
    """uv from the studio's own virtualenv (beside its python), else from PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return beside
    found = shutil.which("uv")
    if not found:
        raise BuildFailed("uv is not installed on this node (it is in requirements.txt).")
    return Path(found)


def _uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    # Never download an interpreter; no colours or progress bars in the job's log.
    env.update(UV_PYTHON_DOWNLOADS="never", NO_COLOR="1", UV_NO_PROGRESS="1")
    return env


def _run(command: list[str], *, on_line: Callable[[str], None], cwd: Path, what: str) -> None:
    """Run `command`, streaming every output line; BuildFailed with its last lines if it fails."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    process = subprocess.Popen(  # noqa: S603 - a fixed command; requirements were checked line by line
        command,
        cwd=cwd,
        env=_uv_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    with process:
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            on_line(line)
    if process.returncode != 0:
        last = "\n".join(tail) or "(no output)"
        raise BuildFailed(f"{what} failed (uv exited with {process.returncode}). Its last lines:\n{last}")


def _size(path: Path) -> int:
    seen, total = set(), 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return total


def _build(
    *, spec_hash: str, packages: list[str], cache_dir: Path, on_line: Callable[[str], None], python: Path
) -> Prepared:
    uv = str(uv_binary())
    started = time.monotonic()
    tmp = cache_dir / f".tmp-{spec_hash[:16]}-{os.getpid()}-{threading.get_ident()}"
    try:
        on_line(f"Building environment {spec_hash[:12]} with Python {python}")
        # Relocatable, so the finished folder can be renamed into place; never config from the folder.
        _run(
            [uv, "venv", "--no-config", "--relocatable", "--python", str(python), str(tmp)],
            on_line=on_line,
            cwd=cache_dir,
            what="Creating the virtual environment",
        )
        tmp_python = str(tmp / "bin" / "python")
        if packages:
            # Wheels only: building a source distribution would run the package's code on the node,
            # outside the sandbox. Files are copied (not hard-linked from uv's cache), so an environment
            # is self-contained and its size is what evicting it frees.
            _run(
                [uv, "pip", "install", "--no-config", "--no-build", "--link-mode", "copy"]
                + ["--python", tmp_python, "--", *packages],
                on_line=on_line,
                cwd=cache_dir,
                what="Installing the requirements",
            )
        freeze = subprocess.run(  # noqa: S603 - a fixed command
            [uv, "pip", "freeze", "--no-config", "--python", tmp_python],
            cwd=cache_dir,
            env=_uv_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if freeze.returncode != 0:
            raise BuildFailed(f"Listing the installed packages failed:\n{freeze.stderr[-2000:]}")
        seconds = time.monotonic() - started
        size = _size(tmp)
        meta = {"freeze": freeze.stdout, "size_bytes": size, "seconds": seconds, "python": str(python)}
        (tmp / ENTRY_FILE).write_text(json.dumps(meta))
        (tmp / STAMP_FILE).touch()
        prefix = cache_dir / spec_hash
        os.rename(tmp, prefix)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    on_line(f"Environment {spec_hash[:12]} ready in {seconds:.1f} s ({size / 2**20:.1f} MiB).")
    return Prepared(
        python=prefix / "bin" / "python",
        prefix=prefix,
        freeze=freeze.stdout,
        built=True,
        seconds=seconds,
        size_bytes=size,
    )


def _evict(cache_dir: Path, *, keep: str, size_limit_bytes: int) -> list[str]:
    """Under the build lock: remove ready entries, least recently used first, while the cache holds
    more than the limit; never `keep` and never one a process still holds (a job may be using it)."""
    entries, total = [], 0
    for child in cache_dir.iterdir():
        if child.name.startswith(".") or not _HASH.match(child.name):
            continue
        try:
            size = json.loads((child / ENTRY_FILE).read_text())["size_bytes"]
            used = (child / STAMP_FILE).stat().st_mtime
        except (OSError, ValueError, KeyError):
            continue
        entries.append((used, child.name, size))
        total += size
    evicted = []
    for _used, key, size in sorted(entries):
        if total <= size_limit_bytes:
            break
        if key == keep:
            continue
        try:
            fd = os.open(cache_dir / key / STAMP_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # in use
        try:
            os.rename(cache_dir / key, cache_dir / f".trash-{key}-{os.getpid()}")
        finally:
            os.close(fd)
        shutil.rmtree(cache_dir / f".trash-{key}-{os.getpid()}", ignore_errors=True)
        evicted.append(key)
        total -= size
    return evicted
