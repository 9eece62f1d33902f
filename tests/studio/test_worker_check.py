"""One real Celery task, reachable from the UI, through both brokers and a real worker process."""

import pytest

from studio.models import WorkerCheck
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker]


def test_worker_check_from_the_page_is_run_by_a_real_worker(client, owner, start_worker, broker):
    worker = start_worker(name=f"canary-{broker.kind}")
    client.force_login(owner)
    pending = client.post("/worker-checks/")
    assert pending.status_code == 200 and "Waiting for a worker" in pending.content.decode()
    check = WorkerCheck.objects.get()
    done = wait_for(
        lambda: WorkerCheck.objects.filter(pk=check.pk, completed_at__isnull=False).first(),
        timeout=30,
        message=f"the canary to run ({broker.kind}):\n{worker.output()[-2000:]}",
    )
    assert done.broker == ("embedded" if broker.kind == "embedded" else "redis")
    assert done.round_trip_ms < 10_000
    fragment = client.get(f"/worker-checks/{check.pk}/").content.decode()
    assert "A worker ran the check" in fragment
    assert client.get("/health/").json()["workers_consuming"] is True


def test_worker_check_through_the_api(api, owner, start_worker, broker):
    start_worker(name=f"canary-api-{broker.kind}")
    client = api(owner)
    created = client.post("/api/v1/worker-checks/")
    assert created.status_code == 202
    check_id = created.json()["id"]
    wait_for(
        lambda: client.get(f"/api/v1/worker-checks/{check_id}/").json()["completed_at"],
        timeout=30,
        message="the canary to complete",
    )


def test_without_a_worker_the_check_stays_pending(client, owner, transactional_db):
    client.force_login(owner)
    client.post("/worker-checks/")
    check = WorkerCheck.objects.get()
    assert check.completed_at is None
    assert "Waiting for a worker" in client.get(f"/worker-checks/{check.pk}/").content.decode()
