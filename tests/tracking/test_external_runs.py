"""An external run (started by the MLflow client) is a job like any other for the studio, that the
engine never re-queues, fails or runs."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from compute.jobs.models import Job, JobStatus
from compute.jobs.services import job_cancel, jobs_reconcile
from tracking.base import TrackingAccess
from tracking.services import run_create, run_update
from training.models import Experiment
from workspaces.policy import Action

pytestmark = pytest.mark.django_db


@pytest.fixture
def external_run(workspace, contributor):
    experiment = Experiment.objects.create(workspace=workspace, name="laptop runs")
    access = TrackingAccess(user=contributor, workspace=workspace, action=Action.WRITE)
    return run_create(access=access, experiment=experiment, run_name="from a laptop — ✓", tags=[])


def test_the_reconciler_leaves_an_old_external_run_running(external_run):
    Job.objects.filter(pk=external_run.pk).update(started_at=timezone.now() - timedelta(days=2))
    jobs_reconcile(now=timezone.now() + timedelta(hours=1))
    external_run.refresh_from_db()
    assert external_run.status == JobStatus.RUNNING and external_run.attempt == 0


def test_an_external_run_shows_in_the_job_list_and_page(client, contributor, workspace, external_run):
    client.force_login(contributor)
    listing = client.get(f"/w/{workspace.pk}/jobs/").content.decode()
    assert "from a laptop — ✓" in listing
    # No compute runs it: the list and the page say so, not that its compute was deleted.
    assert "none (MLflow client)" in listing and "(deleted)" not in listing
    page = client.get(f"/w/{workspace.pk}/jobs/{external_run.pk}/").content.decode()
    assert "External run logged by an MLflow client" in page and "deleted compute" not in page
    assert "the MLflow client's machine" in page and "Attempt" not in page and "Time limit" not in page
    # Its log is empty: once it has ended, the page says so instead of asking again every second.
    log = client.get(f"/w/{workspace.pk}/jobs/{external_run.pk}/log/?after=0").content.decode()
    assert "hx-get" in log  # still running: more may come
    job_cancel(actor=contributor, job=external_run)
    log = client.get(f"/w/{workspace.pk}/jobs/{external_run.pk}/log/?after=0").content.decode()
    assert "hx-get" not in log and "No log lines: an MLflow client's output stays where it ran." in log


def test_an_external_run_can_be_canceled_from_the_studio_and_then_stays_so(contributor, workspace, external_run):
    job_cancel(actor=contributor, job=external_run)
    external_run.refresh_from_db()
    assert external_run.status == JobStatus.CANCELED
    access = TrackingAccess(user=contributor, workspace=workspace, action=Action.WRITE)
    run_update(access=access, run=external_run, status="FINISHED")
    assert external_run.status == JobStatus.CANCELED


def test_a_reader_cannot_start_a_run(reader, workspace):
    experiment = Experiment.objects.create(workspace=workspace, name="x")
    access = TrackingAccess(user=reader, workspace=workspace, action=Action.WRITE)
    with pytest.raises(PermissionDenied, match="does not allow"):
        run_create(access=access, experiment=experiment)
    assert not Job.objects.exists()
