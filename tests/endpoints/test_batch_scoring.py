"""Batch scoring as a job: submitted through the API and the pages, validated, role-checked, and run
by a real node on a table with a date column, yes/no labels and names with spaces."""

import re

import pandas as pd
import pytest

from compute.jobs.models import Job, JobStatus
from compute.models import TargetKind
from compute.services import target_create
from data.models import DataVersion
from data.services import data_version_from_file, data_version_path
from endpoints import services as endpoint_services
from endpoints.jobs import BATCH_SCORE
from tests.conftest import wait_for
from training.models import TrainingJobKind

from .conftest import churn_frame, register


@pytest.fixture
def cluster(workspace, owner):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


@pytest.fixture
def churn_version(workspace, owner, tmp_path):
    X, y = churn_frame(120, seed=3)
    source = tmp_path / "customers.csv"
    X.assign(churn=y).to_csv(source, index=False)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="customers")


def submit(client, workspace, spec, target):
    return client.post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {"kind": "batch_score", "target": target.pk, "spec": spec},
        format="json",
    )


@pytest.mark.django_db
def test_the_api_queues_batch_scoring_of_a_model_version(
    api, contributor, workspace, model_version, churn_version, cluster
):
    response = submit(
        api(contributor),
        workspace,
        {"model_version_id": model_version.pk, "data_version_id": churn_version.pk},
        cluster,
    )
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.kind, job.status, job.data_version_id) == (BATCH_SCORE, JobStatus.QUEUED, churn_version.pk)
    assert job.spec == {
        "model_version_id": model_version.pk,
        "data_version_id": churn_version.pk,
        "output_asset": "customers-scored",
    }


@pytest.mark.django_db
def test_an_endpoint_stands_for_the_model_its_live_deployment_serves(
    api, owner, workspace, model_version, churn_version, cluster, inference
):
    other = register(workspace, owner, name="churn", max_iter=20)
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    endpoint = created.endpoint
    endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=model_version, target=inference
    )
    endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="green", model_version=other, target=inference
    )
    endpoint.refresh_from_db()
    endpoint_services.traffic_set(actor=owner, endpoint=endpoint, traffic={"blue": 10, "green": 90})
    response = submit(
        api(owner),
        workspace,
        {"endpoint_id": endpoint.pk, "data_version_id": churn_version.pk, "output_asset": "scored"},
        cluster,
    )
    assert response.status_code == 201, response.content
    assert response.json()["spec"]["model_version_id"] == other.pk
    assert response.json()["spec"]["endpoint_id"] == endpoint.pk


@pytest.mark.django_db
def test_bad_batch_scoring_requests_get_clear_4xx(
    api, owner, reader, outsider, workspace, other_workspace, model_version, churn_version, cluster, tmp_path
):
    good = {"model_version_id": model_version.pk, "data_version_id": churn_version.pk}
    assert submit(api(reader), workspace, good, cluster).status_code == 403

    foreign_model = register(other_workspace, outsider, name="theirs")
    source = tmp_path / "theirs.csv"
    churn_frame(30)[0].to_csv(source, index=False)
    foreign_data = data_version_from_file(actor=outsider, workspace=other_workspace, path=source, name="theirs")
    rest = api(owner)
    for spec in (
        {**good, "model_version_id": foreign_model.pk},
        {**good, "data_version_id": foreign_data.pk},
        {"endpoint_id": 987654, "data_version_id": churn_version.pk},
    ):
        response = submit(rest, workspace, spec, cluster)
        assert response.status_code == 404, (spec, response.content)

    narrow = tmp_path / "narrow.csv"
    pd.DataFrame({"tenure": [1, 2, 3], "plan": ["a", "b", "c"]}).to_csv(narrow, index=False)
    lacking = data_version_from_file(actor=owner, workspace=workspace, path=narrow, name="narrow")
    for spec, field in (
        ({**good, "data_version_id": lacking.pk}, "data_version_id"),
        ({"data_version_id": churn_version.pk}, "model_version_id"),
        ({**good, "model_version_id": "seven"}, "model_version_id"),
        ({**good, "output_asset": "../etc"}, "output_asset"),
    ):
        response = submit(rest, workspace, spec, cluster)
        assert response.status_code == 400, (spec, response.content)
        assert field in response.json()["error"]["fields"], response.json()
    assert not Job.objects.filter(kind=BATCH_SCORE).exists()


