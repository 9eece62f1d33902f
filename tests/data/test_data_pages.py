"""Data pages and deletion rules, on versions made by the real engine (no worker needed)."""

import pytest

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from data.dataio import ingest, profile, sniff
from data.jobs import INGEST
from data.models import DataAsset, DataVersion
from data.services import data_asset_delete, data_version_delete, data_version_path
from training.models import TrainingJobKind

pytestmark = pytest.mark.django_db

CSV = "name,score,when,formula\n" + "".join(f"p{i},{i * 1.5},2024-01-{1 + i % 28:02d},=1+{i}\n" for i in range(120))


@pytest.fixture
def version(owner, workspace, tmp_path):
    """A real version: the engine's Parquet and profile, stored where the studio keeps them."""
    source = tmp_path / "scores.csv"
    source.write_text(CSV)
    staged = tmp_path / "scores.parquet"
    result = ingest(source, sniff(source, "scores.csv"), staged)
    asset = DataAsset.objects.create(workspace=workspace, name="scores", created_by=owner)
    v = DataVersion.objects.create(
        asset=asset,
        version=1,
        rows=result.rows,
        columns=len(result.schema.columns),
        schema=result.schema.to_json(),
        profile=profile(staged, result.schema),
        parquet_size=staged.stat().st_size,
        source_name="scores.csv",
        created_by=owner,
    )
    path = data_version_path(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged.replace(path)
    return v


def page(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_list_detail_and_version_tabs_render(client, reader, workspace, version):
    base = f"/w/{workspace.pk}/data/"
    assert "scores" in page(client, reader, base) and "120" in page(client, reader, base)
    assert "v1" in page(client, reader, f"{base}{version.asset_id}/")
    vbase = f"{base}{version.asset_id}/v/1/"
    assert "score" in page(client, reader, vbase)
    preview = page(client, reader, vbase + "?tab=preview&page=3")
    assert "Rows 101–120 of 120" in preview and "p119" in preview and "p99" not in preview
    profile_html = page(client, reader, vbase + "?tab=profile")
    assert 'data-chart="chart-missing"' in profile_html and "plotly" in profile_html
    schema_html = page(client, reader, vbase + "?tab=schema")
    assert "Save as version 2" not in schema_html  # a Reader cannot edit
    assert "<form" not in schema_html.split("<h2>Schema</h2>")[1]  # nor is offered a form to fill in
    assert "Change a column's type" not in schema_html


def test_search_and_sort(client, owner, workspace, version):
    DataAsset.objects.create(workspace=workspace, name="other")
    html = page(client, owner, f"/w/{workspace.pk}/data/?q=sco")
    assert "scores" in html and ">other<" not in html
    assert page(client, owner, f"/w/{workspace.pk}/data/?sort=-rows").index("scores") < page(
        client, owner, f"/w/{workspace.pk}/data/?sort=-rows"
    ).index("other")


def test_csv_download_neutralises_formulas(client, reader, workspace, version):
    client.force_login(reader)
    response = client.get(f"/w/{workspace.pk}/data/{version.asset_id}/v/1/download.csv")
    text = b"".join(response.streaming_content).decode()
    assert "'=1+3" in text and "\n=1" not in text and ",=1" not in text
    parquet = client.get(f"/w/{workspace.pk}/data/{version.asset_id}/v/1/download.parquet")
    assert b"".join(parquet.streaming_content)[:4] == b"PAR1"


def test_schema_edit_from_the_page_queues_an_ingest(client, owner, workspace, version):
    client.force_login(owner)
    response = client.post(
        f"/w/{workspace.pk}/data/{version.asset_id}/v/1/schema/", {"type_1": "integer", "exclude_3": "on"}
    )
    assert response.status_code == 302
    job = Job.objects.get(kind=INGEST)
    assert job.data_version == version


def test_deleting_a_version_in_use_is_refused_and_names_the_job(owner, workspace, version):
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = Job.objects.create(
        workspace=workspace, target=target, kind=TrainingJobKind.TRAIN, data_version=version, display_name="churn model"
    )
    with pytest.raises(Exception, match=f"#{job.pk} \\(churn model\\)"):
        data_version_delete(actor=owner, version=version)
    with pytest.raises(Exception, match="churn model"):
        data_asset_delete(actor=owner, asset=version.asset)
    assert data_version_path(version).exists()
    job.delete()
    freed = data_version_delete(actor=owner, version=version)
    assert freed > 0 and not DataVersion.objects.exists()


def test_a_reader_cannot_delete(reader, version):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        data_version_delete(actor=reader, version=version)


def test_another_workspace_sees_404_everywhere(client, outsider, workspace, version):
    client.force_login(outsider)
    for url in (
        f"/w/{workspace.pk}/data/",
        f"/w/{workspace.pk}/data/{version.asset_id}/",
        f"/w/{workspace.pk}/data/{version.asset_id}/v/1/download.csv",
    ):
        assert client.get(url).status_code == 404
