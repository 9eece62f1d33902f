"""`studio` as a real process against a live studio with real node workers, forecasting end to end:
messy daily sales uploaded → `automl create --task forecasting` (bad settings refused naming the
field) → waited for → `automl show` prints the forecasting summary → registered by the run →
`endpoint deploy` → `endpoint invoke` with a body from a file and from JSON prints the forecasts →
monitoring counts them; the Python client's `automl.create(task="forecasting", settings=...)` and
`endpoints.forecast`."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from studio_client import Studio

from compute.models import TargetKind
from compute.services import target_create
from endpoints import serving
from studio.services import token_create
from tests.ml.forecast_data import messy_sales

pytestmark = [pytest.mark.worker, pytest.mark.timeout(300)]

CLIENT = Path(__file__).resolve().parents[2] / "client"
STUDIO = Path(sys.executable).with_name("studio")


@pytest.fixture
def run(tmp_path):
    """run(*args) -> CompletedProcess of the `studio` command, importing this repository's client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "STUDIO_", "DATABASE"))}
    env |= {
        "HOME": str(tmp_path),
        "STUDIO_CONFIG": str(tmp_path / "studio.json"),
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPATH": str(CLIENT),
    }
    argv0 = [str(STUDIO)] if STUDIO.exists() else [sys.executable, "-m", "studio_client"]

    def run(*args, ok=True):
        done = subprocess.run(
            [*argv0, *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
        return done

    return run


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_forecasting_from_upload_to_invoke_on_the_command_line(
    live_server, owner, workspace, agent, broker, reconciler, run, tmp_path
):
    source = tmp_path / "store sales (daily) é.csv"
    messy_sales(periods=90).to_csv(source, index=False)
    target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=1, max_nodes=1)
    target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving")
    token = token_create(user=owner, name="laptop (cli)").plaintext
    run("login", live_server.url, "--token", token)
    run("workspace", "use", "Team")
    run("data", "upload", source, "--name", "store sales")

    forecast = ("automl", "create", "--data", "store sales:1", "--target-column", "Units Sold", "--compute", "cpu")
    # the forecasting options need --task forecasting, and it needs a time column and a horizon
    refused = run(*forecast, "--horizon", 7, ok=False)
    assert refused.returncode == 2 and "--horizon: only for --task forecasting" in refused.stderr
    refused = run(*forecast, "--task", "forecasting", "--horizon", 7, ok=False)
    assert refused.returncode == 2 and "needs --time-column" in refused.stderr
    # bad settings: the studio names the field
    refused = run(*forecast, "--task", "forecasting", "--time-column", "Store ID", "--horizon", 7, "--json", ok=False)
    assert refused.returncode == 1 and "time_column" in json.loads(refused.stdout)["error"]["fields"]
    refused = run(
        *forecast, "--task", "forecasting", "--time-column", "Date", "--series-column", "Store ID",
        "--horizon", 80, "--json", ok=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "horizon" in json.loads(refused.stdout)["error"]["fields"]

    started = json.loads(
        run(
            *forecast, "--task", "forecasting", "--time-column", "Date", "--series-column", "Store ID",
            "--horizon", 7, "--known-ahead", "Promo?", "--gap", 0, "--backtest-windows", 2, "--metric", "mase",
            "--allowed-algorithms", "seasonal_naive,ets", "--timeout", 120, "--name", "Sales é",
            "--register-as", "sales-forecast", "--wait", "--json",
        ).stdout
    )  # fmt: skip
    assert started["status"] == "completed", started
    automl = started["spec"]["automl"]
    assert started["task"] == "forecasting" and automl["series_columns"] == ["Store ID"]
    assert automl["known_ahead"] == ["Promo?"] and automl["horizon"] == 7 and automl["primary_metric"] == "mase"
    assert automl["algorithms"] == ["seasonal_naive", "ets"] and automl["frequency"] is None

    shown = run("automl", "show", started["id"]).stdout
    assert "Forecasting: 7 steps ahead, frequency D (inferred), 2 series, season length 7" in shown
    assert "guardrail missing_timestamps: fixed" in shown and "Best model: " in shown
    assert "Registered as sales-forecast:1" in shown and "RANK" in shown and "MASE" in shown
    assert json.loads(run("automl", "show", started["id"], "--json").stdout)["result"]["task"] == "forecasting"

    # Registered by the run, deployed, invoked: the forecasts come back as a table, or JSON.
    models = json.loads(run("model", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"]) for m in models] == [("sales-forecast", 1)]
    run("endpoint", "create", "sales-api")
    deployed = json.loads(
        run("endpoint", "deploy", "sales-api", "--name", "blue", "--model", "sales-forecast", "--compute",
            "serving", "--json").stdout
    )  # fmt: skip
    assert deployed["status"] == "ready", deployed
    run("endpoint", "traffic", "sales-api", "blue=100")
    history = messy_sales(periods=40, stores=("Z 9",), seed=3).dropna().drop_duplicates("Date")
    body = {
        "history": [
            {"Date": r["Date"], "Store ID": "new store", "Units Sold": r["Units Sold"], "Promo?": r["Promo?"]}
            for r in history.to_dict("records")
        ],
        "future": [
            {"Date": f"2024-02-{day:02d}", "Store ID": "new store", "Promo?": "yes" if day % 3 else "no"}
            for day in range(10, 17)
        ],
        "level": 0.8,
    }
    (tmp_path / "body.json").write_text(json.dumps(body))
    text = run("endpoint", "invoke", "sales-api", "--file", tmp_path / "body.json").stdout
    lines = text.strip().splitlines()
    assert lines[0].startswith("7 forecasts, 7 steps ahead (D), 80% interval — sales-forecast:1 on blue"), text
    assert lines[1].split() == ["STORE", "ID", "DATE", "FORECAST", "LOWER", "UPPER"]
    assert len(lines) == 9 and lines[2].startswith("new store") and "2024-02-10" in lines[2]
    # the stored history of a known series (it ends on 2024-03-30), with its known-ahead future
    stored = {
        "series": [{"Store ID": "B 2"}],
        "future": [{"Date": "2024-03-31T00:00:00", "Store ID": "B 2", "Promo?": "no"}]
        + [{"Date": f"2024-04-{day:02d}", "Store ID": "B 2", "Promo?": "no"} for day in range(1, 7)],
    }
    scored = json.loads(run("endpoint", "invoke", "sales-api", "--data", json.dumps(stored), "--json").stdout)
    assert [row["Store ID"] for row in scored["forecasts"]] == ["B 2"] * 7, scored
    assert scored["forecasts"][0]["Date"].startswith("2024-03-31") and scored["level"] == 0.9

    # The Python client the CLI is made of.
    ws = Studio(live_server.url, token).workspace("Team")
    job = ws.automl.create(
        "store sales:1",
        "Units Sold",
        compute="cpu",
        task="forecasting",
        settings={"time_column": "Date", "horizon": 3, "series_columns": ["Store ID"]},
    )
    assert job.raw["task"] == "forecasting" and job.status == "queued"
    pending = run("automl", "show", job.id).stdout
    assert re.search(r"A forecasting run: results when it completes \(now (queued|running)\)\.", pending), pending
    ws.jobs.cancel(job.id)
    key = json.loads((tmp_path / "studio.json").read_text())["endpoint_keys"]
    answer = ws.endpoints.forecast("sales-api", key=next(iter(key.values())), history=body["history"],
                                   future=body["future"])  # fmt: skip
    assert len(answer["forecasts"]) == 7 and answer["level"] == 0.9

    # Monitoring counts each forecast value as a prediction (drift against the training target).
    serving.monitor.flush()
    monitoring = json.loads(run("endpoint", "monitoring", "sales-api", "--json").stdout)
    drift = monitoring["deployments"]["blue"]["prediction_drift"]
    assert drift["rows"] == 21 and drift["status"], drift
