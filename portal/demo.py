"""The demo the run command seeds on a fresh machine: an admin, a "Demo" workspace and a sample
data asset (the Palmer penguins, shipped inside the palmerpenguins package), ingested by a job."""

import secrets
import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from data.models import DataAsset, Ingest
from data.services import data_upload
from data.uploads import StagedUpload, staging_dir
from workspaces.models import Workspace
from workspaces.services import workspace_create

ADMIN_USERNAME = "admin"
DEMO_WORKSPACE = "Demo"
DEMO_ASSET = "penguins"


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
    demo_data_seed(actor=admin, workspace=workspace)
    return DemoSeed(username=admin.username, password=password, workspace=workspace)


def demo_data_seed(*, actor, workspace: Workspace) -> None:
    """Upload the penguins as a data asset once; the ingest job runs when the studio's agent starts."""
    if (
        DataAsset.objects.filter(workspace=workspace, name=DEMO_ASSET).exists()
        or Ingest.objects.filter(workspace=workspace, asset_name=DEMO_ASSET).exists()
    ):
        return
    import palmerpenguins  # deferred: the demo data set is read once, on first start

    path = staging_dir() / f"{uuid.uuid4().hex}.part"
    palmerpenguins.load_penguins().to_csv(path, index=False)
    upload = StagedUpload(path, "penguins.csv", path.stat().st_size, "text/csv")
    data_upload(
        actor=actor,
        workspace=workspace,
        upload=upload,
        name=DEMO_ASSET,
        description="Palmer penguins: 344 penguins of 3 species, with bill, flipper and body measurements.",
        tags=["sample"],
    )
