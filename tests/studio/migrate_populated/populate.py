"""Fill a database of the PREVIOUS schema with one of everything, through that tree's own code.

Run by tests/studio/test_migrate_populated.py as `python populate.py <handoff.json>` with the old
tree as the working directory (its modules, its migrations), DATABASE_URL and STUDIO_DATA_DIR set.
No worker is needed: the ingest, train and batch scoring jobs are queued by the services and run
in this process by the runner, as a node would (the train job as node-N of its cluster, the others
as "the system worker").
The imports name the OLD module paths on purpose: this file never runs against the new tree.
"""
# Not sorted by ruff: it would take an old module this tree no longer has for a third-party one.
# ruff: noqa: I001

import json
import os
import sys
import uuid

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

import django  # noqa: E402

django.setup()

import palmerpenguins  # noqa: E402
from django.apps import apps  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from compute.models import Node, TargetKind  # noqa: E402
from compute.services import (  # noqa: E402
    default_cluster_for,
    node_mark_idle,
    node_mark_ready,
    node_mark_started,
    node_mark_stopped,
    target_create,
)
from endpoints import serving  # noqa: E402
from endpoints.services import deployment_create, endpoint_create  # noqa: E402
from studio.services import token_create  # noqa: E402
from training import runner  # noqa: E402
from training.models import Job, JobStatus  # noqa: E402
from training.registry_services import model_register  # noqa: E402
from training.services import job_submit  # noqa: E402
from workspaces.data_services import data_upload, upload_slot_acquire  # noqa: E402
from workspaces.services import workspace_create  # noqa: E402
from workspaces.uploads import StagedUpload, staging_dir  # noqa: E402

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


def run_in_process(job: Job, node: Node | None = None) -> Job:
    """Run a queued job here as a node would (as `node`, if given), and insist it completed."""
    if node is not None:
        os.environ["STUDIO_NODE_ID"] = str(node.pk)  # what the provisioner sets in a node's process
    runner.run_job(job.pk)
    os.environ.pop("STUDIO_NODE_ID", None)
    job.refresh_from_db()
    if job.status != JobStatus.COMPLETED:
        raise SystemExit(f"the {job.kind} job {job.pk} ended {job.status}: {job.error}")
    return job


def main(handoff_path: str) -> None:
    owner = get_user_model().objects.create_user(username="alice", password="correct-horse-battery-staple")
    workspace = workspace_create(actor=owner, name="Team", description="Made by the migration test")

    # A real CSV uploaded and ingested into Parquet by the ingest job (an Ingest, a DataAsset, a DataVersion).
    frame = palmerpenguins.load_penguins()[[*FEATURES, "species"]]
    staged = staging_dir() / f"{uuid.uuid4().hex}.part"
    frame.to_csv(staged, index=False)
    ingest = data_upload(
        actor=owner,
        workspace=workspace,
        upload=StagedUpload(staged, "penguins.csv", staged.stat().st_size, "text/csv"),
        name="penguins",
    )
    run_in_process(ingest.job)
    ingest.refresh_from_db()
    data_version = ingest.version

    # A Train job (a tiny logistic regression) run by a node of the cluster (a Node and its metered
    # session), registered as a model version with its model file.
    cluster = default_cluster_for(workspace)
    node = Node.objects.create(target=cluster)
    node_mark_started(node=node, pid=os.getpid(), hostname="migration-test")
    node_mark_ready(node_id=node.pk)
    train_spec = {
        "data_version_id": data_version.pk,
        "target_column": "species",
        "algorithm": "logistic_regression",
        "hyperparameters": {"max_iter": 200},
        "validation": {"method": "holdout", "holdout_fraction": 0.25},
    }
    train = job_submit(
        actor=owner, workspace=workspace, kind="train", target=cluster, spec=train_spec, experiment_name="penguins"
    )
    train = run_in_process(train, node)
    node_mark_idle(node_id=node.pk)
    node_mark_stopped(node_id=node.pk, reason="the migration test stopped it")
    model_version = model_register(actor=owner, job=train, name="penguins", aliases=["champion"])

    # A batch scoring job: the model scores the data version into a new data asset.
    batch = job_submit(
        actor=owner,
        workspace=workspace,
        kind="batch_score",
        target=cluster,
        spec={"model_version_id": model_version.pk, "data_version_id": data_version.pk},
    )
    run_in_process(batch)
    # A job left queued, its message waiting in the broker: after the upgrade, the new code runs it.
    waiting = job_submit(actor=owner, workspace=workspace, kind="train", target=cluster, spec=train_spec)

    # An endpoint with a deployment on an inference cluster, scored once so monitoring has a bucket.
    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    keys = endpoint_create(actor=owner, workspace=workspace, name="penguin-api")
    deployment_create(actor=owner, endpoint=keys.endpoint, name="blue", model_version=model_version, target=inference)
    row = json.loads(frame[FEATURES].dropna().head(1).to_json(orient="records"))[0]
    setup_test_environment()  # lets the test Client's "testserver" host in
    response = Client().post(
        f"/score/{keys.endpoint.name}/",
        json.dumps([row]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {keys.primary}",
    )
    if response.status_code != 200:
        raise SystemExit(f"scoring before the migration answered {response.status_code}: {response.content!r}")
    serving.monitor.flush()

    token = token_create(user=owner, name="migration test")
    upload_slot_acquire(user=owner)

    with open(handoff_path, "w") as out:
        json.dump(
            {
                "workspace_id": workspace.pk,
                "asset_id": data_version.asset_id,
                "data_version": data_version.version,
                "data_rows": data_version.rows,
                "ingest_id": ingest.pk,
                "cluster_id": cluster.pk,
                "train_spec": train_spec,
                "train_job_id": train.pk,
                "node_id": node.pk,
                "batch_job_id": batch.pk,
                "waiting_job_id": waiting.pk,
                "model_id": model_version.model_id,
                "model_version": model_version.version,
                "model_sha256": model_version.sha256,
                "endpoint": keys.endpoint.name,
                "endpoint_id": keys.endpoint.pk,
                "endpoint_key": keys.primary,
                "api_token": token.plaintext,
                "row": row,
                "prediction": response.json()["predictions"][0],
                # Permissions and admin history point at content types: each must stay its model's.
                "content_types": {m.__name__: ContentType.objects.get_for_model(m).pk for m in apps.get_models()},
            },
            out,
        )


if __name__ == "__main__":
    main(sys.argv[1])
