"""What a sandboxed run is given (its spec and limits) and what it ends with (its outcome)."""

from dataclasses import dataclass, field
from pathlib import Path

MIB = 2**20


@dataclass(frozen=True)
class Limits:
    """A node's size, applied to the whole process tree of one run."""

    memory_bytes: int
    processes: int  # live processes and threads of the tree
    open_files: int  # per process
    output_bytes: int  # bytes under the writable mounts, the workdir and the private /tmp
    threads: int  # OMP_NUM_THREADS and friends
    line_chars: int = 10_000
    log_bytes: int | None = None  # stdout + stderr; None: the same as output_bytes


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # inside the sandbox when bubblewrap is used
    writable: bool = False


@dataclass
class SandboxSpec:
    argv: list[str]
    workdir: Mount  # writable; the process's cwd (and HOME unless env says otherwise)
    mounts: list[Mount]
    env: dict[str, str]  # the child's whole environment: nothing is taken from os.environ
    limits: Limits
    hide: list[Path]  # host folders never visible; mounts inside them are still bound
    network: bool = False
    secrets: list[str] = field(default_factory=list)  # replaced by "***" in every log line
    # None: use bubblewrap where this host has it (and STUDIO_SANDBOX_BWRAP is not "0").
    bubblewrap: bool | None = None


@dataclass
class Outcome:
    exit_code: int | None
    signal: int | None
    limit: str | None  # "memory" | "processes" | "open files" | "output size" | a stop() reason | None
    reason: str  # one sentence for the user
    stderr_tail: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None


@dataclass(frozen=True)
class Protections:
    """What a run on this host is protected by; describe() says it in plain sentences."""

    bubblewrap: bool
    pid_namespace: bool
    user: str | None  # "nobody (uid 65534)", or None when the node is not root
    memory: str  # "cgroup v2" | "rlimit"
    network: bool  # True: the network is isolated
    cgroup: bool = False  # the tree lives in its own cgroup v2 (killed whole with cgroup.kill)

    def describe(self) -> list[str]:
        said = ["Only the job's own environment variables are passed; the node's are never visible."]
        if self.bubblewrap:
            said.append("Runs in a bubblewrap namespace: read-only system, only its own folders visible, private /tmp.")
        else:
            said.append("Bubblewrap is not available: the job can read every host file its user can read.")
        if self.pid_namespace:
            said.append("Has its own process namespace: it cannot see or signal the node's processes.")
        else:
            said.append("Shares the host's process list: it can see the node's processes.")
        if self.user:
            said.append(f"Runs as {self.user}, not as the node's user.")
        else:
            said.append(
                "Runs as the node's own user (the node is not root)"
                + ("." if self.bubblewrap else ": it can read the node's files (not its environment).")
            )
        if self.memory == "cgroup v2":
            said.append("Memory is limited for the whole process tree by cgroup v2.")
        else:
            said.append("Memory is limited per process (rlimit) and for the whole tree by a monitor.")
        if self.cgroup:
            said.append("Its processes live in their own cgroup and are ended together on cancel or limit.")
        else:
            said.append("Its processes are found by a marker and ended together on cancel or limit.")
        said.append("Processes, open files, output size and threads are limited to the node's size.")
        said.append("The network is isolated." if self.network else "The job has network access.")
        return said
