"""The demo the run command seeds on a fresh machine: an admin, a "Demo" workspace, a sample
data asset (the Palmer penguins, shipped inside the palmerpenguins package) ingested by a job, and
what a first command job needs: an environment on the studio's stack and an example script."""

import secrets
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from commands.code_services import code_snapshot_create_from_files
from commands.models import CodeSnapshot
from data.models import DataAsset, Ingest
from data.services import data_upload
from data.uploads import StagedUpload, staging_dir
from environments.models import Environment
from environments.services import environment_create
from workspaces.models import Workspace
from workspaces.services import workspace_create

ADMIN_USERNAME = "admin"
DEMO_WORKSPACE = "Demo"
DEMO_ASSET = "penguins"
DEMO_ENVIRONMENT = "sklearn"
DEMO_CODE = "penguins-example"
# A command job's script: Jobs → Submit → Command, code "penguins-example", environment sklearn,
# data input "train" = penguins, the command `python train.py ${{inputs.train}} ${{outputs.model}}`.
DEMO_SCRIPT = """\
\"\"\"Train a classifier on a data input and save it with skops, ready to register and deploy.\"\"\"
import sys
from pathlib import Path

import pandas as pd
import skops.io as sio
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

data, out = sys.argv[1], Path(sys.argv[2])
frame = pd.read_parquet(data)
features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1000))
model.fit(frame[features], frame["species"])
print(f"accuracy on the training rows: {model.score(frame[features], frame['species']):.3f}")
sio.dump(model, out / "model.skops")
"""


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
    demo_command_seed(actor=admin, workspace=workspace)
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


def demo_command_seed(*, actor, workspace: Workspace) -> None:
    """An environment on the studio's stack and the example script, once each."""
    if not Environment.objects.filter(workspace=workspace, name=DEMO_ENVIRONMENT).exists():
        environment_create(
            actor=actor,
            workspace=workspace,
            name=DEMO_ENVIRONMENT,
            base="studio-sklearn",
            requirements="",
            description="The studio's own scientific stack: numpy, pandas, scikit-learn, skops, LightGBM.",
        )
    if not CodeSnapshot.objects.filter(workspace=workspace, name=DEMO_CODE).exists():
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "train.py"
            script.write_text(DEMO_SCRIPT)
            code_snapshot_create_from_files(
                actor=actor, workspace=workspace, name=DEMO_CODE, files=[("train.py", script)]
            )
