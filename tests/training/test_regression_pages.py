"""Regression on the pages: the wizard and the Train form suggest the task from the target column
(and say why), list the task's metrics and algorithms; result pages of real regression runs show
the six metrics, the regression charts and a task badge, never a classification chart."""

import html

import pytest

from compute.jobs.models import Job, JobStatus
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from tests.conftest import wait_for
from tests.training.regression_data import TARGET, write_houses
from training.models import TrainingJobKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def houses(owner, workspace, tmp_path):
    source = tmp_path / "houses é.csv"
    write_houses(source)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="houses (2024)")


@pytest.fixture
def cluster(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


def columns_part(client, workspace, version, target) -> str:
    """The wizard's columns fragment as htmx asks for it when the target select changes."""
    response = client.get(
        f"/w/{workspace.pk}/jobs/automl/columns/",
        {"data_version_id": version.pk, "target_column": target},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TRIGGER="id_target_column",
    )
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_wizard_suggests_regression_for_a_numeric_target_with_its_metrics_and_algorithms(
    client, owner, workspace, houses
):
    client.force_login(owner)
    part = columns_part(client, workspace, houses, TARGET)
    assert 'data-testid="task-suggestion"' in part and "Suggested: <strong>Regression</strong>" in part
    assert f"{TARGET} is" in part and "distinct values: a number to predict" in part
    # the task, metric and algorithm fields swap in out of band, for the suggested task
    assert 'id="automl-task-fields" hx-swap-oob="true"' in part and 'id="automl-algorithms"' in part
    assert '<option value="regression" selected>' in part
    for label in ("Normalised RMSE", "RMSE", "MAE", "R²", "Spearman correlation", "MAPE"):
        assert f">{label}</option>" in part
    assert 'value="auc_weighted"' not in part and ">AUC weighted</option>" not in part
    assert 'value="ridge"' in part and 'value="svr"' in part and 'value="logistic_regression"' not in part
    assert 'data-testid="target-range"' in part and f"{TARGET} ranges from" in part

    # a yes/no target is a classification, and choosing it says so
    part = columns_part(client, workspace, houses, "Has garage? (yes/no)")
    assert "Suggested: <strong>Classification</strong>" in part and '<option value="classification" selected>' in part
    assert ">AUC weighted</option>" in part and ">R²</option>" not in part

    # the wizard opened on that data and target (and re-rendered after errors) shows the same
    page = html.unescape(
        client.get(
            f"/w/{workspace.pk}/jobs/automl/new/", {"data_version_id": houses.pk, "target_column": TARGET}
        ).content.decode()
    )
    assert "Suggested: <strong>Regression</strong>" in page and '<option value="regression" selected>' in page
    # choosing the task by hand keeps it (the htmx reload passes it)
    page = html.unescape(
        client.get(
            f"/w/{workspace.pk}/jobs/automl/new/",
            {"data_version_id": houses.pk, "target_column": TARGET, "task": "classification"},
        ).content.decode()
    )
    assert '<option value="classification" selected>' in page and ">Log loss</option>" in page


def test_mape_is_not_offered_for_a_target_whose_range_holds_zero(client, owner, workspace, tmp_path):
    source = tmp_path / "with zeros.csv"
    write_houses(source, zero_prices=True)
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="houses with zeros")
    client.force_login(owner)
    part = columns_part(client, workspace, version, TARGET)
    assert '<option value="regression" selected>' in part and ">MAE</option>" in part
    assert ">MAPE</option>" not in part and 'data-testid="mape-note"' in part


def test_the_train_form_suggests_the_task_and_lists_the_tasks_algorithms(client, owner, workspace, houses, cluster):
    client.force_login(owner)
    page = html.unescape(
        client.get(
            f"/w/{workspace.pk}/jobs/new/",
            {"kind": "train", "data_version_id": houses.pk, "target_column": TARGET},
        ).content.decode()
    )
    assert 'id="task-fields"' in page and "Suggested: <strong>Regression</strong>" in page
    task_select = page.split('name="task"')[1].split("</select>")[0]
    assert '<option value="regression" selected>' in task_select
    algorithms = page.split('name="algorithm"')[1].split("</select>")[0]
    assert ">Ridge</option>" in algorithms and ">Support vector regression (SVR)</option>" in algorithms
    assert "Logistic regression" not in algorithms
    # changing the target reloads the task fields (htmx) from the target select
    target_select = page.split('name="target_column"')[1].split(">")[0]
    assert 'hx-select="#task-fields"' in target_select


def test_a_regression_of_a_text_column_is_refused_beside_the_field(client, owner, workspace, houses, cluster):
    client.force_login(owner)
    wizard = {
        "data_version_id": houses.pk,
        "target_column": "Notes",
        "task": "regression",
        "primary_metric": "auc_weighted",  # not a regression metric either
        "validation": "auto",
        "test_fraction": "0.2",
        "timeout_minutes": "1",
        "trial_timeout_s": "20",
        "max_trials": "2",
        "max_concurrent_trials": "1",
        "target": cluster.pk,
        "seed": "0",
    }
    response = client.post(f"/w/{workspace.pk}/jobs/automl/new/", wizard)
    assert response.status_code == 200
    assert "auc_weighted is not a primary metric of this task" in html.unescape(response.content.decode())
    response = client.post(f"/w/{workspace.pk}/jobs/automl/new/", wizard | {"primary_metric": "mae"})
    assert response.status_code == 200
    assert "A regression predicts a number, and 'Notes' is" in html.unescape(response.content.decode())
    response = client.post(
        f"/w/{workspace.pk}/jobs/new/",
        {
            "kind": "train",
            "target": cluster.pk,
            "data_version_id": houses.pk,
            "target_column": "Notes",
            "task": "regression",
            "algorithm": "lasso",
            "hyperparameters": "{}",
            "validation_method": "cv",
            "n_folds": "3",
            "seed": "0",
        },
    )
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "A regression predicts a number, and 'Notes' is" in page
    assert not Job.objects.exists()