@pytest.mark.django_db
def test_the_model_page_links_to_a_prefilled_batch_scoring_form_that_submits_and_clones(
    client, owner, workspace, model_version, churn_version, cluster
):
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/models/{model_version.model_id}/v/{model_version.version}/")
    assert page.status_code == 200
    link = f"/w/{workspace.pk}/jobs/new/?kind=batch_score&amp;model_version_id={model_version.pk}"
    assert link in page.content.decode()

    form = client.get(link.replace("&amp;", "&"))
    assert form.status_code == 200
    html = form.content.decode()
    assert f'<option value="{model_version.pk}" selected>' in html
    posted = client.post(
        f"/w/{workspace.pk}/jobs/new/",
        {
            "kind": "batch_score",
            "target": cluster.pk,
            "model_version_id": model_version.pk,
            "data_version_id": churn_version.pk,
            "output_asset": "predictions",
            "experiment_name": "Default",
        },
    )
    assert posted.status_code == 302, posted.content.decode()[:3000]
    job = Job.objects.get(kind=BATCH_SCORE)
    assert job.spec["output_asset"] == "predictions"

    clone = client.get(f"/w/{workspace.pk}/jobs/new/?clone={job.pk}")
    assert clone.status_code == 200
    html = clone.content.decode()
    assert 'value="predictions"' in html and f'<option value="{churn_version.pk}" selected>' in html


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_node_scores_a_messy_table_into_a_new_version_with_the_labels_as_written(
    api, client, owner, workspace, agent, broker, tmp_path
):
    from tests.training.test_real_columns import churn_with_dates, train_and_register

    source = tmp_path / "churn.csv"
    table = churn_with_dates(n=240, seed=4)
    table.to_csv(source, index=False)
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="churn dates")
    model_version = train_and_register(api, owner, workspace, version, "Churn", "churn")
    cluster = Job.objects.get(kind=TrainingJobKind.TRAIN).target

    response = submit(
        api(owner), workspace, {"model_version_id": model_version.pk, "data_version_id": version.pk}, cluster
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    done = wait_for(
        lambda: Job.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=120,
        message="the batch scoring job",
    )
    assert done.status == JobStatus.COMPLETED, done.error
    scored = DataVersion.objects.get(pk=done.result["output_data_version_id"])
    assert (scored.asset.name, scored.rows, done.result["rows"]) == ("churn dates-scored", 240, 240)
    frame = pd.read_parquet(data_version_path(scored))
    assert list(frame.columns[: len(table.columns)]) == list(table.columns)  # the input, names as written
    assert set(frame["prediction"]) <= {"yes", "no"} and frame["prediction"].nunique() == 2
    assert {"probability_no", "probability_yes"} <= set(frame.columns)
    assert frame["signup date"].astype(str).tolist()[:3] == table["signup date"].tolist()[:3]

    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/jobs/{job_id}/").content.decode()
    assert f"/w/{workspace.pk}/data/{scored.asset_id}/v/{scored.version}/" in page
    assert "Scored 240 of 240 rows" in "\n".join(done.log.values_list("text", flat=True))


@pytest.mark.django_db
def test_the_endpoint_page_scores_a_data_version_with_the_model_it_serves(
    client, owner, workspace, model_version, churn_version, cluster, inference, tmp_path
):
    endpoint = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-api").endpoint
    endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=model_version, target=inference
    )
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode()
    form = re.search(
        r'<form method="post" action="([^"]+)" novalidate data-testid="batch-score-form">(.*?)</form>', page, re.S
    )
    assert form, "the endpoint page offers batch scoring"
    assert f'name="model_version_id" value="{model_version.pk}"' in form.group(2)
    assert f'<option value="{churn_version.pk}">' in form.group(2)
    # A classifier takes rows: no "stored history" to offer, and the data is asked for.
    assert "stored history" not in form.group(2) and "Choose a data version…" in form.group(2)

    # A model that learnt from an asset starts from that asset's newest version (new rows come as versions).
    model_version.data_version = churn_version
    model_version.save(update_fields=["data_version"])
    X, _ = churn_frame(30, seed=4)
    newer_source = tmp_path / "customers new.csv"
    X.to_csv(newer_source, index=False)
    newer = data_version_from_file(actor=owner, workspace=workspace, path=newer_source, name="customers")
    page = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode()
    assert f'<option value="{newer.pk}" selected>customers v2 (30 rows)</option>' in page
    posted = client.post(
        form.group(1),
        {
            "kind": "batch_score",
            "model_version_id": model_version.pk,
            "experiment_name": "Default",
            "data_version_id": churn_version.pk,
            "target": cluster.pk,
            "output_asset": "",
        },
    )
    assert posted.status_code == 302
    job = Job.objects.get(kind=BATCH_SCORE)
    assert posted.url == f"/w/{workspace.pk}/jobs/{job.pk}/"
    assert job.spec["model_version_id"] == model_version.pk and job.spec["output_asset"] == "customers-scored"


@pytest.mark.django_db
def test_a_reader_sees_no_batch_scoring_form(client, reader, owner, workspace, model_version, churn_version, inference):
    endpoint = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-api").endpoint
    endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=model_version, target=inference
    )
    client.force_login(reader)
    page = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode()
    assert "batch-score-form" not in page
