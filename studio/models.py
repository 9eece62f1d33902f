"""Personal API tokens and worker health checks."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A personal API token. Only a prefix (to find it) and a SHA-256 of the secret are kept (R5)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(
        max_length=100,
        error_messages={
            "blank": "Give the token a name, such as the program that will use it.",
            "max_length": "Use at most 100 characters.",
        },
    )
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A token limited to one workspace (a compute instance's lab): None means every workspace of its user.
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class WorkerCheck(models.Model):
    """A canary task's round trip: requested by a user or the scheduler, completed by a worker.

    Its freshness tells whether workers are consuming, not merely connected.
    """

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    worker = models.CharField(max_length=200, blank=True)
    broker = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"worker check #{self.pk}"

    @property
    def is_overdue(self) -> bool:
        """Still waiting after 30 s: no worker is consuming this broker's queue."""
        return self.completed_at is None and (timezone.now() - self.requested_at).total_seconds() > 30

    @property
    def round_trip_ms(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.requested_at).total_seconds() * 1000


class SignInLinkPurpose(models.TextChoices):
    PASSWORD_RESET = "password_reset", "Password reset"
    INVITATION = "invitation", "Invitation"


class SignInLink(models.Model):
    """A one-time link that lets its user set a password (a reset by staff, later an invitation).

    Like API tokens, only a prefix and a SHA-256 of the secret are kept (R5); the link is shown
    once to whoever issued it, works once (`used_at`) and expires.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sign_in_links")
    purpose = models.CharField(max_length=20, choices=SignInLinkPurpose.choices)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "sign-in link"

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} for {self.user} ({self.prefix}…)"
