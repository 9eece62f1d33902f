"""After the migration: what populate.py made is reachable through the NEW tree's models and served.

Run by tests/studio/test_migrate_populated.py as `python check.py <handoff.json>` with the new tree
(the repository under test) as the working directory, after its `manage.py migrate` ran on the
database and data directory that populate.py filled. Models are found by class name, whichever app
holds them now; everything else goes through what does not move with the code: the messages queued
in the broker (by task name), the API with the old API token, the scoring URL with the old key.
"""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def model(name: str):
    """The model class called `name`, in whichever app holds it (the test spans moves between apps)."""
    found = [m for m in apps.get_models() if m.__name__ == name]
    if len(found) != 1:
        raise AssertionError(f"expected one model called {name}, found {[m._meta.label for m in found]}")
    return found[0]


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def get_json(client: Client, url: str):
    response = client.get(url)
    check(response.status_code == 200, f"GET {url} answered {response.status_code}: {response.content[:500]!r}")
    return response.json()


def download_sha256(client: Client, url: str) -> str:
    response = client.get(url)
    check(response.status_code == 200, f"GET {url} answered {response.status_code}")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return hashlib.sha256(body).hexdigest()


def check_models(h: dict) -> None:
    """The rows and their relations, through the models as they are now."""
    Job = model("Job")
    train = Job.objects.get(pk=h["train_job_id"])
    check(train.kind == "train" and train.status == "completed", f"train job: {train.kind} {train.status}")
    statuses = list(train.events.order_by("pk").values_list("status", flat=True))
    check(statuses[:1] == ["queued"] and statuses[-1:] == ["completed"], f"train job events: {statuses}")
    check(train.log.exists(), "the train job has no log lines")
    check(train.metrics.filter(name="accuracy").exists(), "the train job has no accuracy metric")
    check(train.artifacts.filter(name="model.skops").exists(), "the train job has no model.skops artifact")
    check(train.node_id == h["node_id"] and train.node.target_id == train.target_id, "the train job's node")
    check(train.events.filter(node_id=h["node_id"]).exists(), "the train job's events lost their node")

    version = model("DataVersion").objects.get(asset_id=h["asset_id"], version=h["data_version"])
    check(version.rows == h["data_rows"] and version.asset.workspace_id == h["workspace_id"], "the data version")
    ingest = model("Ingest").objects.get(pk=h["ingest_id"])
    check(ingest.status == "ready" and ingest.version_id == version.pk, f"the ingest: {ingest.status}")
    check(ingest.job.kind == "ingest" and ingest.job.status == "completed", "the ingest's job")
    check(train.data_version_id == version.pk, "the train job's data version")

    model_version = model("ModelVersion").objects.get(model_id=h["model_id"], version=h["model_version"])
    check(model_version.job_id == train.pk and model_version.data_version_id == version.pk, "model lineage")
    deployment = model("Deployment").objects.get(endpoint_id=h["endpoint_id"])
    check(deployment.model_version_id == model_version.pk, "the deployment's model version")
    check(model("MonitoringBucket").objects.filter(endpoint_id=h["endpoint_id"]).exists(), "monitoring buckets")

    before = h["content_types"]
    after = {name: ContentType.objects.get_for_model(model(name)).pk for name in before}
    lost = {name: (before[name], after[name]) for name in before if after[name] != before[name]}
    check(not lost, f"content types did not follow their models (name: (before, after)): {lost}")

    batch = Job.objects.get(pk=h["batch_job_id"])
    check(batch.kind == "batch_score" and batch.status == "completed", f"batch job: {batch.kind} {batch.status}")


