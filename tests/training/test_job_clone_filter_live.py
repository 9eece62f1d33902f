"""Job pages: clone and edit for every kind that can be submitted, the trial/ensemble filter, and
the live part of a job page that drops Cancel once the job has ended."""

import re

import pytest
from django.utils import timezone

from compute.jobs import kinds
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobStatus
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from data.models import DataAsset, DataVersion
from training.models import TrainingJobKind
from training.submit_forms import SUBMIT_FORMS

pytestmark = pytest.mark.django_db

SCHEMA = {
    "version": 1,
    "columns": [
        {"name": "age", "semantic_type": "numeric", "physical_type": "double", "excluded": False},
        {"name": "churn", "semantic_type": "categorical", "physical_type": "string", "excluded": False},
    ],
}


@pytest.fixture
def cluster(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


@pytest.fixture
def version(workspace):
    asset = DataAsset.objects.create(workspace=workspace, name="customers")
    return DataVersion.objects.create(asset=asset, version=1, rows=100, columns=2, schema=SCHEMA)


@pytest.fixture
def automl_run(api, owner, workspace, cluster, version):
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/automl/",
        {
            "data_version": version.pk,
            "target_column": "churn",
            "target": cluster.pk,
            "display_name": "churn search",
            "register_as": "churner",
            "settings": {
                "timeout_s": 120,
                "primary_metric": "accuracy",
                "max_trials": 7,
                "column_overrides": {"age": {"impute": "mean"}},
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return Job.objects.get(pk=response.json()["id"])


def finish(job, status=JobStatus.COMPLETED):
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=status, running_at=now, finished_at=now)
    job.refresh_from_db()
    return job


def child(parent, kind, name):
    return Job.objects.create(
        workspace=parent.workspace,
        target=parent.target,
        kind=kind,
        parent=parent,
        status=JobStatus.COMPLETED,
        display_name=name,
        spec={},
    )


def clone_link(html: str) -> str | None:
    match = re.search(r'href="([^"]*clone=\d+)"[^>]*>Clone and edit<', html)
    return match.group(1).replace("&amp;", "&") if match else None


# --- Clone and edit ------------------------------------------------------------------------------
def test_an_automated_ml_run_clones_into_the_prefilled_wizard(client, owner, workspace, automl_run):
    finish(automl_run)
    client.force_login(owner)
    detail = client.get(f"/w/{workspace.pk}/jobs/{automl_run.pk}/").content.decode()
    link = clone_link(detail)
    assert link == f"/w/{workspace.pk}/jobs/automl/new/?clone={automl_run.pk}"
    wizard = client.get(link)
    assert wizard.status_code == 200
    html = wizard.content.decode()
    assert 'value="churn"' in html  # the target column
    assert re.search(r'<option value="accuracy" selected', html)
    assert 'value="2.0"' in html  # 120 s as minutes
    assert 'value="7"' in html  # max trials
    assert 'value="churner"' in html and 'value="churn search (clone)"' in html

    # The wizard's column table (loaded by htmx with the clone's id) shows the run's overrides.
    assert f'id="id_clone" name="clone" value="{automl_run.pk}"' in html
    columns = client.get(
        f"/w/{workspace.pk}/jobs/automl/columns/",
        {"data_version_id": automl_run.data_version_id, "target_column": "churn", "clone": automl_run.pk},
    ).content.decode()
    assert re.search(r'<option value="mean" selected>', columns)

    # The generic clone URL of the Jobs page sends an Automated ML run to the wizard, never a 404.
    redirected = client.get(f"/w/{workspace.pk}/jobs/new/?clone={automl_run.pk}")
    assert redirected.status_code == 302 and redirected["Location"] == link


def test_a_train_job_clones_into_the_submit_form(client, owner, workspace, cluster, version):
    job = finish(
        job_submit(
            actor=owner,
            workspace=workspace,
            kind=TrainingJobKind.TRAIN,
            target=cluster,
            spec={
                "data_version_id": version.pk,
                "target_column": "churn",
                "algorithm": "random_forest",
                "hyperparameters": {},
                "validation": {"method": "cv", "n_folds": 4},
            },
        )
    )
    client.force_login(owner)
    link = clone_link(client.get(f"/w/{workspace.pk}/jobs/{job.pk}/").content.decode())
    assert link == f"/w/{workspace.pk}/jobs/new/?clone={job.pk}"
    html = client.get(link).content.decode()
    assert 'value="churn"' in html and re.search(r'<option value="random_forest" selected', html)


@pytest.mark.parametrize("kind", [k for k, _ in kinds.CHOICES if k not in SUBMIT_FORMS and k != TrainingJobKind.AUTOML])
def test_a_job_no_form_submits_has_no_clone_button_and_its_clone_url_is_not_an_error(
    client, owner, workspace, cluster, kind
):
    job = Job.objects.create(
        workspace=workspace, target=cluster, kind=kind, status=JobStatus.COMPLETED, display_name="done", spec={}
    )
    client.force_login(owner)
    detail = client.get(f"/w/{workspace.pk}/jobs/{job.pk}/").content.decode()
    assert "Clone and edit" not in detail and "Delete…" in detail
    response = client.get(f"/w/{workspace.pk}/jobs/new/?clone={job.pk}", follow=True)
    assert response.status_code == 200
    assert "cannot be cloned" in response.content.decode()


@pytest.mark.parametrize("kind", list(SUBMIT_FORMS))
def test_every_kind_the_form_submits_clones_into_it(client, owner, workspace, cluster, kind):
    job = Job.objects.create(
        workspace=workspace, target=cluster, kind=kind, status=JobStatus.COMPLETED, display_name="x", spec={}
    )
    client.force_login(owner)
    link = clone_link(client.get(f"/w/{workspace.pk}/jobs/{job.pk}/").content.decode())
    assert link == f"/w/{workspace.pk}/jobs/new/?clone={job.pk}"
    assert client.get(link).status_code == 200


# --- The kind filter -----------------------------------------------------------------------------
def test_the_trial_and_ensemble_filters_list_child_jobs(client, owner, workspace, automl_run):
    child(automl_run, TrainingJobKind.AUTOML_TRIAL, "trial 1 of churn")
    child(automl_run, TrainingJobKind.AUTOML_FINAL, "ensemble of churn")
    client.force_login(owner)
    trials = client.get(f"/w/{workspace.pk}/jobs/?kind=automl_trial").content.decode()
    assert "trial 1 of churn" in trials and "ensemble of churn" not in trials
    ensembles = client.get(f"/w/{workspace.pk}/jobs/?kind=automl_final").content.decode()
    assert "ensemble of churn" in ensembles and "trial 1 of churn" not in ensembles
    # With no kind chosen, the list stays top-level: trials are listed under their run.
    everything = client.get(f"/w/{workspace.pk}/jobs/").content.decode()
    assert "churn search" in everything and "trial 1 of churn" not in everything


# --- The live part ---------------------------------------------------------------------------------
def test_the_live_part_drops_cancel_and_stops_polling_when_the_job_ends(client, owner, workspace, cluster):
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={})
    client.force_login(owner)
    live_url = f"/w/{workspace.pk}/jobs/{job.pk}/?part=live"
    running = client.get(live_url, headers={"HX-Request": "true"})
    assert running.status_code == 200 and 'data-testid="cancel-job"' in running.content.decode()

    finish(job)
    ended = client.get(live_url, headers={"HX-Request": "true"})
    html = ended.content.decode()
    assert ended.status_code == 286  # htmx stops polling on 286
    assert 'data-testid="cancel-job"' not in html
    assert 'hx-swap-oob="true"' in html and "Clone and edit" in html and "Delete…" in html
