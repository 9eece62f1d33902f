"""Command jobs: a user's own code, run in a sandbox on a compute target.

The job itself is a `compute.Job` of kind COMMAND (its spec holds the command, inputs, outputs and
environment); its code is a `CodeSnapshot`, stored once per content in the workspace.
"""

from django.conf import settings
from django.db import models

from studio.validation import name_field

# The job kind's name in compute.Job.kind.
COMMAND = "command"


class CodeSnapshot(models.Model):
    """An uploaded folder of code, immutable, stored content-addressed: `sha256` is the hash of its
    manifest (sorted paths with each file's hash), so the same files uploaded twice (as a zip, a
    tar.gz or a folder) are one snapshot."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="code_snapshots")
    sha256 = models.CharField(max_length=64)
    name = name_field(max_length=200, pattern=r"^[^\x00-\x1f/\\]{1,200}$", message="Use 1–200 printable characters.")
    size = models.BigIntegerField(default=0)  # total bytes of its files
    file_count = models.PositiveIntegerField(default=0)
    files = models.JSONField(default=list)  # [{"path", "size", "sha256"}], sorted by path
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "sha256"], name="code_snapshot_unique_content")]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"
