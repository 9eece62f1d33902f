"""A job's own short-lived token: what the job's code uses to reach the run API for that job only.

The key reads `sjt_<random>` (256 random bits); only its SHA-256 is kept (R5), hashed the way
personal API tokens are (`studio.secrets`). The hash is unique and indexed, so the row is found by
it: there is no prefix to look up first, and knowing a hash gives nothing towards the key.

A token is valid while it is not revoked, not expired, its job is on a node (STARTING or
RUNNING), and it was issued for the job's current attempt: a token issued before the job was
claimed again (re-queued after its node was lost) belongs to an attempt that is over, so a
"zombie" process that still holds it changes nothing. The engine revokes a job's tokens when the
job finishes (`services._finish`); the status and attempt checks hold even where nothing revoked.
"""

import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.utils import timezone

from studio.secrets import secret_hash

from .models import Job, JobStatus, JobToken

JOB_TOKEN_LABEL = "sjt"  # noqa: S105 - a label that makes leaked keys easy to spot, not a secret
# A token outlives the job's time limit by this much: the watchdog stops the job at the limit,
# and the token must not expire while the job's code writes its last artifacts before that.
TOKEN_TTL_MARGIN_SECONDS = 600


def _key_hash(random_part: str) -> str:
    return secret_hash(random_part)


def job_token_issue(*, job: Job, ttl_seconds: int | None = None) -> str:
    """Issue a token for `job` and return its key (shown once: only its hash is stored).

    It expires after `ttl_seconds`, by default the job's time limit plus a margin."""
    if ttl_seconds is None:
        ttl_seconds = job.time_limit_seconds + TOKEN_TTL_MARGIN_SECONDS
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 1:
        raise ValidationError({"ttl_seconds": ["Give a whole number of seconds, at least 1."]})
    random_part = secrets.token_urlsafe(32)
    JobToken.objects.create(
        job=job, key_hash=_key_hash(random_part), expires_at=timezone.now() + timedelta(seconds=ttl_seconds)
    )
    return f"{JOB_TOKEN_LABEL}_{random_part}"


def job_tokens_revoke(*, job) -> int:
    """Revoke every live token of the job (a Job or its id); returns how many were revoked."""
    job_id = job if isinstance(job, int) else job.pk
    return JobToken.objects.filter(job_id=job_id, revoked_at__isnull=True).update(revoked_at=timezone.now())


def is_job_token_key(key: str) -> bool:
    """Whether `key` is shaped like a job's token (so a personal token is never looked up here)."""
    return isinstance(key, str) and key.startswith(f"{JOB_TOKEN_LABEL}_")


def job_token_authenticate(key: str) -> JobToken | None:
    """The valid token for `key` with its job, workspace and submitter joined in; None otherwise."""
    if not is_job_token_key(key):
        return None
    random_part = key[len(JOB_TOKEN_LABEL) + 1 :]
    if not random_part or len(random_part) > 200:
        return None
    now = timezone.now()
    return (
        JobToken.objects.select_related("job", "job__workspace", "job__submitted_by")
        .filter(
            key_hash=_key_hash(random_part),
            revoked_at__isnull=True,
            expires_at__gt=now,
            job__status__in=JobStatus.on_node(),
        )
        # Issued for the current attempt: a claim sets started_at, then the runner issues the token.
        .filter(Q(job__started_at__isnull=True) | Q(created_at__gte=F("job__started_at")))
        .first()
    )
