"""A run's processes and files as /proc and the file system show them (Linux only)."""

import os
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _ints(text: str) -> set[int]:
    return {int(word) for word in text.split() if word.isdigit()}


def cgroup_pids(cgroup: Path) -> set[int]:
    try:
        return _ints((cgroup / "cgroup.procs").read_text())
    except OSError:
        return set()


def descendants(root: int) -> set[int]:
    """The root and every process below it (children files of each task; orphans are lost)."""
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    todo.extend(_ints(children.read()))
        except OSError:
            continue  # it ended meanwhile
    return found


def marked(name: str, value: str) -> set[int]:
    """Processes whose environment holds name=value: how a detached grandchild is still found."""
    needle = f"{name}={value}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0"):
                    found.add(int(entry))
        except OSError:
            continue  # ended, or not ours to read
    return found


def alive(pid: int) -> bool:
    """Not ended and not a zombie (a zombie holds no resources and cannot be killed again)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    except (OSError, IndexError):
        return False


def task_count(pids: set[int]) -> int:
    count = 0
    for pid in pids:
        try:
            count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return count


def tasks_of_user(uid: int) -> int:
    """Tasks (processes and threads) the user runs now: RLIMIT_NPROC counts them all."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def memory_bytes(pids: set[int]) -> int:
    """The tree's memory: proportional set size, so pages shared after a fork count once."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            try:
                with open(f"/proc/{pid}/statm") as statm:
                    total += int(statm.read().split()[1]) * PAGE
            except (OSError, ValueError, IndexError):
                continue
    return total


def folder_bytes(folders: list[Path]) -> int:
    """Bytes of the files under the folders, each inode once, symbolic links not followed."""
    seen, total = set(), 0
    todo = [str(folder) for folder in folders]
    while todo:
        try:
            entries = os.scandir(todo.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
                elif (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += max(info.st_size, info.st_blocks * 512)
    return total


def chown_tree(folder: Path, uid: int, gid: int) -> None:
    """Gives the sandbox user its writable folders (symbolic links themselves, never their targets)."""
    os.lchown(folder, uid, gid)
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), uid, gid)
