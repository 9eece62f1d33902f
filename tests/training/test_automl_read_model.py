"""An Automated ML run's read model is computed once (training/automl_selectors.py): the run page
and the API show the same leaderboard, and the API's answer has a typed schema."""

import json
import re

import pytest
from django.utils import timezone

from compute.jobs.models import Job, JobStatus
from compute.models import TargetKind
from compute.services import target_create
from data.models import DataAsset, DataVersion
from training.models import TrainingJobKind

pytestmark = pytest.mark.django_db

SCHEMA = {
    "version": 1,
    "columns": [
        {"name": "age", "semantic_type": "numeric", "physical_type": "double", "excluded": False},
        {"name": "churn", "semantic_type": "categorical", "physical_type": "string", "excluded": False},
    ],
}


@pytest.fixture
def run(api, owner, workspace):
    """An accuracy-ranked run with three trials (one failed) and a completed final model."""
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    asset = DataAsset.objects.create(workspace=workspace, name="customers")
    version = DataVersion.objects.create(asset=asset, version=1, rows=100, columns=2, schema=SCHEMA)
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/automl/",
        {
            "data_version": version.pk,
            "target_column": "churn",
            "target": cluster.pk,
            "settings": {"primary_metric": "accuracy", "infer_limit_ms": 1.0},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    parent = Job.objects.get(pk=response.json()["id"])
    for trial_id, score, latency, error in ((0, 0.7, 0.2, None), (1, 0.9, 2.5, None), (2, None, None, "boom")):
        Job.objects.create(
            workspace=workspace,
            target=cluster,
            kind=TrainingJobKind.AUTOML_TRIAL,
            parent=parent,
            status=JobStatus.FAILED if error else JobStatus.COMPLETED,
            finished_at=timezone.now(),
            spec={"trial": {"trial_id": trial_id, "algorithm": "logreg", "params": {"C": trial_id}, "origin": "seed"}},
            result={
                "trial_result": {
                    "score": score,
                    "metrics": {"accuracy": score} if score else {},
                    "duration_seconds": 1.5,
                    "latency_ms": latency,
                    "error": error,
                }
            },
        )
    Job.objects.create(
        workspace=workspace,
        target=cluster,
        kind=TrainingJobKind.AUTOML_FINAL,
        parent=parent,
        status=JobStatus.COMPLETED,
        result={
            "final_kind": "single",
            "members": [{"trial_id": 0}],
            "validation_score": 0.7,
            "test_metrics": {"accuracy": 0.68, "note": "not a number"},
            "latency_ms": 0.2,
            "infer_limit_met": True,
            "candidates": [{"kind": "single", "score": 0.7, "members": [0], "latency_ms": 0.2, "within_limit": True}],
            "algorithm": "logreg",
        },
    )
    return parent


def test_the_page_and_the_api_rank_the_trials_alike(client, api, owner, workspace, run):
    body = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/automl/{run.pk}/").json()
    board = body["leaderboard"]
    assert [r["trial_id"] for r in board] == [1, 0, 2]  # best accuracy first, the failed trial last
    assert board[0]["params"] == '{"C": 1}' and board[0]["within_infer_limit"] is False
    assert board[2] == {
        "trial_id": 2,
        "job": board[2]["job"],
        "status": "failed",
        "algorithm": "logreg",
        "params": '{"C": 2}',
        "score": None,
        "metrics": {},
        "duration_seconds": 1.5,
        "latency_ms": None,
        "within_infer_limit": True,
        "error": "boom",
    }
    assert body["run"]["id"] == run.pk and body["infer_limit_ms"] == 1.0
    assert body["best_model"]["kind"] == "single" and body["best_model"]["test_metrics"]["accuracy"] == 0.68
    assert body["best_model"]["candidates"] == [
        {"kind": "single", "score": 0.7, "members": [0], "latency_ms": 0.2, "within_limit": True}
    ]

    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/jobs/{run.pk}/").content.decode()
    table = html.split('data-testid="leaderboard"')[1].split("</table>")[0]
    page_order = [int(t) for t in re.findall(r'/jobs/\d+/">(\d+)</a>', table)]
    assert page_order == [r["trial_id"] for r in board]
    assert 'data-testid="best-metrics"' in html and "0.6800" in html


def test_the_api_answers_a_run_before_its_final_model_with_a_null_best_model(api, owner, workspace, run):
    Job.objects.filter(parent=run, kind=TrainingJobKind.AUTOML_FINAL).delete()
    body = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/automl/{run.pk}/").json()
    assert body["best_model"] is None and len(body["leaderboard"]) == 3


def test_the_run_answer_has_a_typed_schema(api, owner):
    schema = json.loads(api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    operation = schema["paths"]["/api/v1/workspaces/{workspace_id}/automl/{job_id}/"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    run_out = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"run", "leaderboard", "best_model", "guardrails"} <= set(run_out["properties"])
    row = run_out["properties"]["leaderboard"]["items"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][row]["properties"]["score"]["type"] == "number"
