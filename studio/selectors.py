"""Read queries for accounts and health."""

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from .credentials import workspace_limit
from .models import ApiToken, WorkerCheck

# The scheduler sends a canary every 30 s; past this age no worker is consuming.
CANARY_STALE_AFTER = timedelta(seconds=90)


def token_list(*, user) -> QuerySet[ApiToken]:
    if workspace_limit(user) is not None:  # a lab's token does not see its user's other tokens
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_get(*, user, token_id) -> ApiToken:
    try:
        return token_list(user=user).get(pk=int(token_id))
    except (ApiToken.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Token not found.") from None


def worker_check_get(*, user, check_id) -> WorkerCheck:
    try:
        return WorkerCheck.objects.get(pk=int(check_id), requested_by=user)
    except (WorkerCheck.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Worker check not found.") from None


@dataclass(frozen=True)
class Health:
    database: bool
    last_canary: WorkerCheck | None

    @property
    def workers_consuming(self) -> bool:
        return self.last_canary is not None and timezone.now() - self.last_canary.completed_at < CANARY_STALE_AFTER

    @property
    def ok(self) -> bool:
        return self.database and self.workers_consuming


def health_get() -> Health:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = True
    except Exception:  # noqa: BLE001 - health reports any database failure as "down"
        return Health(database=False, last_canary=None)
    last = WorkerCheck.objects.filter(completed_at__isnull=False).order_by("-completed_at").first()
    return Health(database=database, last_canary=last)
