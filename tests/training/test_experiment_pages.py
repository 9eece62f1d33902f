"""The experiment pages: the list, the run table (chosen metric and parameter columns, sorted by
any of them, empty values last), the compare view (histories overlaid, parameters side by side)."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.metrics import metrics_save
from compute.jobs.models import Job, JobParam, JobStatus, Metric
from training import experiment_selectors as selectors
from training.experiment_services import experiment_create
from training.models import Experiment, TrainingJobKind

pytestmark = pytest.mark.django_db

EXPERIMENT = "Churn — été 2026 (v2)"
LOSS = "val loss/ℓ2"  # spaces, a slash and unicode, as MLflow allows
LR = "learning rate η"


@pytest.fixture
def experiment(workspace, owner):
    return Experiment.objects.create(workspace=workspace, name=EXPERIMENT, created_by=owner)


def make_run(experiment, name, *, kind="external", status=JobStatus.COMPLETED, metrics=None, params=None, **fields):
    """A run of `experiment` with its latest metrics ({name: value or [values by step]}) and params."""
    now = timezone.now()
    job = Job.objects.create(
        workspace=experiment.workspace,
        experiment=experiment,
        kind=kind,
        status=status,
        display_name=name,
        running_at=now - timedelta(seconds=30),
        finished_at=None if status in JobStatus.active() else now,
        **fields,
    )
    rows = []
    for metric, values in (metrics or {}).items():
        values = values if isinstance(values, list) else [values]
        rows += [
            Metric(job=job, name=metric, step=step, value=value, at=now + timedelta(seconds=step))
            for step, value in enumerate(values)
        ]
    metrics_save(rows)
    JobParam.objects.bulk_create([JobParam(job=job, key=key, value=value) for key, value in (params or {}).items()])
    return job


def run_names(html: str) -> list[str]:
    return re.findall(r'<tr data-run="\d+">\s*<td>.*?</td>\s*<td><a href="[^"]+">([^<]*)</a>', html, re.S)


def page(client, experiment, query=""):
    response = client.get(f"/w/{experiment.workspace_id}/experiments/{experiment.pk}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_experiment_list_shows_runs_count_and_last_run(client, reader, workspace, experiment):
    make_run(experiment, "a")
    make_run(experiment, "deleted", deleted_at=timezone.now())
    Experiment.objects.create(workspace=workspace, name="empty one")
    client.force_login(reader)
    html = client.get(f"/w/{workspace.pk}/experiments/").content.decode()
    assert "Churn — été 2026 (v2)" in html and "empty one" in html
    experiments = {e.name: e for e in selectors.experiment_list_with_runs(workspace=workspace)}
    assert experiments[EXPERIMENT].run_count == 1 and experiments["empty one"].run_count == 0
    assert experiments["empty one"].last_run_at is None
    assert "New experiment" not in html  # a reader cannot create one


def test_experiment_list_empty_state(client, reader, workspace):
    client.force_login(reader)
    assert 'data-testid="experiments-empty"' in client.get(f"/w/{workspace.pk}/experiments/").content.decode()


def test_contributor_creates_an_experiment_with_a_messy_name(client, contributor, workspace):
    client.force_login(contributor)
    response = client.post(f"/w/{workspace.pk}/experiments/", {"name": "  Ünïcode & <b>spaces</b>  "})
    experiment = Experiment.objects.get(workspace=workspace)
    assert experiment.name == "Ünïcode & <b>spaces</b>"
    assert response.status_code == 302 and response.url == f"/w/{workspace.pk}/experiments/{experiment.pk}/"
    html = page(client, experiment)
    assert "Ünïcode &amp; &lt;b&gt;spaces&lt;/b&gt;" in html and "<b>spaces</b>" not in html
    again = client.post(f"/w/{workspace.pk}/experiments/", {"name": "Ünïcode & <b>spaces</b>"})
    assert again.status_code == 200 and "already exists" in again.content.decode()
    bad = client.post(f"/w/{workspace.pk}/experiments/", {"name": "tab\there"})
    assert bad.status_code == 200 and "control characters" in bad.content.decode()


def test_reader_cannot_create_an_experiment(client, reader, workspace):
    client.force_login(reader)
    assert client.post(f"/w/{workspace.pk}/experiments/", {"name": "x"}).status_code == 403
    with pytest.raises(Exception, match="does not allow"):
        experiment_create(actor=reader, workspace=workspace, name="x")
    assert not Experiment.objects.exists()


def test_run_table_shows_all_kinds_of_runs_but_not_trials_or_deleted_ones(client, reader, experiment):
    make_run(experiment, "laptop run", kind="external")
    make_run(experiment, "train run", kind=TrainingJobKind.TRAIN)
    automl = make_run(experiment, "automl run", kind=TrainingJobKind.AUTOML)
    make_run(experiment, "trial 1", kind=TrainingJobKind.AUTOML_TRIAL, parent=automl)
    make_run(experiment, "gone", deleted_at=timezone.now())
    make_run(Experiment.objects.create(workspace=experiment.workspace, name="other"), "elsewhere")
    client.force_login(reader)
    assert sorted(run_names(page(client, experiment))) == ["automl run", "laptop run", "train run"]
    assert sorted(run_names(page(client, experiment, "?trials=1"))) == [
        "automl run",
        "laptop run",
        "train run",
        "trial 1",
    ]


def test_metric_and_param_columns_are_the_users_choice(client, reader, experiment):
    make_run(experiment, "r1", metrics={LOSS: [0.9, 0.5], "accuracy": 0.8}, params={LR: "0.01", "seed": "7"})
    client.force_login(reader)
    default = page(client, experiment)  # the first metrics, no parameters, until the user chooses
    assert f"{LOSS}</a>" in default and "accuracy</a>" in default and f"{LR}</a>" not in default
    chosen = page(client, experiment, f"?cols=1&metrics={LOSS}&params={LR}&metrics=unknown")
    assert f"{LOSS}</a>" in chosen and f"{LR}</a>" in chosen and "accuracy</a>" not in chosen
    assert "0.5000" in chosen and "<code>0.01</code>" in chosen  # the latest value, the step-1 one
    # the picker lists every metric and parameter present, and keeps the choice in the links
    assert f'name="metrics" value="{LOSS}" checked' in chosen and 'name="params" value="seed">' in chosen
    assert "metrics=val+loss%2F%E2%84%932" in chosen


def test_sort_by_a_metric_with_runs_missing_it_last(client, reader, experiment):
    make_run(experiment, "mid", metrics={LOSS: 0.5})
    make_run(experiment, "none", metrics={"other": 1})
    make_run(experiment, "low", metrics={LOSS: [9, 0.1]})
    make_run(experiment, "high", metrics={LOSS: 0.9})
    client.force_login(reader)
    base = f"?cols=1&metrics={LOSS}&sort="
    assert run_names(page(client, experiment, base + f"metrics.{LOSS}")) == ["low", "mid", "high", "none"]
    assert run_names(page(client, experiment, base + f"-metrics.{LOSS}")) == ["high", "mid", "low", "none"]


def test_sort_by_a_param_name_and_duration(client, reader, experiment):
    make_run(experiment, "b", params={LR: "0.2"})
    make_run(experiment, "a", params={LR: "0.1"})
    make_run(experiment, "c")
    client.force_login(reader)
    assert run_names(page(client, experiment, f"?sort=params.{LR}")) == ["a", "b", "c"]
    assert run_names(page(client, experiment, "?sort=name")) == ["a", "b", "c"]
    assert run_names(page(client, experiment, "?sort=-created")) == ["c", "a", "b"]
    assert len(run_names(page(client, experiment, "?sort=-duration"))) == 3


def test_an_unknown_sort_is_said_and_the_default_used(client, reader, experiment):
    make_run(experiment, "a")
    client.force_login(reader)
    html = page(client, experiment, "?sort=bogus")
    assert "Sort by one of" in html and run_names(html) == ["a"]


def test_run_table_is_paginated_by_50(client, reader, experiment):
    for i in range(51):
        make_run(experiment, f"run {i}", metrics={LOSS: i})
    client.force_login(reader)
    first = page(client, experiment, f"?cols=1&metrics={LOSS}&sort=metrics.{LOSS}")
    assert len(run_names(first)) == 50 and "51 runs" in first and "Page 1 of 2" in first
    second = page(client, experiment, f"?cols=1&metrics={LOSS}&sort=metrics.{LOSS}&page=2")
    assert run_names(second) == ["run 50"]


def test_another_workspaces_experiment_is_not_found(client, outsider, other_workspace, experiment):
    client.force_login(outsider)
    assert client.get(f"/w/{other_workspace.pk}/experiments/{experiment.pk}/").status_code == 404
    assert client.get(f"/w/{experiment.workspace_id}/experiments/{experiment.pk}/").status_code == 404
    ids = "&".join(f"ids={make_run(experiment, n).pk}" for n in "ab")
    assert client.get(f"/w/{other_workspace.pk}/experiments/{experiment.pk}/compare/?{ids}").status_code == 404


@pytest.mark.parametrize("runs", [10, 100])
def test_run_table_costs_a_fixed_number_of_queries(client, reader, experiment, runs, django_assert_max_num_queries):
    for i in range(runs):
        make_run(experiment, f"r{i}", metrics={LOSS: i, "acc": i / 100}, params={LR: str(i), "seed": "1"})
    client.force_login(reader)
    query = f"?cols=1&metrics={LOSS}&metrics=acc&params={LR}&params=seed&sort=-metrics.{LOSS}"
    page(client, experiment, query)  # per-process caches
    with django_assert_max_num_queries(11):
        html = page(client, experiment, query)
    assert len(run_names(html)) == min(runs, 50)


def test_a_job_page_links_its_experiment(client, reader, experiment):
    run = make_run(experiment, "r", kind=DIAGNOSTIC)
    client.force_login(reader)
    html = client.get(f"/w/{experiment.workspace_id}/jobs/{run.pk}/").content.decode()
    assert f'href="/w/{experiment.workspace_id}/experiments/{experiment.pk}/"' in html


def test_the_run_table_polls_while_a_run_is_active(client, reader, experiment):
    make_run(experiment, "done")
    client.force_login(reader)
    assert 'hx-trigger="every 3s"' not in page(client, experiment)
    make_run(experiment, "running", status=JobStatus.RUNNING, metrics={LOSS: 1})
    html = page(client, experiment)
    assert 'hx-trigger="every 3s"' in html
    fragment = client.get(f"/w/{experiment.workspace_id}/experiments/{experiment.pk}/", headers={"HX-Request": "true"})
    assert "<html" not in fragment.content.decode() and "running" in fragment.content.decode()


# --- Compare ------------------------------------------------------------------------------------
def compare(client, experiment, runs, query=""):
    ids = "&".join(f"ids={run.pk}" for run in runs)
    return client.get(f"/w/{experiment.workspace_id}/experiments/{experiment.pk}/compare/?{ids}{query}")


def figures(html: str) -> dict:
    found = re.findall(r'<script id="(history-\d+)" type="application/json">(.*?)</script>', html, re.S)
    return {key: json.loads(body) for key, body in found}


def test_compare_overlays_metric_histories_and_puts_params_side_by_side(client, reader, experiment):
    a = make_run(experiment, "run A", metrics={LOSS: [3, 2, 1]}, params={LR: "0.1", "seed": "7"})
    b = make_run(experiment, "run B", metrics={LOSS: [4, 3], "acc": 0.5}, params={LR: "0.2", "seed": "7"})
    client.force_login(reader)
    response = compare(client, experiment, [a, b])
    html = response.content.decode()
    assert response.status_code == 200
    charts = figures(html)
    traces = {trace["name"]: trace for figure in charts.values() for trace in figure["data"]}
    loss = next(f for f in charts.values() if f["layout"]["yaxis"]["title"]["text"] == LOSS)
    assert [t["name"] for t in loss["data"]] == [f"run A #{a.pk}", f"run B #{b.pk}"]
    assert loss["data"][0]["x"] == [0, 1, 2] and loss["data"][0]["y"] == [3, 2, 1]
    assert loss["data"][1]["y"] == [4, 3] and f"run B #{b.pk}" in traces
    rows = {
        key: bool(flag)
        for flag, key in re.findall(r'<tr( class="differs")? data-testid="param-row"><th>([^<]*)</th>', html)
    }
    assert rows == {LR: True, "seed": False}
    timed = figures(compare(client, experiment, [a, b], "&x=time").content.decode())
    first = next(iter(timed.values()))
    assert first["layout"]["xaxis"]["title"]["text"] == "time" and str(first["data"][0]["x"][0]).startswith("20")


def test_compare_downsamples_long_histories(client, reader, experiment):
    a = make_run(experiment, "long", metrics={"loss": [float(i) for i in range(2000)]})
    b = make_run(experiment, "short", metrics={"loss": [1.0]})
    comparison = selectors.run_comparison(runs=[a, b])
    steps, _, values = comparison.histories["loss"][a.pk]
    assert len(values) == selectors.MAX_POINTS and steps[0] == 0 and steps[-1] == 1999
    client.force_login(reader)
    assert compare(client, experiment, [a, b]).status_code == 200


def test_compare_refuses_runs_of_another_experiment_and_too_many(client, reader, experiment, workspace):
    a = make_run(experiment, "a")
    other = make_run(Experiment.objects.create(workspace=workspace, name="other"), "b")
    gone = make_run(experiment, "gone", deleted_at=timezone.now())
    client.force_login(reader)
    assert compare(client, experiment, [a, other]).status_code == 404
    assert compare(client, experiment, [a, gone]).status_code == 404
    assert client.get(f"/w/{workspace.pk}/experiments/{experiment.pk}/compare/?ids=1&ids=x").status_code == 404
    one = compare(client, experiment, [a])
    assert one.status_code == 302
    many = [make_run(experiment, f"m{i}") for i in range(11)]
    too_many = compare(client, experiment, many)
    assert too_many.status_code == 302 and too_many.url.endswith(f"/experiments/{experiment.pk}/")


def test_compare_polls_while_a_run_is_active_and_stops_after(client, reader, experiment):
    a = make_run(experiment, "a", status=JobStatus.RUNNING, metrics={"loss": [1, 2]})
    b = make_run(experiment, "b", metrics={"loss": [1]})
    client.force_login(reader)
    assert 'hx-trigger="every 5s"' in compare(client, experiment, [a, b]).content.decode()
    metrics_save([Metric(job=a, name="loss", step=2, value=0.25)])
    live = client.get(
        f"/w/{experiment.workspace_id}/experiments/{experiment.pk}/compare/?ids={a.pk}&ids={b.pk}",
        headers={"HX-Request": "true"},
    )
    assert live.status_code == 200 and "0.2500" in live.content.decode()
    Job.objects.filter(pk=a.pk).update(status=JobStatus.COMPLETED, finished_at=timezone.now())
    done = client.get(
        f"/w/{experiment.workspace_id}/experiments/{experiment.pk}/compare/?ids={a.pk}&ids={b.pk}",
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 286
