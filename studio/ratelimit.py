"""Exact request counts per key and minute, shared by every process (R10).

Each request adds one to an atomic shared counter and is allowed while the count is within the
limit, so N processes never let more than the limit through between them (a per-process count
synced in batches leaked: 27 of 20 at once). Two stores:

* Redis, when the studio has one for its cache (`STUDIO_CACHE_URL`): INCR and EXPIRE in one round
  trip, shared by every host.
* The embedded default: one small file per key in the data directory, read and rewritten under an
  exclusive `flock` (a few system calls, no server), shared by every process of this host.

If the store cannot be reached the request is allowed and a warning logged: a broken limiter must
not take scoring down.
"""

import fcntl
import hashlib
import logging
import math
import os
import threading
import time
from functools import lru_cache
from pathlib import Path

from django.conf import settings

log = logging.getLogger("studio.ratelimit")

_RECORD_BYTES = 40  # "<window> <count>" padded, so a shorter number never leaves stale digits


class RedisWindowCounter:
    def __init__(self, url: str):
        import redis  # deferred: only a studio configured with Redis needs the client

        self._redis = redis
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def hit(self, key: str, window: int, window_seconds: int) -> int:
        name = f"studio:ratelimit:{key}:{window}"
        pipe = self._client.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, window_seconds * 2)
        return pipe.execute()[0]

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        return (self._redis.RedisError,)


class FileWindowCounter:
    """Counters in files under `folder`, one per key, updated under an exclusive flock.

    A file holds the current window's number and count. The file descriptors are kept open per
    process (a descriptor inherited across a fork would share its lock with the parent, so a new
    process opens its own); a thread lock orders the threads of one process.
    """

    MAX_OPEN = 1000

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()

    def _fd(self, key: str) -> int:
        if self._pid != os.getpid() or len(self._fds) >= self.MAX_OPEN:
            if self._pid == os.getpid():
                for fd in self._fds.values():
                    os.close(fd)
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(key)
        if fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(key.encode()).hexdigest()[:32]  # a generated name, whatever the key (R1)
            fd = self._fds[key] = os.open(self.folder / name, os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def hit(self, key: str, window: int, window_seconds: int) -> int:
        with self._lock:
            fd = self._fd(key)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                stored = os.pread(fd, _RECORD_BYTES, 0).split()
                try:
                    same_window = len(stored) == 2 and int(stored[0]) == window
                    count = int(stored[1]) + 1 if same_window else 1
                except ValueError:  # a torn or foreign file: start the window again
                    count = 1
                os.pwrite(fd, f"{window} {count}".ljust(_RECORD_BYTES).encode(), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return count

    errors = (OSError,)


@lru_cache(maxsize=4)
def _counter(redis_url: str, data_dir: str) -> RedisWindowCounter | FileWindowCounter:
    if redis_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisWindowCounter(redis_url)
    return FileWindowCounter(Path(data_dir) / "ratelimit")


_last_warning = 0.0


def rate_limit(key: str, *, limit: int, window_seconds: int = 60) -> int | None:
    """Count one request for `key`: None if it is within `limit` this window, else the seconds
    until the window ends (for Retry-After)."""
    global _last_warning
    now = time.time()
    window = int(now // window_seconds)
    counter = _counter(settings.STUDIO_CACHE_URL, str(settings.DATA_DIR))
    try:
        count = counter.hit(key, window, window_seconds)
    except counter.errors as exc:
        if now - _last_warning > 60:
            _last_warning = now
            log.warning("rate limit store unavailable, allowing requests: %s", exc)
        return None
    if count > limit:
        return max(1, math.ceil((window + 1) * window_seconds - now))
    return None
