"""Workspaces, their members and roles, and the activity feed shown on Home."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from studio.validation import description_field


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    CONTRIBUTOR = "contributor", "Contributor"
    READER = "reader", "Reader"


class Workspace(models.Model):
    """A team's space: everything else (data, compute, jobs, models, endpoints) belongs to one."""

    name = models.CharField(
        max_length=100,
        error_messages={"blank": "A workspace needs a name.", "max_length": "Use at most 100 characters."},
    )
    description = description_field()
    # Bytes of data versions, artifacts and model files it may hold; empty: the studio's default
    # (STUDIO_WORKSPACE_STORAGE_QUOTA_BYTES). Set by staff in the admin.
    storage_quota_bytes = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Empty: the studio's default quota (STUDIO_WORKSPACE_STORAGE_QUOTA_BYTES).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name

    @property
    def storage_quota(self) -> int:
        """The bytes this workspace may hold: its own quota, else the studio's default."""
        if self.storage_quota_bytes is not None:
            return self.storage_quota_bytes
        return settings.STUDIO_WORKSPACE_STORAGE_QUOTA_BYTES

    @property
    def role_label(self) -> str:
        """The viewing user's role, when a selector annotated it (`role`)."""
        role = getattr(self, "role", None)
        return Role(role).label if role else ""


class Membership(models.Model):
    """A user's role in a workspace. A workspace always keeps at least one Owner."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace_id", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user"),
            models.CheckConstraint(condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.get_role_display()})"


class Activity(models.Model):
    """One line of a workspace's history ("alice added bob as Reader")."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="activities")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verb = models.CharField(max_length=50)
    summary = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]
        verbose_name_plural = "activities"

    def __str__(self) -> str:
        return self.summary
