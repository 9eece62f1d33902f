"""Services for accounts (API tokens) and worker health."""

import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .models import ApiToken, WorkerCheck
from .secrets import secret_matches, secret_new, secret_split

TOKEN_PREFIX = "stu"  # noqa: S105 - a label that makes leaked tokens easy to spot, not a secret


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


def token_create(*, user, name: str, expires_at: datetime | None = None) -> IssuedToken:
    """Issue a personal API token; the plaintext is returned once and only its hash is kept."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": ["Give the token a name, such as the program that will use it."]})
    if len(name.strip()) > 100:
        raise ValidationError({"name": ["Use at most 100 characters."]})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    secret = secret_new(TOKEN_PREFIX)
    token = ApiToken.objects.create(
        user=user, name=name.strip(), prefix=secret.prefix, secret_hash=secret.hash, expires_at=expires_at
    )
    return IssuedToken(token=token, plaintext=secret.plaintext)


def token_revoke(*, user, token: ApiToken) -> ApiToken:
    if token.user_id != user.pk:
        raise PermissionDenied("This token belongs to someone else.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_authenticate(plaintext: str) -> ApiToken | None:
    """The live token matching `plaintext`, or None. The secret is compared in constant time."""
    parts = secret_split(plaintext, TOKEN_PREFIX)
    if parts is None:
        return None
    prefix, random_part = parts
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not secret_matches(token.secret_hash, random_part):
        return None
    now = timezone.now()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not token.user.is_active:
        return None
    # Record use at most once a minute so a busy client does not write on every call.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def broker_kind() -> str:
    return "embedded" if settings.EMBEDDED_BROKER else settings.CELERY_BROKER_URL.split(":", 1)[0]


def worker_check_request(*, user=None) -> WorkerCheck:
    """Send a canary task to the workers; it completes when a worker actually consumes it."""
    from .tasks import worker_canary_task

    with transaction.atomic():
        check = WorkerCheck.objects.create(requested_by=user, broker=broker_kind())
        transaction.on_commit(lambda: worker_canary_task.delay(check.pk))
    return check


def worker_check_complete(*, check_id: int | None) -> None:
    """Called by the worker that consumed the canary. A scheduled canary (no id) records itself."""
    now = timezone.now()
    if check_id is None:
        WorkerCheck.objects.create(broker=broker_kind(), completed_at=now, worker=socket.gethostname())
        # Keep a day of canaries: enough to show health, not a table that grows forever.
        WorkerCheck.objects.filter(requested_at__lt=now - timedelta(days=1)).delete()
        return
    WorkerCheck.objects.filter(pk=check_id, completed_at__isnull=True).update(
        completed_at=now, worker=socket.gethostname()
    )
