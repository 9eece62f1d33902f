"""Forecasting on the pages: the wizard offers the task with its settings (time column, series,
horizon, frequency inferred from the data, known-ahead features, gap, backtest windows, metrics),
refuses bad settings beside the field, and a completed run's page shows the summary, the
leaderboard and the forecast-vs-actual charts of each backtest window."""

import html
import json

import pytest

from compute.jobs.models import Job, JobStatus
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from tests.ml.forecast_data import messy_sales
from training.models import TrainingJobKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(owner, workspace, tmp_path):
    source = tmp_path / "store sales (daily).csv"
    messy_sales(periods=60).to_csv(source, index=False)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="store sales")


@pytest.fixture
def cluster(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


def page_text(response) -> str:
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def wizard_post(sales, cluster, **changes) -> dict:
    return {
        "data_version_id": sales.pk,
        "target_column": "Units Sold",
        "task": "forecasting",
        "primary_metric": "mase",
        "time_column": "Date",
        "series_columns": ["Store ID"],
        "horizon": "7",
        "frequency": "",
        "known_ahead": ["Promo?"],
        "gap": "0",
        "backtest_windows": "2",
        "validation": "auto",
        "test_fraction": "0.2",
        "timeout_minutes": "1",
        "trial_timeout_s": "20",
        "max_trials": "2",
        "max_concurrent_trials": "1",
        "target": cluster.pk,
        "seed": "0",
    } | changes


def test_the_wizard_offers_forecasting_with_its_settings_and_the_inferred_frequency(client, owner, workspace, sales):
    client.force_login(owner)
    base = f"/w/{workspace.pk}/jobs/automl/"
    # a numeric target is still suggested as a regression; the date column hints at forecasting
    part = page_text(
        client.get(
            base + "columns/",
            {"data_version_id": sales.pk, "target_column": "Units Sold"},
            HTTP_HX_REQUEST="true",
            HTTP_HX_TRIGGER="id_target_column",
        )
    )
    assert "Suggested: <strong>Regression</strong>" in part
    assert "The data has a date column (Date): choose Forecasting to predict its next values over time." in part
    # choosing the task reloads its fields with the chosen data's columns (htmx passes data and target)
    page = page_text(
        client.get(base + "new/", {"task": "forecasting", "data_version_id": sales.pk, "target_column": "Units Sold"})
    )
    assert '<option value="forecasting" selected>Forecasting</option>' in page
    assert 'data-testid="forecast-settings"' in page
    for name in ("time_column", "horizon", "gap", "backtest_windows", "frequency", "season_length"):
        assert f'name="{name}"' in page, name
    assert '<label for="id_horizon">Horizon</label>' in page  # required for a forecast: not "(optional)"
    # the time column select lists the datetime column first
    select = page.split('id="id_time_column"', 1)[1].split("</select>", 1)[0]
    options = [part.split('"', 1)[0] for part in select.split('<option value="')[1:]]
    assert options[:2] == ["", "Date"] and {"Store ID", "Units Sold", "Promo?"} <= set(options)
    assert 'name="series_columns" value="Store ID"' in page and 'name="known_ahead" value="Promo?"' in page
    assert ">Infer from the data</option>" in page and '<option value="MS">' in page
    for label in ("Normalised RMSE", "MASE", "sMAPE"):
        assert f">{label}</option>" in page
    assert ">AUC weighted</option>" not in page and ">R²</option>" not in page
    assert 'value="ets"' in page and 'value="seasonal_naive"' in page and 'value="ridge"' not in page

    # the time column chosen: the frequency pandas infers, despite a missing day and a duplicated row
    part = page_text(client.get(base + "frequency/", {"data_version_id": sales.pk, "time_column": "Date"}))
    assert "Inferred from the data: <strong>D</strong>" in part
    part = page_text(client.get(base + "frequency/", {"data_version_id": sales.pk, "time_column": "Store ID"}))
    assert "The time column 'Store ID' has a value that does not parse as a date: 'A-1' (row 1)." in part


def test_bad_forecasting_settings_are_refused_beside_their_fields(client, owner, workspace, sales, cluster):
    client.force_login(owner)
    url = f"/w/{workspace.pk}/jobs/automl/new/"
    page = page_text(client.post(url, wizard_post(sales, cluster, time_column="", horizon="")))
    assert "Choose the time column: the dates of the series." in page
    assert "Give the horizon: how many steps ahead to forecast." in page
    page = page_text(client.post(url, wizard_post(sales, cluster, horizon="0", backtest_windows="11")))
    assert "Ensure this value is greater than or equal to 1." in page
    assert "Ensure this value is less than or equal to 10." in page
    page = page_text(client.post(url, wizard_post(sales, cluster, frequency="fortnightly")))
    assert "fortnightly is not a frequency the studio knows." in page
    page = page_text(client.post(url, wizard_post(sales, cluster, time_column="Sales date")))
    assert "Select a valid choice. Sales date is not one of the available choices." in page
    # the service's checks on the data itself, beside the field they name
    page = page_text(client.post(url, wizard_post(sales, cluster, time_column="Store ID", series_columns=[])))
    assert error_of(page, "time_column").startswith("The time column 'Store ID' has a value that does not parse")
    page = page_text(client.post(url, wizard_post(sales, cluster, horizon="40")))
    assert "Inferred from the data: <strong>D</strong>" in page  # shown again with the errors
    assert error_of(page, "horizon").startswith("Horizon 40 needs at least") and "has 60" in page
    page = page_text(client.post(url, wizard_post(sales, cluster, target_column="Promo?")))
    assert "choose a numeric column" in page
    page = page_text(client.post(url, wizard_post(sales, cluster, known_ahead=["Store ID"])))
    assert "'Store ID' is already the time, target or a series column." in error_of(page, "known_ahead")
    assert not Job.objects.exists()
    # good settings: a forecasting run with the contract's settings
    response = client.post(url, wizard_post(sales, cluster, allowed_algorithms=["seasonal_naive", "ets"]))
    assert response.status_code == 302, error_of(page_text(client.post(url, wizard_post(sales, cluster))), "")
    job = Job.objects.get()
    assert job.spec["task"] == "forecasting" and job.spec["target_column"] == "Units Sold"
    automl = job.spec["automl"]
    assert automl["time_column"] == "Date" and automl["series_columns"] == ["Store ID"]
    assert automl["horizon"] == 7 and automl["known_ahead"] == ["Promo?"] and automl["backtest_windows"] == 2
    assert automl["primary_metric"] == "mase" and automl["timeout_s"] == 60 and automl["frequency"] is None
    assert automl["algorithms"] == ["seasonal_naive", "ets"]


def error_of(page: str, field: str) -> str:
    """The error shown beside the field `field` (its id is id_<field>; the error follows it)."""
    marker = f'id="id_{field}"' if field else 'class="flash flash-error"'
    after = page.split(marker, 1)[1] if marker in page else page
    return after.split('class="error" role="alert">', 1)[1].split("</div>", 1)[0] if 'role="alert"' in after else ""


def forecast_result() -> dict:
    """A completed forecasting run's result, as the contract shapes it (two stores, two windows)."""
    times = ["2024-02-20T00:00:00", "2024-02-21T00:00:00", "2024-02-22T00:00:00"]

    def series(store, shift):
        return {
            "key": {"Store ID": store},
            "time": times,
            "actual": [60 + shift, 58 + shift, None],
            "forecast": [59.5 + shift, 59 + shift, 61 + shift],
            "lower": [55 + shift, 54 + shift, 56 + shift],
            "upper": [64 + shift, 64 + shift, 66 + shift],
        }

    metrics = {"mase": 0.71, "smape": 4.2, "rmse": 2.5, "mae": 2.0, "normalized_rmse": 0.081}
    return {
        "task": "forecasting",
        "frequency": "D",
        "frequency_inferred": True,
        "season_length": 7,
        "horizon": 3,
        "series_count": 2,
        "guardrails": [
            {"name": "missing_timestamps", "status": "fixed", "message": "1 missing day filled in store A-1."},
            {"name": "duplicate_timestamps", "status": "fixed", "message": "1 duplicated row dropped."},
        ],
        "leaderboard": [
            {
                "rank": 1,
                "algorithm": "ensemble",
                "label": "Ensemble of ets, arima",
                "score": 0.081,
                "metrics": metrics,
                "seconds": 1.5,
                "status": "succeeded",
                "error": None,
            },
            {
                "rank": 2,
                "algorithm": "seasonal_naive",
                "label": "Seasonal naive",
                "score": 0.12,
                "metrics": metrics | {"mase": 1.0},
                "seconds": 0.01,
                "status": "succeeded",
                "error": None,
            },
            {
                "rank": None,
                "algorithm": "arima",
                "label": "ARIMA",
                "score": None,
                "metrics": {},
                "seconds": 3.0,
                "status": "failed",
                "error": "did not converge",
            },
        ],
        "algorithm": "ensemble",
        "members": [{"algorithm": "ets", "weight": 0.6}, {"algorithm": "arima", "weight": 0.4}],
        "metrics": metrics,
        "validation_score": 0.081,
        "primary_metric": "normalized_rmse",
        "backtest": {
            "windows": [
                {"origin": "2024-02-13T00:00:00", "series": [series("A-1", 0), series("B 2", 10)]},
                {"origin": "2024-02-16T00:00:00", "series": [series("A-1", 1), series("B 2", 11)]},
            ]
        },
        "stop_reason": "every algorithm backtested",
    }


def test_a_completed_forecasting_run_shows_its_summary_leaderboard_and_charts(client, owner, workspace, sales):
    job = Job.objects.create(
        workspace=workspace,
        kind=TrainingJobKind.AUTOML,
        status=JobStatus.COMPLETED,
        submitted_by=owner,
        spec={
            "task": "forecasting",
            "data_version_id": sales.pk,
            "target_column": "Units Sold",
            "automl": {"time_column": "Date", "series_columns": ["Store ID"], "horizon": 3, "backtest_windows": 2},
        },
        result=forecast_result(),
    )
    client.force_login(owner)
    page = page_text(client.get(f"/w/{workspace.pk}/jobs/{job.pk}/"))
    assert 'data-testid="task-badge">Forecasting<' in page
    assert 'data-testid="forecast-frequency">D (inferred)<' in page
    assert 'data-testid="forecast-horizon">3 steps<' in page
    assert 'data-testid="forecast-series-count">2 <span class="muted small">(by Store ID)</span>' in page
    assert 'Missing timestamps</th><td class="small">1 missing day filled in store A-1.' in page
    leaderboard = page.split('data-testid="leaderboard"', 1)[1].split("</table>", 1)[0]
    assert "Ensemble of ets, arima" in leaderboard and "Seasonal naive" in leaderboard
    assert "0.7100" in leaderboard and "4.2000" in leaderboard and "2.5000" in leaderboard
    assert 'title="did not converge"' in leaderboard and "Trial" not in leaderboard
    assert "Members: ets (0.60), arima (0.40)" in page
    assert 'data-testid="register-form"' in page
    # one chart per backtest window; each series picked from the chart's menu, its band drawn
    assert 'data-testid="forecast-charts"' in page and "Backtest window 2 (origin 2024-02-16)" in page
    figure = json.loads(page.split('id="forecast-backtest-1" type="application/json">', 1)[1].split("</script>", 1)[0])
    assert [t["name"] for t in figure["data"] if t.get("name")][:3] == ["interval", "actual", "forecast"]
    assert [t.get("visible") for t in figure["data"]] == [True] * 4 + [False] * 4
    labels = [b["label"] for b in figure["layout"]["updatemenus"][0]["buttons"]]
    assert labels == ["Store ID = A-1", "Store ID = B 2"]
    assert figure["data"][1]["fill"] == "tonexty"
    assert figure["layout"]["yaxis"]["title"]["text"] == "Units Sold"  # the target, as the data names it


def forecasting_deployment(owner, workspace):
    """A registered forecasting model deployed to an endpoint (made in the database: the pages read
    the version's signature; scoring itself is tested end to end on real workers)."""
    from endpoints.models import Deployment, Endpoint
    from training.models import ModelVersion, RegisteredModel

    model = RegisteredModel.objects.create(workspace=workspace, name="sales-forecast", created_by=owner)
    signature = {
        "task": "forecasting",
        "columns": [
            {"name": "Date", "type": "datetime"},
            {"name": "Store ID", "type": "categorical"},
            {"name": "Units Sold", "type": "numeric"},
            {"name": "Promo?", "type": "boolean"},
        ],
        "classes": [],
        "output": {"name": "Units Sold", "type": "number"},
        "forecast": {
            "time_column": "Date",
            "series_columns": ["Store ID"],
            "target_column": "Units Sold",
            "known_ahead": ["Promo?"],
            "horizon": 7,
            "frequency": "D",
            "gap": 0,
            "season_length": 7,
            "series": [{"Store ID": "A-1"}, {"Store ID": "B 2"}],
            "last_times": ["2024-03-01T00:00:00", "2024-03-01T00:00:00"],
        },
    }
    version = ModelVersion.objects.create(
        model=model,
        version=1,
        algorithm="ensemble",
        task="forecasting",
        target_column="Units Sold",
        signature=signature,
        sha256="0" * 64,
        created_by=owner,
    )
    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serve").target
    endpoint = Endpoint.objects.create(workspace=workspace, name="sales-fc", traffic={"blue": 100}, created_by=owner)
    Deployment.objects.create(endpoint=endpoint, name="blue", model_version=version, target=inference, created_by=owner)
    return model, version, endpoint


def test_a_forecasting_model_and_its_endpoint_tabs_show_forecasting_requests(client, owner, workspace):
    model, version, endpoint = forecasting_deployment(owner, workspace)
    client.force_login(owner)
    page = page_text(client.get(f"/w/{workspace.pk}/models/{model.pk}/v/1/"))
    summary = page.split('data-testid="model-task">', 1)[1].split("</p>", 1)[0]
    assert summary.replace("<strong>", "").replace("</strong>", "") == (
        "Forecasting · forecasts Units Sold 7 steps ahead (D), per Store ID; known ahead: Promo?"
    )

    page = page_text(client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/"))  # the details tab
    assert "sales-forecast:1" in page
    page = page_text(client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/", {"tab": "monitoring"}))
    page = page_text(client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/", {"tab": "test"}))
    assert 'data-testid="forecast-test"' in page
    body = page.split('data-testid="forecast-body" spellcheck="false">', 1)[1].split("</textarea>", 1)[0]
    # the stored history needs the known-ahead future of the horizon: prefilled for the first series
    stored = json.loads(body)
    assert stored["series"] == [{"Store ID": "A-1"}] and len(stored["future"]) == 7
    assert stored["future"][0]["Date"] == "2024-03-02T00:00:00" and set(stored["future"][0]) == {
        "Date",
        "Store ID",
        "Promo?",
    }
    example = json.loads(page.split('data-testid="history-example">', 1)[1].split("</pre>", 1)[0])
    assert len(example["history"]) == 14 and example["level"] == 0.9
    assert set(example["history"][0]) == {"Date", "Store ID", "Units Sold", "Promo?"}
    assert example["history"][0]["Store ID"] == "A-1"
    assert len(example["future"]) == 7 and set(example["future"][0]) == {"Date", "Store ID", "Promo?"}
    assert (
        example["history"][-1]["Date"] == "2024-03-01T00:00:00"
        and example["future"][0]["Date"] == "2024-03-02T00:00:00"
    )
    assert 'data-forecast-table data-testid="forecast-table" data-series="Store ID" data-time="Date"' in page

    page = page_text(client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/", {"tab": "consume"}))
    curl = page.split('data-testid="curl-snippet">', 1)[1].split("</pre>", 1)[0]
    assert "/score/sales-fc/" in curl and '-d \'{"series": [{"Store ID": "A-1"}], "future": [' in curl
    python = page.split('data-testid="python-snippet">', 1)[1].split("</pre>", 1)[0]
    assert "'history': [" in python and 'json.load(response)["forecasts"]' in python
    assert '"horizon": 7, "frequency": "D"' in page


def test_clone_and_edit_of_a_forecasting_run_keeps_its_settings(client, owner, workspace, sales):
    job = Job.objects.create(
        workspace=workspace,
        kind=TrainingJobKind.AUTOML,
        status=JobStatus.COMPLETED,
        submitted_by=owner,
        spec={
            "task": "forecasting",
            "data_version_id": sales.pk,
            "target_column": "Units Sold",
            "automl": {
                "time_column": "Date",
                "series_columns": ["Store ID"],
                "known_ahead": ["Promo?"],
                "horizon": 5,
                "gap": 1,
                "frequency": "D",
                "backtest_windows": 4,
                "primary_metric": "smape",
                "timeout_s": 90.0,
                "algorithms": ["ets", "arima"],
            },
        },
        result=forecast_result(),
    )
    client.force_login(owner)
    page = page_text(client.get(f"/w/{workspace.pk}/jobs/automl/new/", {"clone": job.pk}))
    assert '<option value="forecasting" selected>' in page and '<option value="Date" selected>' in page
    assert 'name="horizon" value="5"' in page and 'name="gap" value="1"' in page
    assert 'name="backtest_windows" value="4"' in page and '<option value="D" selected>' in page
    assert '<option value="smape" selected>' in page and 'name="timeout_minutes" value="1.5"' in page
    for name, value in (("series_columns", "Store ID"), ("known_ahead", "Promo?"), ("allowed_algorithms", "ets")):
        assert f'name="{name}" value="{value}"' in page
        tag = page.split(f'name="{name}" value="{value}"', 1)[1].split(">", 1)[0]
        assert "checked" in tag, (name, tag)


def test_the_frequency_preview_is_the_runs_own_inference(client, owner, workspace, tmp_path):
    """Monthly sales with a month missing preview as MS (the engine's inference), not as the most
    common step in hours."""
    import pandas as pd

    dates = [d for i, d in enumerate(pd.date_range("2021-01-01", periods=30, freq="MS")) if i != 7]
    source = tmp_path / "monthly sales.csv"
    pd.DataFrame({"Month": [d.strftime("%Y-%m-%d") for d in dates], "Units Sold": range(len(dates))}).to_csv(
        source, index=False
    )
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="monthly sales")
    client.force_login(owner)
    part = page_text(
        client.get(f"/w/{workspace.pk}/jobs/automl/frequency/", {"data_version_id": version.pk, "time_column": "Month"})
    )
    assert "Inferred from the data: <strong>MS</strong>" in part
