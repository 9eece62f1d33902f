"""API rate limit per token (per user for session calls), exact across every web process (R10).

A fixed window counted by `studio.ratelimit` (the same atomic shared counter as the scoring keys'
limit: Redis in production, a locked file per subject by default). Past the limit DRF answers 429
with `Retry-After` (the seconds left in the window) and the API's error body.
"""

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from studio.ratelimit import rate_limit
from studio.settings import RATE_PERIODS


def _parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), RATE_PERIODS[period]


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
        self.retry_after = rate_limit(f"api:{subject}:{period}", limit=limit, window_seconds=period)
        return self.retry_after is None

    def wait(self) -> int | None:
        return self.retry_after
