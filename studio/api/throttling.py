"""API rate limit per token (per user for session calls), shared by every web process (R10).

A fixed window counted in the shared cache (Redis in production, files by default) with an
atomic add-then-increment, so every process sees one count. Past the limit DRF answers 429 with
`Retry-After` (the seconds left in the window) and the API's error body.
"""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from studio.settings import RATE_PERIODS


def _parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), RATE_PERIODS[period]


def _count(key: str, timeout: int) -> int:
    """Add one to the counter at `key` and return the new total."""
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this call opens the window again
        cache.add(key, 1, timeout=timeout)
        return 1


class ApiRateThrottle(BaseThrottle):
    def __init__(self):
        self.retry_after: int | None = None

    @staticmethod
    def subject(request) -> str | None:
        """Whose budget a call spends: its token's, else its signed-in user's; None for anonymous calls."""
        token = getattr(request, "auth", None)
        prefix = getattr(token, "prefix", None)
        if prefix:
            return f"token:{prefix}"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # With the join date: a deleted account's id can be reused by a new one (SQLite).
            return f"user:{user.pk}:{int(user.date_joined.timestamp() * 1e6)}"
        return None

    def allow_request(self, request, view) -> bool:
        subject = self.subject(request)
        if subject is None:
            return True  # anonymous calls are refused with 401 before any work is done
        limit, period = _parse_rate(settings.STUDIO_API_RATE_LIMIT)
        now = time.time()
        window = int(now // period)
        total = _count(f"studio:api-rate:{subject}:{period}:{window}", timeout=period + 60)
        if total <= limit:
            return True
        self.retry_after = max(1, int((window + 1) * period - now + 0.999))
        return False

    def wait(self) -> int | None:
        return self.retry_after
