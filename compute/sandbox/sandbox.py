"""Runs one command in a sandbox and watches it until its whole process tree is gone.

The node starts `launcher.py`, which joins the run's cgroup, sets the rlimits, drops to the sandbox
user and becomes bubblewrap (or the command, where bubblewrap is missing). Four threads follow the
run: two read stdout and stderr into lines, a monitor sums the tree's memory, processes and output
bytes (the rlimits are per process, the limits are per tree), and a waiter ends what is left of the
tree when the main process exits and builds the outcome.
"""

import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import host, tree
from .lines import LineSplitter
from .spec import MIB, Limits, Mount, Outcome, Protections, SandboxSpec

LAUNCHER = str(Path(__file__).with_name("launcher.py"))
MARKER = "STUDIO_SANDBOX_ID"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Libraries that start one thread per core of the host unless told the node's size.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "LOKY_MAX_CPU_COUNT",
    "RAYON_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
# Host folders no run sees: local services' sockets (a socket on a read-only mount still
# connects), other users' files, shared scratch space. Interpreters often live under /root
# (pyenv, uv), so it stays visible: file modes protect it, `hide` can add it.
ALWAYS_HIDDEN = ("/run", "/var/run", "/var/tmp", "/home")  # noqa: S108 (hidden, not used)
# bubblewrap's own processes in the tree: the outer monitor and the namespace's init.
BWRAP_PROCESSES = 2
MONITOR_SECONDS = 0.1
OUTPUT_CHECK_SECONDS = 0.5
# After the tree is gone, how long on_line gets for the lines still in the pipes; the rest is
# counted, not logged (a slow log writer must not hold the job open).
DRAIN_SECONDS = 10
STDERR_TAIL = 20
REASON_LINES = 5
# Messages on stderr that name the limit a failed run hit (per-process rlimits fail this way).
LIMIT_MESSAGES = (
    ("memory", ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")),
    ("open files", ("Too many open files",)),
    ("processes", ("Resource temporarily unavailable", "fork: retry", "Cannot fork", "can't fork")),
    ("output size", ("File too large", "File size limit exceeded")),
)


# Said by a process that could not start another: the tree is at its process limit (the
# per-user rlimit), so the run ends there rather than go on with a fizzled fork bomb.
FORK_FAILURES = ("Cannot fork", "can't fork", "fork: retry", "fork: Resource temporarily", "can't start new thread")


class SandboxError(Exception):
    """A spec the sandbox cannot run (a missing folder, a bad variable): a clear message for the user."""


def size_text(count: int) -> str:
    if count >= 2**30 and count % 2**30 == 0:
        return f"{count // 2**30} GiB"
    if count >= MIB:
        return f"{count / MIB:.0f} MiB"
    return f"{count} bytes"


def _encodable(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return True


def pack_settings(settings: dict) -> bytes:
    """The launcher's settings as it reads them (launcher.unpack): NUL-separated fields."""
    fields = [
        settings["cwd"],
        settings["cgroup"] or "",
        "" if settings["uid"] is None else str(settings["uid"]),
        "" if settings["gid"] is None else str(settings["gid"]),
        "1" if settings["bubblewrap"] else "",
        ",".join(f"{name}={value}" for name, value in settings["rlimits"].items()),
        str(len(settings["argv"])),
        *settings["argv"],
        *(f"{name}={value}" for name, value in settings["env"].items()),
    ]
    return b"\0".join(os.fsencode(field) for field in fields)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def limit_reason(limit: str, limits: Limits) -> str:
    if limit == "memory":
        return f"exceeded its memory limit of {size_text(limits.memory_bytes)}"
    if limit == "processes":
        return f"reached its limit of {limits.processes} processes and threads"
    if limit == "open files":
        return f"reached its limit of {limits.open_files} open files"
    if limit == "output size":
        return f"exceeded its output limit of {size_text(limits.output_bytes)}"
    return f"was stopped: {limit}"


class Sandbox:
    """One run of one command. start(), then wait() (and stop() from a watchdog, any thread).

    Call start() from a thread that lives as long as the run: the run is killed if that thread
    ends (bubblewrap's --die-with-parent, so that a node that dies leaves nothing running).
    """

    def __init__(self, spec: SandboxSpec, on_line: Callable[[str, str], None]):
        self.spec = spec
        self.on_line = on_line
        self._check_spec()
        available = host.protections_available(network=spec.network)
        if spec.bubblewrap and not available.bubblewrap:
            raise SandboxError("bubblewrap was asked for but is not usable on this host")
        use_bwrap = available.bubblewrap if spec.bubblewrap is None else spec.bubblewrap
        self._bwrap = host.bwrap_path() if use_bwrap else None
        self.protections = Protections(
            bubblewrap=use_bwrap,
            pid_namespace=use_bwrap,
            user=available.user,
            memory=available.memory,
            network=use_bwrap and not spec.network,
            cgroup=available.cgroup,
        )
        if self._bwrap:
            for mount in [spec.workdir, *spec.mounts]:
                top = Path(mount.target).parts[1]
                if mount.target == str(Path(mount.source).resolve()) and top not in {"proc", "dev", "tmp"}:
                    continue  # a host folder shown at its own place (under a hidden one) covers nothing else
                if top in {"proc", "dev", "tmp"} or os.path.lexists(f"/{top}"):
                    raise SandboxError(f"{mount.target!r} would cover the system's /{top}: use a new top-level folder")
        self._user = host.sandbox_user()
        self._cgroup_root = host.cgroup_root()
        self.id = os.urandom(8).hex()
        self._proc: subprocess.Popen | None = None
        self._cgroup: Path | None = None
        self._scratch: Path | None = None
        self._started = 0.0
        self._exited = 0.0
        self._limit: str | None = None
        self._limit_why = ""
        self._lock = threading.Lock()
        self._line_lock = threading.Lock()
        self._log_bytes = 0
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._threads: list[threading.Thread] = []
        self._done = threading.Event()
        self._drain_until: float | None = None  # set when the tree is gone
        self._undelivered = 0
        self._fork_failed = False
        self._outcome: Outcome | None = None

    # --- The spec ---------------------------------------------------------------------------
    def _check_spec(self) -> None:
        spec = self.spec
        if not spec.argv or not all(isinstance(arg, str) and "\0" not in arg for arg in spec.argv):
            raise SandboxError("the command is empty or holds a NUL character")
        for mount in [spec.workdir, *spec.mounts]:
            if not Path(mount.source).is_dir():
                raise SandboxError(f"the folder for {mount.target} does not exist")
            if not mount.target.startswith("/") or mount.target == "/" or ".." in mount.target.split("/"):
                raise SandboxError(f"{mount.target!r} is not an absolute folder path inside the sandbox")
        for name, value in spec.env.items():
            if not name or "=" in name or "\0" in name or "\0" in value or not _encodable(name + value):
                raise SandboxError(f"the environment variable {name!r} has a bad name or value")
        if not all(_encodable(arg) for arg in spec.argv):
            raise SandboxError("the command holds text that is not valid Unicode")

    def path_of(self, mount: Mount) -> str:
        """Where the run sees a mount: its target with bubblewrap, its host folder without."""
        return mount.target if self._bwrap else str(mount.source)

    def _env(self, tmp: Path) -> dict[str, str]:
        env = dict(self.spec.env)
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", self.path_of(self.spec.workdir))
        env.setdefault("LANG", "C.UTF-8")
        env["TMPDIR"] = "/tmp" if self._bwrap else str(tmp)  # noqa: S108 (the run's own /tmp)
        for name in THREAD_VARIABLES:
            env[name] = str(self.spec.limits.threads)
        env[MARKER] = self.id  # how stop() finds processes that left the tree
        return env

    def _bwrap_argv(self, tmp: Path, shm: Path) -> list[str]:
        spec = self.spec
        argv = [self._bwrap]
        # The host's top-level folders read-only on an empty root, so that mount targets such as
        # /job can be created (bubblewrap cannot make them on a read-only /).
        for entry in sorted(os.scandir("/"), key=lambda e: e.name):
            if entry.name in {"proc", "dev", "tmp"}:
                continue
            if entry.is_symlink():
                argv += ["--symlink", os.readlink(entry.path), entry.path]
            elif entry.is_dir():
                argv += ["--ro-bind", entry.path, entry.path]
        # Resolved, so that a folder named through a symbolic link is hidden all the same.
        hidden = {Path(p).resolve() for p in ALWAYS_HIDDEN} | {Path(p).resolve() for p in spec.hide}
        for folder in sorted(hidden, key=lambda p: len(p.parts)):
            if folder.is_dir():
                argv += ["--tmpfs", str(folder)]
        if spec.network:
            resolv = Path("/etc/resolv.conf").resolve()
            if any(resolv.is_relative_to(folder) for folder in hidden):
                argv += ["--ro-bind", str(resolv), str(resolv)]
        argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(tmp), "/tmp", "--bind", str(shm), "/dev/shm"]  # noqa: S108
        mounts = sorted([*spec.mounts, spec.workdir], key=lambda m: len(Path(m.target).parts))
        made: set[Path] = set()
        for mount in mounts:
            # bubblewrap would make missing parents 0700 (root's): the sandbox user must pass them.
            for parent in reversed(Path(mount.target).parents[:-1]):
                hidden_below = any(parent.is_relative_to(folder) and parent != folder for folder in hidden)
                if parent not in made and (hidden_below or not parent.exists()):
                    made.add(parent)
                    argv += ["--perms", "0755", "--dir", str(parent)]
        for mount in mounts:
            argv += [
                "--bind" if mount.writable or mount is spec.workdir else "--ro-bind",
                str(mount.source),
                mount.target,
            ]
        argv += ["--remount-ro", "/", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not spec.network:
            argv.append("--unshare-net")
        argv += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--chdir", spec.workdir.target]
        return [*argv, "--", *host.drop_privileges_argv(), *spec.argv]

    def _writable(self) -> list[Path]:
        folders = [Path(self.spec.workdir.source)] + [Path(m.source) for m in self.spec.mounts if m.writable]
        return folders + ([self._scratch] if self._scratch else [])

    # --- Start ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._proc is not None:
            raise SandboxError("this sandbox was started already")
        self._started = time.monotonic()
        if not self._bwrap and not self._user:
            host.shield_node_process()
        host.sweep_stale_scratch(Path(tempfile.gettempdir()))
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{host.SCRATCH_PREFIX}{os.getpid()}-{self.id}-"))
        tmp, shm = self._scratch / "tmp", self._scratch / "shm"
        tmp.mkdir()
        shm.mkdir()
        if self._user:
            for folder in self._writable():
                tree.chown_tree(folder, self._user.uid, self._user.gid)
        limits = self.spec.limits
        overhead = BWRAP_PROCESSES if self._bwrap else 0
        uid = self._user.uid if self._user else os.getuid()
        settings = {
            "argv": self._bwrap_argv(tmp, shm) if self._bwrap else self.spec.argv,
            "env": self._env(tmp),
            "cwd": "/" if self._bwrap else str(self.spec.workdir.source),
            "cgroup": str(self._make_cgroup()) if self._cgroup_root else None,
            "rlimits": {
                "NOFILE": limits.open_files,
                # Counted per user across the host: the user's other tasks are added on top.
                "NPROC": limits.processes + overhead + tree.tasks_of_user(uid),
                "FSIZE": limits.output_bytes,
                "DATA": limits.memory_bytes,
                "CORE": 0,
            },
            # With bubblewrap the drop happens inside it (setpriv), after the folders are bound.
            "uid": self._user.uid if self._user and not self._bwrap else None,
            "gid": self._user.gid if self._user and not self._bwrap else None,
            "bubblewrap": bool(self._bwrap),
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
            start_new_session=True,
        )
        # The settings go through a pipe: the job's variables never show in a command line.
        self._proc.stdin.write(pack_settings(settings))
        self._proc.stdin.close()
        for name, target in (
            ("stdout", self._read),
            ("stderr", self._read),
            ("monitor", self._monitor),
            ("waiter", self._wait_for_exit),
        ):
            args = (name,) if target == self._read else ()
            thread = threading.Thread(target=target, args=args, name=f"sandbox-{self.id}-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _make_cgroup(self) -> Path:
        host.sweep_stale_cgroups(self._cgroup_root)
        self._cgroup = self._cgroup_root / f"{os.getpid()}-{self.id}"
        self._cgroup.mkdir()
        limits = self.spec.limits
        for name, value in (
            ("memory.max", limits.memory_bytes),
            ("memory.swap.max", 0),
            ("pids.max", limits.processes + BWRAP_PROCESSES),
        ):
            if (self._cgroup / name).exists():
                (self._cgroup / name).write_text(str(value))
        return self._cgroup

    # --- While it runs ----------------------------------------------------------------------
    def _read(self, stream: str) -> None:
        pipe = self._proc.stdout if stream == "stdout" else self._proc.stderr
        splitter = LineSplitter(self.spec.limits.line_chars, self.spec.secrets)
        log_limit = self.spec.limits.log_bytes or self.spec.limits.output_bytes
        fd = pipe.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            with self._lock:
                self._log_bytes += len(chunk)
                over = self._log_bytes > log_limit
            if over:
                self._hit("output size", f"wrote more than {size_text(log_limit)} to its log")
                continue  # drain until the tree is gone, keep nothing
            self._deliver(stream, splitter.feed(chunk))
        self._deliver(stream, splitter.flush())
        pipe.close()

    def _say(self, text: str) -> None:
        try:
            self.on_line("stderr", text)
        except Exception:  # noqa: BLE001, S110 (the run is over; its log writer failing changes nothing now)
            pass

    def _draining_too_long(self) -> bool:
        return self._drain_until is not None and time.monotonic() > self._drain_until

    def _deliver(self, stream: str, lines: list[str]) -> None:
        if not lines:
            return
        with self._line_lock:  # on_line is never called from two threads at once
            for index, line in enumerate(lines):
                if self._draining_too_long():
                    self._undelivered += len(lines) - index
                    return
                if stream == "stderr":
                    self._stderr_tail.append(line)
                    if not self._fork_failed and any(failure in line for failure in FORK_FAILURES):
                        self._fork_failed = True  # one killer thread, however many lines say it
                        threading.Thread(target=self._hit, args=("processes",), daemon=True).start()
                try:
                    self.on_line(stream, line)
                except Exception as error:  # noqa: BLE001 (a failing log writer must not leave the run blocked on a full pipe)
                    self.on_line = lambda stream, line: None
                    self.stop(f"its log could not be written ({type(error).__name__}: {error})")
                    return

    def _monitor(self) -> None:
        limits = self.spec.limits
        next_output_check = 0.0
        while not self._done.wait(MONITOR_SECONDS):
            pids = self._pids()
            tasks = tree.task_count(pids) - (BWRAP_PROCESSES if self._bwrap else 0)
            if tasks >= limits.processes:
                self._hit("processes")
                continue
            if self.protections.memory != "cgroup v2" and tree.memory_bytes(pids) > limits.memory_bytes:
                self._hit("memory")
                continue
            if time.monotonic() >= next_output_check:
                next_output_check = time.monotonic() + OUTPUT_CHECK_SECONDS
                if tree.folder_bytes(self._writable()) > limits.output_bytes:
                    self._hit("output size")

    def _hit(self, limit: str, why: str = "") -> None:
        with self._lock:
            if self._limit is None:
                self._limit = limit
                self._limit_why = why or limit_reason(limit, self.spec.limits)
        self._kill_tree()

    def _pids(self) -> set[int]:
        """Every process of the run: its cgroup, else its descendants and whatever carries its marker."""
        root = self._proc.pid if self._proc and self._proc.returncode is None else None
        if self._cgroup:
            pids = tree.cgroup_pids(self._cgroup)
            return pids | {root} if root else pids
        pids = tree.descendants(root) if root else set()
        if not self._bwrap:  # in a PID namespace nothing leaves the tree; without one, setsid + fork does
            pids |= tree.marked(MARKER, self.id)
        return pids

    def _kill_tree(self) -> None:
        """SIGKILL until nothing of the run is left, detached grandchildren included."""
        deadline = time.monotonic() + 10
        while True:
            if self._cgroup:
                try:
                    (self._cgroup / "cgroup.kill").write_text("1")
                except OSError:
                    pass  # removed already: the run is over
            pids = self._pids()
            if self._proc and self._proc.returncode is None:
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            alive = [pid for pid in pids if tree.alive(pid)]
            if not alive or time.monotonic() > deadline:
                return
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)

    # --- The end ----------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Ends the whole tree now; the outcome names `reason` as its limit (first limit wins)."""
        if self._proc is None or self._done.is_set():
            return
        self._hit(reason, limit_reason(reason, self.spec.limits))

    def wait(self, timeout: float | None = None) -> Outcome | None:
        if self._proc is None:
            raise SandboxError("the sandbox was not started")
        if not self._done.wait(timeout):
            return None
        return self._outcome

    def _wait_for_exit(self) -> None:
        try:
            returncode = self._proc.wait()
            self._exited = time.monotonic()
            self._kill_tree()  # the run is over: what it left running ends with it
            self._drain_until = time.monotonic() + DRAIN_SECONDS
            for thread in self._threads[:2]:
                thread.join(timeout=DRAIN_SECONDS + 5)  # every writer of the pipes is gone
            with self._line_lock:
                self._drain_until = 0.0  # a reader still inside on_line delivers nothing more
                if self._undelivered:
                    self._say(f"[sandbox] {self._undelivered} more lines of output were not logged")
            self._outcome = self._build_outcome(returncode)
        finally:
            self._clean_up()
            self._done.set()

    def _clean_up(self) -> None:
        if self._cgroup:
            for _ in range(100):
                try:
                    self._cgroup.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)  # the killed tasks are still leaving
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _build_outcome(self, returncode: int) -> Outcome:
        exit_code, signum = (None, -returncode) if returncode < 0 else (returncode, None)
        if exit_code is not None and 128 < exit_code <= 128 + signal.SIGRTMAX:
            signum = exit_code - 128  # how shells and bubblewrap report a child killed by a signal
        tail = list(self._stderr_tail)
        limit, reason = self._limit, self._limit_why
        if limit is None and returncode != 0:
            limit = "output size" if signum == signal.SIGXFSZ else self._limit_in(tail)
            if limit:
                reason = limit_reason(limit, self.spec.limits)
        if limit is None:
            if returncode == 0:
                reason = "completed"
            elif exit_code is None:
                reason = f"was killed by {signal_name(signum)}"
            else:
                reason = f"exited with code {exit_code}" + (f" ({signal_name(signum)})" if signum else "")
            if returncode != 0:
                last = [line for line in tail if line.strip()][-REASON_LINES:]
                reason += (": " + "\n".join(last)) if last else ""
        return Outcome(
            exit_code=exit_code,
            signal=signum,
            limit=limit,
            reason=reason,
            stderr_tail=tail,
            seconds=round(self._exited - self._started, 3),
        )

    @staticmethod
    def _limit_in(tail: list[str]) -> str | None:
        for limit, messages in LIMIT_MESSAGES:
            if any(message in line for line in tail for message in messages):
                return limit
        return None
