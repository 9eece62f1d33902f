"""Environments: versioned Python environments for command jobs, built on each node on demand.

A version is a curated base (the studio's own scientific stack) plus pip requirements; its
`spec_hash` keys the build cache on every host, and `lock` keeps what the first build resolved.
"""

from django.conf import settings
from django.db import models

from studio.validation import description_field, name_field

ENVIRONMENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
ENVIRONMENT_NAME_MESSAGE = "Use 1–100 letters, digits, dots, hyphens or underscores, starting with a letter or digit."


class Environment(models.Model):
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="environments")
    name = name_field(max_length=100, pattern=ENVIRONMENT_NAME_PATTERN, message=ENVIRONMENT_NAME_MESSAGE)
    description = description_field()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="environment_unique_name")]

    def __str__(self) -> str:
        return self.name


class EnvironmentVersion(models.Model):
    """One immutable version: a base and requirements. Jobs name a version, never "latest"."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    base = models.CharField(max_length=50)  # a curated base's key (environments.bases)
    requirements = models.TextField(blank=True)  # pip requirement lines, as the user wrote them
    spec_hash = models.CharField(max_length=64)  # sha256 of the resolved specification: the cache key
    lock = models.TextField(blank=True)  # `pip freeze` of the first successful build
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "version"], name="environment_version_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.environment.name}:{self.version}"


class BuildState(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    EVICTED = "evicted", "Evicted"


class EnvironmentBuild(models.Model):
    """A version's build on one host (a node's machine), as that host last reported it."""

    version = models.ForeignKey(EnvironmentVersion, on_delete=models.CASCADE, related_name="builds")
    host = models.CharField(max_length=255)
    state = models.CharField(max_length=20, choices=BuildState.choices, default=BuildState.BUILDING)
    log_tail = models.TextField(blank=True)  # the installer's last lines
    size_bytes = models.BigIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["host"]
        constraints = [models.UniqueConstraint(fields=["version", "host"], name="environment_build_unique_host")]

    def __str__(self) -> str:
        return f"{self.version} on {self.host}"