def finished(job_id, timeout: float):
    return wait_for(
        lambda: Job.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=timeout,
        message=f"job {job_id} to finish",
    )


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_regression_train_job_and_automl_run_show_their_metrics_and_charts(
    client, owner, workspace, houses, agent, broker, reconciler
):
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=1, max_nodes=1
    ).target
    client.force_login(owner)
    # Both submitted through the pages: the wizard, then the Train form.
    response = client.post(
        f"/w/{workspace.pk}/jobs/automl/new/",
        {
            "data_version_id": houses.pk,
            "target_column": TARGET,
            "task": "regression",
            "primary_metric": "r2",
            "validation": "holdout",
            "holdout_fraction": "0.25",
            "test_fraction": "0.2",
            "timeout_minutes": "0.5",
            "trial_timeout_s": "20",
            "max_trials": "2",
            "max_concurrent_trials": "1",
            "allowed_algorithms": ["ridge", "lightgbm"],
            "infer_limit_ms": "",
            "target": cluster.pk,
            "seed": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    run = Job.objects.get(kind=TrainingJobKind.AUTOML)
    assert run.spec["task"] == "regression" and run.spec["automl"]["primary_metric"] == "r2"
    response = client.post(
        f"/w/{workspace.pk}/jobs/new/",
        {
            "kind": "train",
            "target": cluster.pk,
            "data_version_id": houses.pk,
            "target_column": TARGET,
            "task": "regression",
            "algorithm": "ridge",
            "hp_alpha": "2.5",
            "hyperparameters": "{}",
            "validation_method": "holdout",
            "holdout_fraction": "0.2",
            "seed": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    train = Job.objects.get(kind=TrainingJobKind.TRAIN)
    assert train.spec["task"] == "regression" and train.spec["hyperparameters"] == {"alpha": 2.5}

    run, train = finished(run.pk, 90), finished(train.pk, 60)
    assert run.status == JobStatus.COMPLETED, (run.status_reason, run.error)
    assert train.status == JobStatus.COMPLETED, (train.status_reason, train.error)

    page = html.unescape(client.get(f"/w/{workspace.pk}/jobs/{train.pk}/").content.decode())
    assert 'data-testid="job-task">Regression<' in page
    metrics = page.split('data-testid="regression-metrics"')[1].split("</table>")[0]
    for label in ("Normalised RMSE", "RMSE", "MAE", "R²", "Spearman correlation", "MAPE"):
        assert f"<th>{label}</th>" in metrics
    assert "result-predicted-vs-actual" in page and "result-residual-histogram" in page
    assert "result-residuals-vs-predicted" in page
    assert "Confusion matrix" not in page and "ROC curve" not in page

    page = html.unescape(client.get(f"/w/{workspace.pk}/jobs/{run.pk}/").content.decode())
    assert 'data-testid="task-badge">Regression<' in page and "<dd>R²</dd>" in page
    best = page.split('data-testid="best-metrics"')[1].split("</table>")[0]
    assert "<th>R²</th>" in best and "<th>Normalised RMSE</th>" in best and "<th>MAPE</th>" in best
    assert "—" not in best.split("<th>R²</th>")[1].split("</tr>")[0]  # filled, not left null
    assert "automl-predicted-vs-actual" in page and "automl-importance" in page
    assert "automl-confusion" not in page and "automl-roc" not in page
    leaderboard = page.split('data-testid="leaderboard"')[1].split("</table>")[0]
    assert '<th class="num">R²</th>' in leaderboard and "Accuracy" not in leaderboard
    assert "ridge" in leaderboard

    final = Job.objects.get(parent=run, kind=TrainingJobKind.AUTOML_FINAL)
    page = html.unescape(client.get(f"/w/{workspace.pk}/jobs/{final.pk}/").content.decode())
    assert 'data-testid="job-task">Regression<' in page and 'data-testid="regression-metrics"' in page
    # "Clone and edit" opens the wizard and the Train form on the same task, metric and algorithm.
    page = html.unescape(client.get(f"/w/{workspace.pk}/jobs/automl/new/?clone={run.pk}").content.decode())
    assert '<option value="regression" selected>' in page and '<option value="r2" selected>' in page
    page = html.unescape(client.get(f"/w/{workspace.pk}/jobs/new/?clone={train.pk}").content.decode())
    assert '<option value="regression" selected>' in page and '<option value="ridge" selected>' in page
    trial = Job.objects.filter(parent=run, kind=TrainingJobKind.AUTOML_TRIAL).first()
    response = client.get(f"/w/{workspace.pk}/jobs/{trial.pk}/")
    assert response.status_code == 200 and 'data-testid="job-task">Regression<' in response.content.decode()
