"""Services for accounts (API tokens, one-time sign-in links, disabling, lock-outs) and worker health."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from axes.utils import reset
from celery import current_app
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .credentials import LIMITED_TOKEN_MESSAGE, workspace_limit
from .models import ApiToken, SignInLink, SignInLinkPurpose, WorkerCheck
from .secrets import secret_matches, secret_new, secret_split
from .validation import model_validate

TOKEN_PREFIX = "stu"  # noqa: S105 - a label that makes leaked tokens easy to spot, not a secret
SIGN_IN_LINK_LABEL = "sil"
WORKER_CANARY_TASK = "studio.tasks.worker_canary_task"


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


def token_create(*, user, name: str, expires_at: datetime | None = None, workspace=None) -> IssuedToken:
    """Issue a personal API token; the plaintext is returned once and only its hash is kept. With
    `workspace`, the token works only there (a compute instance's lab gives one to its notebooks).
    A token already limited to a workspace cannot make tokens."""
    if workspace_limit(user) is not None:
        raise PermissionDenied(LIMITED_TOKEN_MESSAGE)
    model_validate(ApiToken(name=name.strip() if isinstance(name, str) else ""), fields=["name"])
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    secret = secret_new(TOKEN_PREFIX)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        prefix=secret.prefix,
        secret_hash=secret.hash,
        expires_at=expires_at,
        workspace=workspace,
    )
    return IssuedToken(token=token, plaintext=secret.plaintext)


def token_revoke(*, user, token: ApiToken) -> ApiToken:
    if workspace_limit(user) is not None:
        raise PermissionDenied(LIMITED_TOKEN_MESSAGE)
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


# --- Accounts: one-time sign-in links, disabling, lock-outs ------------------------------------------
@dataclass(frozen=True)
class IssuedSignInLink:
    link: SignInLink
    secret: str  # the last part of the link's URL, shown once, never stored


class SignInLinkRefused(Exception):
    """The link cannot be used; the message says why, for the person who opened it.

    `status`: 404 for a link that never existed (or a wrong secret), 410 for one that did but is gone.
    """

    def __init__(self, message: str, status: int = 410):
        super().__init__(message)
        self.status = status


def _require_staff(actor) -> None:
    if not (actor.is_active and actor.is_staff):
        raise PermissionDenied("Only staff can do this.")


def sign_in_link_issue(*, actor, user, purpose: str = SignInLinkPurpose.PASSWORD_RESET) -> IssuedSignInLink:
    """Issue a one-time link for `user` to set a password; earlier live links of that purpose stop working.

    Password resets are issued by staff; the secret is returned once and only its hash is kept.
    """
    _require_staff(actor)
    return sign_in_link_create(created_by=actor, user=user, purpose=purpose)


def sign_in_link_create(*, created_by, user, purpose: str) -> IssuedSignInLink:
    """Make the link; the caller has checked that `created_by` may (staff for a reset, a workspace
    Owner for an invitation: `workspaces.services.member_invite`)."""
    if not user.is_active:
        raise ValidationError("This account is disabled: enable it before sending it a sign-in link.")
    secret = secret_new(SIGN_IN_LINK_LABEL)
    now = timezone.now()
    with transaction.atomic():
        SignInLink.objects.filter(user=user, purpose=purpose, used_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=now
        )
        link = SignInLink(
            user=user,
            purpose=purpose,
            prefix=secret.prefix,
            secret_hash=secret.hash,
            created_by=created_by,
            expires_at=now + timedelta(hours=settings.STUDIO_SIGN_IN_LINK_HOURS),
        )
        link.full_clean()
        link.save()
    return IssuedSignInLink(link=link, secret=secret.plaintext)


def sign_in_link_check(secret: str) -> SignInLink:
    """The live link for `secret`, or SignInLinkRefused saying why it cannot be used."""
    parts = secret_split(secret, SIGN_IN_LINK_LABEL) if isinstance(secret, str) else None
    link = None
    if parts is not None:
        link = SignInLink.objects.select_related("user").filter(prefix=parts[0]).first()
    # An unknown prefix and a wrong secret get the same answer: nothing tells a guesser which was close.
    if link is None or not secret_matches(link.secret_hash, parts[1]):
        raise SignInLinkRefused("This link is not valid. Ask an administrator for a new one.", status=404)
    if link.used_at is not None:
        raise SignInLinkRefused("This link has already been used. Ask an administrator for a new one.")
    if link.revoked_at is not None:
        raise SignInLinkRefused("This link was replaced by a newer one. Use the newest link you were sent.")
    if link.expires_at <= timezone.now():
        raise SignInLinkRefused("This link has expired. Ask an administrator for a new one.")
    if not link.user.is_active:
        raise SignInLinkRefused("This account is disabled. Ask an administrator.")
    return link


def sign_in_link_use(*, secret: str, password: str):
    """Set the password of the link's user and spend the link; returns the user.

    The password must pass Django's validators (ValidationError otherwise, the link unspent). The
    link is spent by a compare-and-set, so two submissions of one link cannot both succeed.
    """
    link = sign_in_link_check(secret)
    user = link.user
    validate_password(password, user)
    with transaction.atomic():
        spent = SignInLink.objects.filter(pk=link.pk, used_at__isnull=True, revoked_at__isnull=True).update(
            used_at=timezone.now()
        )
        if not spent:
            raise SignInLinkRefused("This link has already been used. Ask an administrator for a new one.")
        user.set_password(password)
        user.save(update_fields=["password"])
    user_sign_in_unlock(actor=None, user=user)  # a new password is a fresh start
    return user


def user_disable(*, actor, user) -> None:
    """Disable an account: its sessions, API tokens and sign-in links stop working at once.

    Sessions and tokens check `is_active` on every request, so nothing else needs revoking.
    """
    _require_staff(actor)
    if user.pk == actor.pk:
        raise ValidationError("You cannot disable your own account.")
    with transaction.atomic():
        type(user).objects.filter(pk=user.pk).update(is_active=False)
        SignInLink.objects.filter(user=user, used_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    user.is_active = False


def user_sign_in_unlock(*, actor, user) -> int:
    """Lift sign-in lock-outs of this username (failures counted from any address); returns records removed.

    `actor` is None when the studio itself lifts the lock (after a password reset).
    """
    if actor is not None:
        _require_staff(actor)
    return reset(username=user.get_username())


def broker_kind() -> str:
    return "embedded" if settings.EMBEDDED_BROKER else settings.CELERY_BROKER_URL.split(":", 1)[0]


def worker_check_request(*, user=None) -> WorkerCheck:
    """Send a canary task to the workers; it completes when a worker actually consumes it."""
    with transaction.atomic():
        check = WorkerCheck.objects.create(requested_by=user, broker=broker_kind())
        # Sent by name: tasks.py calls into this module, never the other way.
        transaction.on_commit(lambda: current_app.send_task(WORKER_CANARY_TASK, args=[check.pk]))
    return check


def worker_check_complete(*, check_id: int | None) -> None:
    """Called by the worker that consumed the canary. A scheduled canary (no id) records itself."""
    now = timezone.now()
    if check_id is None:
        WorkerCheck.objects.create(broker=broker_kind(), completed_at=now, worker=settings.STUDIO_HOSTNAME)
        # Keep a day of canaries: enough to show health, not a table that grows forever.
        WorkerCheck.objects.filter(requested_at__lt=now - timedelta(days=1)).delete()
        return
    WorkerCheck.objects.filter(pk=check_id, completed_at__isnull=True).update(
        completed_at=now, worker=settings.STUDIO_HOSTNAME
    )
