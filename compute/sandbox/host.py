"""What this host can enforce: bubblewrap, a writable cgroup v2, an unprivileged user.

Each probe runs once per process (cached); STUDIO_SANDBOX_BWRAP=0 turns bubblewrap off (to see or
test the fallback), STUDIO_SANDBOX_BWRAP=/path/to/bwrap picks the binary.
"""

import ctypes
import functools
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .spec import Protections

CGROUP_PARENT = "studio-sandbox"
PR_SET_DUMPABLE = 4
# A run's private /tmp is "<prefix><node pid>-<run id>-..." in the node's temporary folder.
SCRATCH_PREFIX = "studio-sandbox-"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{self.name} (uid {self.uid})"


def sandbox_user() -> User | None:
    """The unprivileged user runs drop to: nobody when the node runs as root, else none."""
    if os.geteuid() != 0:
        return None
    return _nobody()


@functools.cache
def _nobody() -> User:
    try:
        entry = pwd.getpwnam("nobody")
        return User("nobody", entry.pw_uid, entry.pw_gid)
    except KeyError:
        return User("nobody", 65534, 65534)


def bwrap_path() -> str | None:
    """The bubblewrap binary to use, or None (missing, turned off, or unusable on this host)."""
    setting = os.environ.get("STUDIO_SANDBOX_BWRAP", "").strip()
    if setting in {"0", "false", "no", "off"}:
        return None
    path = setting if setting not in {"", "1", "true", "yes", "on"} else shutil.which("bwrap")
    if not path:
        return None
    return path if _bwrap_works(path, os.geteuid()) else None


def drop_privileges_argv() -> list[str]:
    """Run inside bubblewrap as root: it becomes the sandbox user with no capability left.

    bubblewrap runs as root so that it can bind folders the sandbox user could not reach (a data
    directory of mode 0700); the command itself then runs as nobody, in the host's user namespace.
    """
    user = sandbox_user()
    if user is None:
        return []
    return [
        _setpriv(),
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


@functools.cache
def _setpriv() -> str:
    return shutil.which("setpriv") or "/usr/bin/setpriv"


@functools.cache
def _bwrap_works(path: str, euid: int) -> bool:
    # Run it once the way every run does: a kernel without the namespaces, or a host without
    # setpriv, fails here, not in a job.
    argv = [path, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--unshare-net"]
    try:
        done = subprocess.run(
            [*argv, "--", *drop_privileges_argv(), "/bin/true"], capture_output=True, timeout=20, check=False, env={}
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@functools.cache
def cgroup_root() -> Path | None:
    """A writable cgroup v2 folder under which each run gets its own cgroup, or None."""
    if os.geteuid() != 0:
        return None  # a delegated cgroup for an unprivileged node is not set up here
    mount = None
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2":
            mount = Path(parts[1].replace("\\040", " "))
            break
    if mount is None:
        return None
    own = "/"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            own = line[3:]
    parent = mount / own.lstrip("/") / CGROUP_PARENT
    try:
        parent.mkdir(exist_ok=True)
        probe = parent / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        usable = (probe / "cgroup.kill").exists() and (probe / "cgroup.procs").exists()
        probe.rmdir()
    except OSError:
        return None
    if not usable:
        return None
    _enable_controllers(parent)
    return parent


def _enable_controllers(parent: Path) -> None:
    """Lets the runs' cgroups limit memory and processes, where the host delegates them."""
    try:
        available = set((parent.parent / "cgroup.controllers").read_text().split())
        wanted = [name for name in ("memory", "pids") if name in available]
        for folder in (parent.parent, parent):
            if wanted:
                (folder / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in wanted))
    except OSError:
        pass  # our own cgroup holds processes (v2 forbids controllers then): the rlimits and monitor remain


def cgroup_memory_works(parent: Path) -> bool:
    return "memory" in (parent / "cgroup.subtree_control").read_text().split()


def sweep_stale_cgroups(parent: Path) -> None:
    """Ends and removes the run cgroups of nodes that died (named "<node pid>-<run id>")."""
    for child in parent.iterdir():
        owner = child.name.split("-", 1)[0]
        if not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        try:
            (child / "cgroup.kill").write_text("1")
            for _ in range(50):
                if "populated 0" in (child / "cgroup.events").read_text():
                    break
                time.sleep(0.02)
            child.rmdir()
        except OSError:
            pass  # gone already, or still emptying: the next sweep tries again


def sweep_stale_scratch(folder: Path) -> None:
    """Removes the private /tmp folders of runs whose node died before cleaning up."""
    for child in folder.glob(f"{SCRATCH_PREFIX}*"):
        owner = child.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(child, ignore_errors=True)


@functools.cache
def shield_node_process() -> bool:
    """Makes the node's /proc files (environ above all) unreadable to processes of its own user.

    Only needed when a run has neither bubblewrap's PID namespace nor another user: then the run
    is the node's user and could read /proc/<node>/environ. The node also stops being dumpable
    (no core file, no ptrace by its user), which is the point.
    """
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def protections_available(network: bool = False) -> Protections:
    """What a run on this host is protected by (each probe is cached, so this is cheap)."""
    bwrap = bwrap_path() is not None
    user = sandbox_user()
    cgroups = cgroup_root()
    return Protections(
        bubblewrap=bwrap,
        pid_namespace=bwrap,
        user=str(user) if user else None,
        memory="cgroup v2" if cgroups and cgroup_memory_works(cgroups) else "rlimit",
        network=bwrap and not network,
        cgroup=cgroups is not None,
    )