def check_queued_messages_run(h: dict) -> None:
    """The messages the old code queued on the cluster's queue, delivered to this tree's tasks here
    as a node's worker would: the waiting job runs; the others, finished already, run nothing twice."""
    from studio.celery import app

    app.loader.import_default_modules()  # registers every app's tasks
    Job = model("Job")
    check(Job.objects.get(pk=h["waiting_job_id"]).status == "queued", "the waiting job is no longer queued")
    queue_name = model("ComputeTarget").objects.get(pk=h["cluster_id"]).queue
    delivered = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(queue_name)
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            task_name = message.headers["task"]
            check(task_name in app.tasks, f"a queued message names the task {task_name}, which no longer exists")
            args, kwargs, _ = message.decode()
            app.tasks[task_name].apply(args=args, kwargs=kwargs)
            message.ack()
            delivered.append(args)
        queue.close()
    check([h["waiting_job_id"]] in delivered, f"the waiting job's message was not in the queue: {delivered}")
    waiting = Job.objects.get(pk=h["waiting_job_id"])
    check(waiting.status == "completed", f"the waiting job ended {waiting.status}: {waiting.error}")
    check(Job.objects.get(pk=h["train_job_id"]).attempt == 1, "a duplicate message ran the train job again")


def check_served(h: dict) -> None:
    """The same objects through the API (with the old API token) and the scoring URL (the old key)."""
    setup_test_environment()  # lets the test Client's "testserver" host in
    api = Client(HTTP_AUTHORIZATION=f"Bearer {h['api_token']}")
    ws = f"/api/v1/workspaces/{h['workspace_id']}/"

    job = f"{ws}jobs/{h['train_job_id']}/"
    check(get_json(api, job)["status"] == "completed", "the train job through the API")
    for part in ("events/", "log/", "metrics/"):
        check(get_json(api, job + part), f"the train job's {part} through the API are empty")
    artifacts = get_json(api, job + "artifacts/")
    artifacts = artifacts.get("results", artifacts) if isinstance(artifacts, dict) else artifacts
    check(len(artifacts) >= 3, f"the train job's artifacts through the API: {artifacts}")
    for artifact in model("Artifact").objects.filter(job_id=h["train_job_id"]):
        url = f"{job}artifacts/{artifact.pk}/download/"
        check(download_sha256(api, url) == artifact.sha256, f"artifact {artifact.name}: its bytes changed")
    check(get_json(api, f"{ws}jobs/{h['batch_job_id']}/")["status"] == "completed", "the batch job")

    data = f"{ws}data-assets/{h['asset_id']}/versions/{h['data_version']}/"
    check(get_json(api, data)["rows"] == h["data_rows"], "the data version through the API")
    check(get_json(api, data + "preview/")["total_rows"] == h["data_rows"], "the data version's preview")
    check(get_json(api, f"{ws}ingests/{h['ingest_id']}/")["status"] == "ready", "the ingest through the API")

    # New rows go into the moved tables after the old ones (PostgreSQL's id sequences kept with them).
    submitted = api.post(
        f"{ws}jobs/", {"kind": "train", "target": h["cluster_id"], "spec": h["train_spec"]}, "application/json"
    )
    check(submitted.status_code == 201, f"a new train job: {submitted.status_code} {submitted.content[:500]!r}")
    edited = api.post(data + "schema/", {"exclude": ["sex"]}, "application/json")
    check(edited.status_code == 202, f"a schema edit (a new ingest): {edited.status_code} {edited.content[:500]!r}")

    registry = f"{ws}models/{h['model_id']}/versions/{h['model_version']}/"
    get_json(api, registry)
    check(download_sha256(api, registry + "download/") == h["model_sha256"], "the model file changed")

    response = Client().post(
        f"/score/{h['endpoint']}/",
        json.dumps([h["row"]]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {h['endpoint_key']}",
    )
    check(response.status_code == 200, f"scoring answered {response.status_code}: {response.content[:500]!r}")
    check(response.json()["predictions"] == [h["prediction"]], f"the prediction changed: {response.json()}")
    monitoring = get_json(api, f"{ws}endpoints/{h['endpoint_id']}/monitoring/?range=day")
    check(monitoring["total_requests"] >= 1, f"monitoring lost the earlier request: {monitoring}")


if __name__ == "__main__":
    with open(sys.argv[1]) as handoff:
        handoff = json.load(handoff)
    check_models(handoff)
    check_queued_messages_run(handoff)
    check_served(handoff)
    print("reachable and served")
