"""The demo the run command seeds on a fresh machine: an admin and a "Demo" workspace."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from workspaces.models import Workspace
from workspaces.services import workspace_create

ADMIN_USERNAME = "admin"
DEMO_WORKSPACE = "Demo"


@dataclass(frozen=True)
class DemoSeed:
    username: str
    password: str | None  # set only when the admin was created by this call (printed once)
    workspace: Workspace


def demo_seed() -> DemoSeed:
    """Create the admin (with a generated password) and the Demo workspace, once.

    A second call reuses what exists and changes no password.
    """
    User = get_user_model()
    password = None
    with transaction.atomic():
        admin = User.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            password = secrets.token_urlsafe(12)
            admin = User.objects.create_superuser(username=ADMIN_USERNAME, email="", password=password)
        workspace = Workspace.objects.filter(name=DEMO_WORKSPACE, memberships__user=admin).first()
        if workspace is None:
            workspace = workspace_create(
                actor=admin,
                name=DEMO_WORKSPACE,
                description="A demo workspace with a sample data set. Explore it, then create your own.",
            )
    return DemoSeed(username=admin.username, password=password, workspace=workspace)
