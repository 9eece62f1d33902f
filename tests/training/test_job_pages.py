import pytest
from django.utils import timezone

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Artifact, Job, JobLogLine, JobStatus
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


def many_jobs(workspace, target, owner, n):
    now = timezone.now()
    Job.objects.bulk_create(
        [
            Job(
                workspace=workspace,
                target=target,
                kind=DIAGNOSTIC,
                status=JobStatus.COMPLETED,
                display_name=f"job {i}",
                submitted_by=owner,
                spec={},
                result={"accuracy": i / n},
                running_at=now,
                finished_at=now,
            )
            for i in range(n)
        ],
        batch_size=2000,
    )


def test_job_list_at_10000_jobs_uses_a_fixed_number_of_queries(
    client, owner, workspace, target, django_assert_max_num_queries
):
    many_jobs(workspace, target, owner, 10_000)
    client.force_login(owner)
    with django_assert_max_num_queries(12):
        first = client.get(f"/w/{workspace.pk}/jobs/")
    with django_assert_max_num_queries(12):
        last = client.get(f"/w/{workspace.pk}/jobs/?page=200&status=completed")
    assert first.status_code == last.status_code == 200
    assert "10000 jobs" in first.content.decode() and "Page 200 of 200" in last.content.decode()


def test_job_api_list_at_10000_jobs_uses_a_fixed_number_of_queries(
    api, owner, workspace, target, django_assert_max_num_queries
):
    many_jobs(workspace, target, owner, 10_000)
    client = api(owner)
    with django_assert_max_num_queries(10):
        body = client.get(f"/api/v1/workspaces/{workspace.pk}/jobs/?page=3").json()
    assert body["count"] == 10_000 and len(body["results"]) == 50


def test_job_list_filters_and_search(client, owner, workspace, target):
    many_jobs(workspace, target, owner, 30)
    failed = job_submit(
        actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={}, display_name="the odd one"
    )
    Job.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED)
    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/jobs/?status=failed").content.decode()
    assert "the odd one" in html and "job 3<" not in html
    assert "the odd one" in client.get(f"/w/{workspace.pk}/jobs/?q=odd").content.decode()
    assert "the odd one" in client.get(f"/w/{workspace.pk}/jobs/?q=%23{failed.pk}").content.decode()


def test_submit_from_the_form_and_clone(client, owner, workspace, target):
    client.force_login(owner)
    response = client.post(
        f"/w/{workspace.pk}/jobs/new/",
        {
            "kind": "diagnostic",
            "target": target.pk,
            "experiment_name": "smoke",
            "sleep_seconds": "2",
            "display_name": "check",
        },
    )
    job = Job.objects.get()
    assert response.status_code == 302 and job.spec == {"sleep_seconds": 2.0} and job.experiment.name == "smoke"
    clone = client.get(f"/w/{workspace.pk}/jobs/new/?clone={job.pk}").content.decode()
    assert 'value="check (clone)"' in clone and 'value="2.0"' in clone


def test_detail_page_shows_status_history_log_and_artifacts(client, owner, workspace, target):
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    folder = job_artifact_dir(job)
    folder.mkdir(parents=True)
    (folder / "report.json").write_text('{"ok": true}')
    artifact = Artifact.objects.create(job=job, name="report.json", size=12, sha256="a" * 64)
    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/jobs/{job.pk}/").content.decode()
    assert "waiting for a node of cpu to start" in html and "report.json" in html
    download = client.get(f"/w/{workspace.pk}/jobs/{job.pk}/artifacts/{artifact.pk}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b'{"ok": true}'


def test_a_finished_jobs_log_is_read_to_its_end_and_then_no_longer_asked_for(client, owner, workspace, target):
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    for seq, text in enumerate(["first line", "last line"], start=1):
        JobLogLine.objects.create(job=job, seq=seq, at=timezone.now(), text=text)
    client.force_login(owner)
    url = f"/w/{workspace.pk}/jobs/{job.pk}/log/"
    running = client.get(url, {"after": 2}).content.decode()
    assert "?after=2" in running  # queued: more lines may come
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, finished_at=timezone.now())
    page = client.get(url, {"after": 0}).content.decode()
    assert "first line\nlast line" in page and 'hx-trigger="load"' in page and "?after=2" in page
    end = client.get(url, {"after": 2}).content.decode()
    assert "hx-get" not in end and "No log lines" not in end  # the end of a log that has lines

    silent = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    Job.objects.filter(pk=silent.pk).update(status=JobStatus.FAILED, finished_at=timezone.now())
    empty = client.get(f"/w/{workspace.pk}/jobs/{silent.pk}/log/", {"after": 0}).content.decode()
    assert "hx-get" not in empty and "No log lines." in empty


def test_artifacts_of_another_workspace_are_404(client, outsider, owner, workspace, target):
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    artifact = Artifact.objects.create(job=job, name="report.json", size=1, sha256="a" * 64)
    client.force_login(outsider)
    assert client.get(f"/w/{workspace.pk}/jobs/{job.pk}/artifacts/{artifact.pk}/").status_code == 404


def test_compare_puts_parameters_and_metrics_side_by_side(client, owner, workspace, target):
    jobs = [
        job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={"sleep_seconds": s})
        for s in (1, 2)
    ]
    for job, acc in zip(jobs, (0.8, 0.9), strict=True):
        Job.objects.filter(pk=job.pk).update(result={"accuracy": acc})
    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/jobs/compare/?ids={jobs[0].pk}&ids={jobs[1].pk}").content.decode()
    assert "sleep_seconds" in html and "0.8000" in html and "0.9000" in html


def test_compute_pages_render(client, owner, workspace, target):
    client.force_login(owner)
    for path in (
        "",
        "new/",
        "new/?kind=cluster",
        "usage/",
        f"{target.pk}/",
        f"{target.pk}/edit/",
        f"{target.pk}/delete/",
    ):
        assert client.get(f"/w/{workspace.pk}/compute/{path}").status_code == 200, path


def test_reader_sees_compute_but_cannot_create(client, reader, workspace, target):
    client.force_login(reader)
    html = client.get(f"/w/{workspace.pk}/compute/").content.decode()
    assert "cpu" in html and "New compute" not in html
    assert client.get(f"/w/{workspace.pk}/compute/new/").status_code == 403
    assert client.post(f"/w/{workspace.pk}/compute/new/", {"kind": "cluster", "name": "x"}).status_code == 403
