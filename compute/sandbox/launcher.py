"""The first program of every sandboxed run: it sets the run up, then becomes the run.

Started by the node as `python -I -S launcher.py` with its settings on stdin (so the job's
variables never appear in a command line) and an empty environment (so nothing the user set, such
as LD_PRELOAD, reaches a program that still runs as root). It joins the run's cgroup while it is
still root, sets the limits, drops to the sandbox user, then execs bubblewrap or the command itself.
Standard library only: it runs without the studio's packages on its path.
"""

import os
import resource
import sys

RLIMITS = {
    "NOFILE": resource.RLIMIT_NOFILE,
    "NPROC": resource.RLIMIT_NPROC,
    "FSIZE": resource.RLIMIT_FSIZE,
    "DATA": resource.RLIMIT_DATA,
    "CORE": resource.RLIMIT_CORE,
}
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
SIGKILL = 9


def fail(message: str, code: int) -> None:
    os.write(2, f"sandbox: {message}\n".encode())
    os._exit(code)


def load_libc():
    # deferred: only a run without bubblewrap needs it, and ctypes costs ~5 ms of start-up.
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def guard_without_bubblewrap(libc) -> None:
    """What bubblewrap would do: no set-uid program regains privileges, and the run dies with the node."""
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0:
        fail("cannot forbid new privileges", 126)


def unpack(data: bytes) -> dict:
    """The node's settings: NUL-separated fields (json's import alone would cost a third of the
    start-up): cwd, cgroup, uid, gid, bubblewrap, rlimits, then the argv count, argv, and K=V pairs."""
    fields = [os.fsdecode(field) for field in data.split(b"\0")]
    cwd, cgroup, uid, gid, bubblewrap, rlimits, count = fields[:7]
    argv = fields[7 : 7 + int(count)]
    env = dict(pair.split("=", 1) for pair in fields[7 + int(count) :] if pair)
    return {
        "cwd": cwd,
        "cgroup": cgroup or None,
        "uid": int(uid) if uid else None,
        "gid": int(gid) if gid else None,
        "bubblewrap": bubblewrap == "1",
        "rlimits": {name: int(value) for name, value in (item.split("=") for item in rlimits.split(",") if item)},
        "argv": argv,
        "env": env,
    }


def main() -> None:
    settings = unpack(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.umask(0o022)  # bubblewrap makes mount points with it: the sandbox user must reach /inputs/...
    if settings["cgroup"]:
        try:
            with open(os.path.join(settings["cgroup"], "cgroup.procs"), "w") as procs:
                procs.write(str(os.getpid()))
        except OSError as error:
            fail(f"cannot join the run's cgroup: {error}", 126)
    for name, value in settings["rlimits"].items():
        kind = RLIMITS[name]
        hard = resource.getrlimit(kind)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
    # Loaded while still root: the interpreter's own files may not be readable by the sandbox user.
    libc = None if settings["bubblewrap"] else load_libc()
    try:
        os.chdir(settings["cwd"])  # before dropping to the sandbox user, who may not reach it by path
    except OSError as error:
        fail(f"cannot enter the working directory: {error.strerror}", 126)
    if settings["uid"] is not None:
        os.setgroups([])
        os.setgid(settings["gid"])
        os.setuid(settings["uid"])
    if libc is not None:
        guard_without_bubblewrap(libc)
    argv = settings["argv"]
    program = find_program(argv[0], settings["env"].get("PATH", ""))
    if program is None:
        fail(f"{argv[0]}: command not found", 127)
    try:
        os.execve(program, argv, settings["env"])  # noqa: S606 (the argv list is the job itself)
    except OSError as error:
        fail(f"cannot run {argv[0]}: {error.strerror}", 126)


def find_program(name: str, path: str) -> str | None:
    """The PATH search of execvp, done here: os.execvpe would import more modules at this point."""
    if "/" in name:
        return name
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


if __name__ == "__main__":
    main()
