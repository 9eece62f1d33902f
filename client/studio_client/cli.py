"""`studio`: the command line of the ML studio. Every command takes --json (one JSON document on
stdout); a refusal prints the studio's message on stderr and exits non-zero (1 for the studio's
refusal, 2 for a mistake in the command or in a job/environment file, with its line and field)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from typing import Any

from . import __version__, config
from .api import Studio, WorkspaceClient
from .http import StudioError
from .specs import SpecError

EXIT_REFUSED, EXIT_USAGE = 1, 2


class Usage(Exception):
    """A mistake in how the command was called."""


# --- Output -------------------------------------------------------------------------------------
def _human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class Progress:
    """A progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, label: str, enabled: bool = True):
        self.label, self.enabled = label, enabled
        self.last = 0.0
        self.done = False

    def __call__(self, sent: int, total: int) -> None:
        """`total` 0: the size is not known yet (bytes so far, no bar) until the last call, sent == total."""
        if not self.enabled or self.done:
            return
        now = time.monotonic()
        unknown = not total and sent > 0  # (an empty download ends with 0 of 0)
        if (sent < total or unknown) and now - self.last < 0.1:
            return
        self.last = now
        if unknown:
            sys.stderr.write(f"\r{self.label} {_human_size(sent)}")
            sys.stderr.flush()
            return
        fraction = sent / total if total else 1.0
        bar = "#" * int(fraction * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {fraction * 100:5.1f}% {_human_size(sent)}/{_human_size(total)}")
        if sent >= total:
            sys.stderr.write("\n")
            self.done = True
        sys.stderr.flush()


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _show(obj: dict, keys: list[str]) -> str:
    return "\n".join(f"{k}: {obj.get(k)}" for k in keys if obj.get(k) not in (None, "", [], {}))


# --- Context ------------------------------------------------------------------------------------
class Context:
    def __init__(self, args):
        self.args = args
        self.settings = config.load()

    @property
    def url(self) -> str:
        url = os.environ.get("STUDIO_URL") or self.settings.get("url")
        if not url:
            raise Usage("Not signed in: run `studio login <url>` first (or set STUDIO_URL and STUDIO_TOKEN).")
        return url

    @property
    def token(self) -> str:
        token = os.environ.get("STUDIO_TOKEN") or self.settings.get("token")
        if not token:
            raise Usage("No token: run `studio login <url>` first (or set STUDIO_TOKEN).")
        return token

    def studio(self) -> Studio:
        return Studio(self.url, self.token)

    def workspace(self) -> WorkspaceClient:
        studio = self.studio()  # "not signed in" comes before "no workspace"
        chosen = self.args.workspace or os.environ.get("STUDIO_WORKSPACE") or self.settings.get("workspace")
        if chosen in (None, ""):
            raise Usage("No workspace chosen: run `studio workspace use <name>` or pass --workspace.")
        return studio.workspace(chosen)

    def progress(self, label: str) -> Progress:
        return Progress(label, enabled=not self.args.quiet)

    def key_slot(self, ws: WorkspaceClient, endpoint: str) -> str:
        return f"{self.url.rstrip('/')}#{ws.id}#{endpoint}"


# --- Commands -----------------------------------------------------------------------------------
def cmd_login(ctx: Context, args) -> tuple[Any, str]:
    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise Usage("Give the studio's address with http:// or https://.")
    token = args.token or os.environ.get("STUDIO_TOKEN")
    if not token:
        if not sys.stdin.isatty():
            raise Usage("Give the token with --token or STUDIO_TOKEN (no terminal to ask for it).")
        token = getpass.getpass("Personal API token (from Account > API tokens): ").strip()
    me = Studio(url, token).me()
    settings = config.load()
    if settings.get("url") != url:
        settings.pop("workspace", None)
    settings.update(url=url, token=token)
    path = config.save(settings)
    return {"url": url, "user": me.username, "config": path}, f"Signed in to {url} as {me.username} ({path})."


def cmd_workspace_list(ctx: Context, args):
    current = str(ctx.settings.get("workspace", ""))
    rows = [w.raw | {"current": str(w.id) == current} for w in ctx.studio().workspaces()]
    text = _table([r | {"current": "*" if r["current"] else ""} for r in rows], ["current", "id", "name", "role"])
    return rows, text


def cmd_workspace_use(ctx: Context, args):
    ws = ctx.studio().workspace(args.name)
    ctx.settings["workspace"] = ws.id
    config.save(ctx.settings)
    return ws.info.raw, f"Using workspace {ws.name} ({ws.id})."


def cmd_data_upload(ctx: Context, args):
    ws = ctx.workspace()
    name = args.name or os.path.splitext(os.path.basename(args.file))[0]
    ingest = ws.data.upload(
        args.file,
        name,
        description=args.description or "",
        wait=not args.no_wait,
        progress=ctx.progress(f"Uploading {os.path.basename(args.file)}"),
    )
    if ingest.status != "ready":
        return ingest.raw, f"Uploaded; ingest {ingest.id} is {ingest.status}."
    number = (ingest.version or {}).get("version")
    version = ws.data.version((ingest.asset_name, number))
    text = f"Data asset {ingest.asset_name} version {version.version} is ready ({version.rows} rows)."
    return ingest.raw | {"version": version.raw}, text


def _ingest_result(ws: WorkspaceClient, ingest) -> tuple[Any, str]:
    if ingest.status != "ready":
        return ingest.raw, f"Submitted; ingest {ingest.id} is {ingest.status}."
    version = ws.data.ingest_version(ingest)
    text = f"Data asset {ingest.asset_name} version {version.version} is ready ({version.rows} rows)."
    return ingest.raw | {"version": version.raw}, text


def cmd_data_import(ctx: Context, args):
    ws = ctx.workspace()
    common = {"description": args.description or "", "tags": args.tags or "", "wait": not args.no_wait}
    if bool(args.url) == bool(args.datastore):
        raise Usage("Give --url URL, or --datastore NAME with --query 'SELECT …' or --key KEY.")
    if args.url:
        ingest = ws.data.import_url(args.url, args.name or "", **common)
    elif args.key:
        if args.query:
            raise Usage("Give --query for a PostgreSQL datastore or --key for an S3 one, not both.")
        ingest = ws.data.import_s3(args.datastore, args.key, args.name or "", **common)
    else:
        if not args.query or not args.name:
            raise Usage("Give --query 'SELECT …' and --name for the data asset with --datastore.")
        ingest = ws.data.import_query(args.datastore, args.query, args.name, **common)
    return _ingest_result(ws, ingest)


def cmd_datastore_create(ctx: Context, args):
    if args.bucket:
        return _datastore_create_s3(ctx, args)
    url = args.url or os.environ.get("STUDIO_DATASTORE_URL")
    if not url:
        if not sys.stdin.isatty():
            raise Usage("Give the connection URL with --url or STUDIO_DATASTORE_URL (no terminal to ask for it).")
        url = getpass.getpass("Connection URL (postgresql://user:password@host:port/database): ").strip()
    datastore = ctx.workspace().datastores.create(args.name, url, description=args.description or "")
    return datastore.raw, f"Datastore {datastore.name} saved ({datastore.display}); its URL is not shown again."


def _datastore_create_s3(ctx: Context, args):
    if not args.access_key_id:
        raise Usage("Give --access-key-id with --bucket.")
    secret = os.environ.get("STUDIO_DATASTORE_SECRET_ACCESS_KEY")
    if not secret:
        if not sys.stdin.isatty():
            raise Usage("Give the secret access key in STUDIO_DATASTORE_SECRET_ACCESS_KEY (no terminal to ask for it).")
        secret = getpass.getpass("Secret access key: ").strip()
    datastore = ctx.workspace().datastores.create_s3(
        args.name,
        args.bucket,
        args.access_key_id,
        secret,
        region=args.region or "",
        endpoint_url=args.endpoint_url or "",
        description=args.description or "",
    )
    return datastore.raw, f"Datastore {datastore.name} saved ({datastore.display}); its secret key is not shown again."


def cmd_datastore_list(ctx: Context, args):
    rows = [d.raw for d in ctx.workspace().datastores.list()]
    return rows, _table(rows, ["id", "name", "kind", "display", "import_count"])


def cmd_datastore_delete(ctx: Context, args):
    ctx.workspace().datastores.delete(args.name)
    return {"deleted": True, "name": args.name}, f"Datastore {args.name} deleted."


def cmd_data_list(ctx: Context, args):
    rows = [a.raw for a in ctx.workspace().data.list()]
    return rows, _table(rows, ["id", "name", "latest_version", "latest_rows", "latest_columns"])


def cmd_data_download(ctx: Context, args):
    ws = ctx.workspace()
    path = ws.data.download(args.ref, args.output or ".", progress=ctx.progress("Downloading"))
    return {"path": path}, f"Saved {path}"


def _follow(ctx: Context, ws: WorkspaceClient, job_id: int, to_stderr: bool) -> None:
    out = sys.stderr if to_stderr else sys.stdout
    for line in ws.jobs.follow(job_id):
        out.write(line.text + "\n")
        out.flush()


def _job_text(job) -> str:
    raw = job.raw
    where = {
        "compute": (raw.get("target") or {}).get("name"),
        "node": raw.get("node"),
        "attempt": f"{raw['attempt']} of {raw['max_attempts']}"
        if raw.get("attempt") and raw.get("max_attempts")
        else None,
        "submitted": " by ".join(str(v) for v in (raw.get("created_at"), raw.get("submitted_by")) if v),
        "duration": _duration(raw.get("duration_seconds")),
    }
    head = _show(raw, ["id", "display_name", "kind", "status", "status_reason", "experiment"])
    tail = _show(raw, ["error"])
    return "\n".join(filter(None, [head, _show(where, list(where)), tail]))


def _duration(seconds) -> str | None:
    """A job's run time as people read it: 51.4 s, 3 min 12 s, 2 h 05 min."""
    if seconds is None:
        return None
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def cmd_job_create(ctx: Context, args):
    ws = ctx.workspace()
    job = ws.jobs.create_from_file(args.file)
    if not args.json:
        print(f"Job {job.id} submitted ({job.status}).", flush=True)
    if not args.stream:
        return job.raw, ""
    _follow(ctx, ws, job.id, to_stderr=args.json)
    job = ws.jobs.wait(job.id)
    if job.status != "completed":
        return _failed(job)
    return job.raw, f"Job {job.id} {job.status}."


def _failed(job):
    raise StudioError(
        f"Job {job.id} {job.status}" + (f": {job.error}" if job.error else "."),
        status=0,
        code=f"job_{job.status}",
    )


def cmd_job_list(ctx: Context, args):
    # As the Jobs page: top-level jobs, an AutoML run's trials under it (--parent), unless asked for all.
    parent = args.parent if args.parent is not None else (None if args.all or args.kind else "none")
    jobs = ctx.workspace().jobs.list(status=args.status, kind=args.kind, parent=parent)
    rows = [j.raw for _, j in zip(range(args.limit), jobs, strict=False)]
    return rows, _table(rows, ["id", "kind", "status", "display_name", "experiment", "created_at"])


def cmd_job_show(ctx: Context, args):
    job = ctx.workspace().jobs.get(args.id)
    return job.raw, _job_text(job)


def cmd_job_logs(ctx: Context, args):
    ws = ctx.workspace()
    if args.follow:
        if args.json:
            lines = [line.raw for line in ws.jobs.follow(args.id)]
            return lines, ""
        _follow(ctx, ws, args.id, to_stderr=False)
        return None, ""
    lines, after, active = [], 0, True
    while True:
        page, after, active = ws.jobs.logs(args.id, after)
        lines += page
        if not page:
            break
    return [line.raw for line in lines], "\n".join(line.text for line in lines)


def cmd_job_cancel(ctx: Context, args):
    job = ctx.workspace().jobs.cancel(args.id)
    if job.status != "canceled" and job.raw.get("cancel_requested_at"):
        return job.raw, f"Job {job.id} is {job.status}: its node stops it within seconds."
    return job.raw, f"Job {job.id} is {job.status}."


def cmd_job_download(ctx: Context, args):
    prefix = f"outputs/{args.output}/" if args.output else ""
    files = ctx.workspace().jobs.download(args.id, args.output_dir, prefix=prefix)
    return {"files": files}, "\n".join(files) or "(no files)"


def cmd_env_create(ctx: Context, args):
    env = ctx.workspace().environments.create_from_file(args.file)
    return env.raw, f"Environment {env.name} version {env.latest_version} (id {env.latest_version_id})."


def cmd_env_list(ctx: Context, args):
    rows = [e.raw for e in ctx.workspace().environments.list()]
    return rows, _table(rows, ["id", "name", "latest_version", "latest_base"])


FORECAST_OPTIONS = ("time_column", "horizon", "series_column", "frequency", "known_ahead", "gap", "backtest_windows")


def _forecast_settings(args) -> dict[str, Any]:
    """The forecasting settings of `automl create --task forecasting` (the studio checks them)."""
    missing = [f"--{name.replace('_', '-')}" for name in ("time_column", "horizon") if getattr(args, name) is None]
    if missing:
        raise Usage(f"A forecasting run needs {' and '.join(missing)}.")
    settings: dict[str, Any] = {
        "time_column": args.time_column,
        "horizon": args.horizon,
        "series_columns": args.series_column or [],
        "known_ahead": args.known_ahead or [],
    }
    for name in ("frequency", "gap", "backtest_windows", "season_length"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    return settings


def cmd_automl_create(ctx: Context, args):
    ws = ctx.workspace()
    settings: dict[str, Any] = {}
    if args.task == "forecasting":
        settings = _forecast_settings(args)
    else:
        given = [f"--{name.replace('_', '-')}" for name in FORECAST_OPTIONS if getattr(args, name) not in (None, [])]
        if given:
            raise Usage(f"{', '.join(given)}: only for --task forecasting.")
    if args.metric:
        settings["primary_metric"] = args.metric
    if args.max_trials:
        settings["max_trials"] = args.max_trials
    if args.timeout:
        settings["timeout_s"] = args.timeout
    if args.max_concurrent_trials:
        settings["max_concurrent_trials"] = args.max_concurrent_trials
    if args.trial_timeout:
        settings["trial_timeout_s"] = args.trial_timeout
    if args.allowed_algorithms:
        chosen = [a.strip() for a in args.allowed_algorithms.split(",") if a.strip()]
        settings["algorithms" if args.task == "forecasting" else "allowed_algorithms"] = chosen
    job = ws.automl.create(
        args.data,
        args.target_column,
        compute=args.compute,
        task=args.task,
        settings=settings,
        register_as=args.register_as or "",
        experiment=args.experiment or "",
        display_name=args.name or "",
        test_fraction=args.test_fraction,
    )
    if args.wait:
        job = ws.jobs.wait(job.id)
        if job.status != "completed":
            return _failed(job)
        if (job.result or {}).get("task") == "forecasting":
            return job.raw, f"AutoML job {job.id} is {job.status}.\n" + _forecast_summary(job.result)
    return job.raw, f"AutoML job {job.id} is {job.status}."


def _number(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _forecast_summary(result: dict) -> str:
    """A forecasting run's result as text: what it forecasts, the guardrails, the best model, the leaderboard."""
    frequency = f"{result.get('frequency')}{' (inferred)' if result.get('frequency_inferred') else ''}"
    lines = [
        f"Forecasting: {result.get('horizon')} steps ahead, frequency {frequency}, "
        f"{result.get('series_count')} series, season length {result.get('season_length')}",
    ]
    for guard in result.get("guardrails") or []:
        lines.append(f"  guardrail {guard.get('name')}: {guard.get('status')} — {guard.get('message')}")
    if result.get("algorithm"):
        members = ", ".join(
            f"{m.get('algorithm')} ({m['weight']:.2f})" if m.get("weight") is not None else str(m.get("algorithm"))
            for m in result.get("members") or []
        )
        lines.append(
            f"Best model: {result['algorithm']}{f' of {members}' if members else ''}; "
            f"backtest {result.get('primary_metric')} {_number(result.get('validation_score'))}"
        )
        metrics = result.get("metrics") or {}
        lines.append("  " + ", ".join(f"{name} {_number(value)}" for name, value in metrics.items()))
    if result.get("registered"):
        lines.append(f"Registered as {result['registered']}")
    rows = [
        {
            "rank": row.get("rank"),
            "algorithm": row.get("label") or row.get("algorithm"),
            "score": _number(row.get("score")),
            "mase": _number((row.get("metrics") or {}).get("mase")),
            "smape": _number((row.get("metrics") or {}).get("smape")),
            "rmse": _number((row.get("metrics") or {}).get("rmse")),
            "seconds": _number(row.get("seconds"), 2),
            "status": row.get("status"),
        }
        for row in result.get("leaderboard") or []
    ]
    if rows:
        lines += ["", _table(rows, ["rank", "algorithm", "score", "mase", "smape", "rmse", "seconds", "status"])]
    return "\n".join(lines)


def cmd_automl_show(ctx: Context, args):
    """An AutoML run: a forecasting run's summary from its result, else the run's leaderboard API."""
    ws = ctx.workspace()
    job = ws.jobs.get(args.id)
    result = job.result or {}
    if job.raw.get("task") == "forecasting" or result.get("task") == "forecasting":
        if not result.get("leaderboard"):  # the run's one job writes its result when it ends
            return job.raw, _job_text(job) + f"\nA forecasting run: results when it completes (now {job.status})."
        return job.raw, _job_text(job) + "\n" + _forecast_summary(result)
    run = ws.automl.get(args.id)
    best = run.get("best_model") or {}
    rows = [
        {
            "trial": r.get("trial_id"),
            "algorithm": r.get("algorithm"),
            "score": _number(r.get("score")),
            "status": r.get("status"),
        }
        for r in (run.get("leaderboard") or [])[:10]
    ]
    lines = [_job_text(job), f"task: {run.get('task')}"]
    if best.get("test_metrics"):
        lines.append("best model test metrics: " + ", ".join(f"{k} {v}" for k, v in best["test_metrics"].items()))
    lines += ["", _table(rows, ["trial", "algorithm", "score", "status"])]
    return run, "\n".join(lines)


def _signature(text: str | None):
    if not text:
        return None
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as fh:
            text = fh.read()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise Usage(f"--signature is not JSON: {exc}") from None
    if not isinstance(value, list):
        raise Usage("--signature is a JSON list of {name, type}.")
    return value


def cmd_model_register(ctx: Context, args):
    ws = ctx.workspace()
    if bool(args.job) == bool(args.file):
        raise Usage("Give either --job (with --output for a command job's model output) or --file.")
    if args.job:
        if args.output:
            version = ws.models.register_output(args.job, args.output, args.name, description=args.description or "")
        else:
            version = ws.models.register_job(args.job, args.name, description=args.description or "")
    else:
        version = ws.models.register_file(
            args.file,
            args.name,
            description=args.description or "",
            data=args.data,
            signature=_signature(args.signature),
            target_column=args.target_column or "",
            progress=ctx.progress(f"Uploading {os.path.basename(args.file)}"),
        )
    return version.raw, f"Registered {version.model} version {version.version} (id {version.id})."


def cmd_compute_list(ctx: Context, args):
    rows = list(ctx.workspace().compute.list())
    table = [
        {
            **t,
            "nodes": f"{t.get('min_nodes')}–{t.get('max_nodes')}",
            "running": sum((t.get("nodes") or {}).values()),
            "jobs": f"{t.get('jobs_running', 0)} running, {t.get('jobs_queued', 0)} queued",
            "default": "yes" if t.get("is_default") else "",
        }
        for t in rows
    ]
    return rows, _table(table, ["id", "name", "kind", "size", "nodes", "running", "jobs", "default"])


def cmd_compute_create(ctx: Context, args):
    target = ctx.workspace().compute.create(
        args.name,
        kind=args.kind,
        size=args.size,
        min_nodes=args.min_nodes,
        max_nodes=args.max_nodes,
        description=args.description,
    )
    if target["kind"] == "attached":
        text = (
            f"Created the attached compute {target['name']}. On the machine that joins it, with the studio's "
            f"code and settings: STUDIO_JOIN_TOKEN=… manage.py compute_node --target {target['id']}\n"
            f"Join token (shown once): {target.get('join_token')}"
        )
        return target, text
    what = {"cluster": "compute cluster", "inference": "inference cluster"}
    nodes = f"{target['min_nodes']}–{target['max_nodes']} nodes"
    return (
        target,
        f"Created the {what.get(target['kind'], target['kind'])} {target['name']} ({target['size']}, {nodes}).",
    )


def cmd_model_list(ctx: Context, args):
    rows = [m.raw for m in ctx.workspace().models.list()]
    return rows, _table(rows, ["id", "name", "latest_version", "description"])


def cmd_model_download(ctx: Context, args):
    path = ctx.workspace().models.download(args.ref, args.output or ".", progress=ctx.progress("Downloading"))
    return {"path": path}, f"Saved {path}"


def cmd_endpoint_create(ctx: Context, args):
    ws = ctx.workspace()
    endpoint = ws.endpoints.create(args.name, description=args.description or "", requests_per_minute=args.rpm)
    if endpoint.primary_key:
        keys = ctx.settings.setdefault("endpoint_keys", {})
        keys[ctx.key_slot(ws, endpoint.name)] = endpoint.primary_key
        config.save(ctx.settings)
    text = (
        f"Endpoint {endpoint.name} created: {endpoint.scoring_url}\n"
        f"Primary key (shown once, kept in {config.config_path()} for `studio endpoint invoke`): "
        f"{endpoint.primary_key}"
    )
    return endpoint.raw, text


def cmd_endpoint_list(ctx: Context, args):
    rows = [e.raw for e in ctx.workspace().endpoints.list()]
    table = [{**r, "traffic": _traffic(r.get("traffic")) or "(none yet)"} for r in rows]
    return rows, _table(table, ["id", "name", "scoring_url", "traffic"])


def _traffic(traffic: dict | None) -> str:
    """An endpoint's traffic split as it is given: blue=90 green=10."""
    return " ".join(f"{name}={percent}" for name, percent in (traffic or {}).items())


AUTOSCALE_OPTIONS = ("min_replicas", "max_replicas", "target_in_flight", "scale_in_seconds")


def _autoscale_options(args) -> dict:
    return {name: getattr(args, name) for name in AUTOSCALE_OPTIONS if getattr(args, name) is not None}


def _scaling(deployment) -> str:
    auto = deployment.autoscale
    replicas = f"{deployment.replicas} replica{'' if deployment.replicas == 1 else 's'}"
    if auto:
        return (
            f"{replicas} now, autoscaling between {auto['min_replicas']} and "
            f"{auto['max_replicas']} ({auto['target_in_flight']} requests in flight per replica)"
        )
    return replicas


def cmd_endpoint_deploy(ctx: Context, args):
    deployment = ctx.workspace().endpoints.deploy(
        args.endpoint,
        args.name,
        args.model,
        compute=args.compute,
        replicas=args.replicas,
        autoscale=_autoscale_options(args) or None,
    )
    if deployment.status == "failed":
        raise StudioError(f"Deployment {deployment.name} failed: {deployment.status_reason}", code="deploy_failed")
    return deployment.raw, f"Deployment {deployment.name} is {deployment.status}: {_scaling(deployment)}."


def cmd_endpoint_scale(ctx: Context, args):
    autoscale = _autoscale_options(args)
    if args.no_autoscale and autoscale:
        raise Usage("--no-autoscale goes without --min-replicas, --max-replicas and the like.")
    if args.replicas is None and not autoscale and not args.no_autoscale:
        raise Usage("Give --replicas N, autoscaling options (--min-replicas, --max-replicas, ...) or --no-autoscale.")
    deployment = ctx.workspace().endpoints.scale(
        args.endpoint,
        args.deployment,
        replicas=args.replicas,
        autoscale=None if args.no_autoscale else (autoscale or ...),
    )
    return deployment.raw, f"Deployment {deployment.name}: {_scaling(deployment)}."


def _add_autoscale_options(sub) -> None:
    sub.add_argument("--min-replicas", type=int, help="autoscale: the fewest replicas (0 scales to zero)")
    sub.add_argument("--max-replicas", type=int, help="autoscale: the most replicas (turns autoscaling on)")
    sub.add_argument("--target-in-flight", type=int, help="autoscale: requests being scored per replica to aim at")
    sub.add_argument("--scale-in-seconds", type=int, help="autoscale: seconds below the target before scaling in")


def cmd_endpoint_traffic(ctx: Context, args):
    traffic = {}
    for item in args.split:
        name, sep, percent = item.rpartition("=")
        if not sep or not name or not percent.strip().isdigit():
            raise Usage(f"'{item}': give traffic as deployment=percent, e.g. blue=90 green=10.")
        traffic[name] = int(percent)
    endpoint = ctx.workspace().endpoints.traffic(args.endpoint, traffic)
    return endpoint.raw, f"Traffic of {endpoint.name}: {_traffic(endpoint.traffic)}"


def cmd_endpoint_monitoring(ctx: Context, args):
    report = ctx.workspace().endpoints.monitoring(args.endpoint, range=args.range)
    lines = [f"{args.endpoint}, last {args.range}: {report['total_requests']} requests"]
    for name, d in report["deployments"].items():
        line = f"  {name}: {d['requests']} requests, {d['errors_4xx'] + d['errors_5xx']} errors, p50 {d['p50_ms']} ms"
        for label, drift in (("input drift", d["drift"]), ("prediction drift", d["prediction_drift"])):
            if drift:
                psi = f" (PSI {drift['psi']:.2f})" if drift.get("psi") is not None else ""
                line += f"; {label}: {drift['status'].lower()}{psi}"
        lines.append(line)
    return report, "\n".join(lines)


def cmd_endpoint_invoke(ctx: Context, args):
    ws = ctx.workspace()
    if bool(args.data) == bool(args.file):
        raise Usage("Give the rows with --data '<json>' or --file rows.json.")
    text = args.data
    if args.file:
        with open(args.file, encoding="utf-8") as fh:
            text = fh.read()
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise Usage(f"The rows are not JSON: {exc}") from None
    key = (
        args.key
        or os.environ.get("STUDIO_ENDPOINT_KEY")
        or ctx.settings.get("endpoint_keys", {}).get(ctx.key_slot(ws, args.endpoint))
    )
    if not key:
        raise Usage("No key for this endpoint: pass --key or set STUDIO_ENDPOINT_KEY.")
    answer = ws.endpoints.invoke(args.endpoint, rows, key=key, deployment=args.deployment)
    if isinstance(answer, dict) and isinstance(answer.get("forecasts"), list):
        return answer, _forecasts_text(answer)
    return answer, json.dumps(answer, indent=2, ensure_ascii=False)


def _forecasts_text(answer: dict) -> str:
    """A forecasting endpoint's answer as a table: series and time columns, forecast, lower, upper."""
    rows = answer["forecasts"]
    bounds = ("forecast", "lower", "upper")
    keys = [k for k in (rows[0] if rows else {}) if k not in bounds]
    shown = [{**{k: r.get(k) for k in keys}, **{b: _number(r.get(b)) for b in bounds}} for r in rows]
    level = answer.get("level")
    head = (
        f"{len(rows)} forecasts, {answer.get('horizon')} steps ahead ({answer.get('frequency')})"
        + (f", {level:.0%} interval" if isinstance(level, (int, float)) else "")
        + f" — {answer.get('model')} on {answer.get('deployment')}"
    )
    return head + "\n" + _table(shown, keys + list(bounds))


# --- Parser -------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("-w", "--workspace", default=argparse.SUPPRESS, help="workspace name or id")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")

    parser = argparse.ArgumentParser(prog="studio", description="The ML studio's command line.", parents=[common])
    parser.add_argument("--version", action="version", version=f"studio-client {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    def group(name: str, help_text: str):
        sub = groups.add_parser(name, help=help_text, parents=[common])
        return sub.add_subparsers(dest="action", metavar="ACTION", required=True)

    def command(actions, name: str, handler, help_text: str):
        sub = actions.add_parser(name, help=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    login = groups.add_parser("login", help="sign in to a studio with a personal API token", parents=[common])
    login.add_argument("url")
    login.add_argument("--token", help="the token (else STUDIO_TOKEN, else asked for)")
    login.set_defaults(handler=cmd_login)

    ws = group("workspace", "workspaces")
    command(ws, "list", cmd_workspace_list, "the workspaces you are a member of")
    command(ws, "use", cmd_workspace_use, "choose the workspace of later commands").add_argument("name")

    data = group("data", "data assets")
    sub = command(data, "upload", cmd_data_upload, "upload a file as a data asset (or its next version)")
    sub.add_argument("file")
    sub.add_argument("--name", help="the data asset's name (default: the file's name)")
    sub.add_argument("--description")
    sub.add_argument("--no-wait", action="store_true", help="do not wait for the ingest")
    sub = command(
        data, "import", cmd_data_import, "import a URL's file, a datastore query's rows or an S3 object as a data asset"
    )
    sub.add_argument("--url", help="an http:// or https:// URL of a CSV, TSV, .csv.gz or Parquet file")
    sub.add_argument("--datastore", help="a datastore's name (with --query or --key)")
    sub.add_argument("--query", help="one SELECT statement, run read-only on a PostgreSQL datastore")
    sub.add_argument("--key", help="an object's key in an S3 datastore's bucket (or a prefix ending in /)")
    sub.add_argument("--name", help="the data asset's name (required with --query; default: the URL's file name)")
    sub.add_argument("--description")
    sub.add_argument("--tags", help="comma-separated")
    sub.add_argument("--no-wait", action="store_true", help="do not wait for the ingest")
    command(data, "list", cmd_data_list, "the data assets")
    sub = command(data, "download", cmd_data_download, "download a data version's file")
    sub.add_argument("ref", help="name, name:version or name@latest")
    sub.add_argument("-o", "--output", help="a file or folder (default: here)")

    stores = group("datastore", "datastores (databases and S3 buckets that data is imported from)")
    sub = command(
        stores, "create", cmd_datastore_create, "save a PostgreSQL connection or an S3 bucket (secrets never shown)"
    )
    sub.add_argument("name")
    sub.add_argument(
        "--url", help="postgresql://user:password@host:port/database (else STUDIO_DATASTORE_URL, else asked)"
    )
    sub.add_argument("--bucket", help="an S3 bucket: makes an S3 datastore (with --access-key-id)")
    sub.add_argument("--region", help="the bucket's region (default us-east-1)")
    sub.add_argument("--endpoint-url", help="MinIO or another S3-compatible API: http(s)://host:port")
    sub.add_argument(
        "--access-key-id",
        help="the S3 access key id; the secret comes from STUDIO_DATASTORE_SECRET_ACCESS_KEY, else is asked",
    )
    sub.add_argument("--description")
    command(stores, "list", cmd_datastore_list, "the datastores, without their URLs")
    command(stores, "delete", cmd_datastore_delete, "forget a datastore").add_argument("name")

    job = group("job", "jobs")
    sub = command(job, "create", cmd_job_create, "submit a command job from a YAML file")
    sub.add_argument("-f", "--file", required=True)
    sub.add_argument("--stream", action="store_true", help="print the log until the job finishes")
    sub = command(job, "list", cmd_job_list, "the jobs, newest first")
    sub.add_argument("--status")
    sub.add_argument("--kind")
    sub.add_argument("--limit", type=int, default=50)
    sub.add_argument("--parent", type=int, help="the child jobs of this run (an AutoML run's trials)")
    sub.add_argument("--all", action="store_true", help="child jobs too (default: top-level jobs, as the Jobs page)")
    command(job, "show", cmd_job_show, "one job").add_argument("id", type=int)
    sub = command(job, "logs", cmd_job_logs, "a job's log")
    sub.add_argument("id", type=int)
    sub.add_argument("--follow", "-f", action="store_true", help="keep printing until the job finishes")
    command(job, "cancel", cmd_job_cancel, "cancel a job").add_argument("id", type=int)
    sub = command(job, "download", cmd_job_download, "download a job's files")
    sub.add_argument("id", type=int)
    sub.add_argument("--output", help="only this output (e.g. model)")
    sub.add_argument("-o", "--output-dir", default=".", help="folder to write into (default: here)")

    compute = group("compute", "compute clusters, inference clusters and attached machines")
    command(compute, "list", cmd_compute_list, "the workspace's compute, with nodes running and jobs")
    sub = command(compute, "create", cmd_compute_create, "create a compute cluster (or an inference cluster)")
    sub.add_argument("name", help="2–64 letters, digits or hyphens")
    sub.add_argument(
        "--kind",
        choices=["cluster", "inference", "attached"],
        default="cluster",
        help="cluster: runs jobs (the default); inference: serves endpoints' deployments; attached: a machine "
        "that joins with a token",
    )
    sub.add_argument("--size", choices=["small", "medium", "large", "xlarge"], help="cores per node (default small: 1)")
    sub.add_argument("--min-nodes", type=int)
    sub.add_argument("--max-nodes", type=int)
    sub.add_argument("--description")

    env = group("env", "environments")
    command(env, "create", cmd_env_create, "create an environment (or its next version) from YAML").add_argument(
        "-f", "--file", required=True
    )
    command(env, "list", cmd_env_list, "the environments")

    automl = group("automl", "Automated ML")
    sub = command(automl, "create", cmd_automl_create, "start an AutoML classification, regression or forecasting run")
    sub.add_argument("--data", required=True, help="data asset: name, name:version or name@latest")
    sub.add_argument("--target-column", required=True)
    sub.add_argument(
        "--task",
        choices=["classification", "regression", "forecasting"],
        help="what to predict: a class (the default), a number (a numeric target), or a series' next values",
    )
    forecasting = sub.add_argument_group("forecasting (with --task forecasting)")
    forecasting.add_argument("--time-column", help="the column of dates (required)")
    forecasting.add_argument("--horizon", type=int, help="how many steps ahead to forecast (required)")
    forecasting.add_argument(
        "--series-column", action="append", help="a series id column (repeat for up to 3; none: one series)"
    )
    forecasting.add_argument("--frequency", help="a pandas offset alias, e.g. D, W-MON, MS (default: inferred)")
    forecasting.add_argument(
        "--known-ahead", action="append", help="a feature whose future values are known (repeat for several)"
    )
    forecasting.add_argument("--gap", type=int, help="steps between the history's end and the first forecast")
    forecasting.add_argument("--backtest-windows", type=int, help="rolling origins to backtest on (default 3)")
    forecasting.add_argument("--season-length", type=int, help="default: from the frequency (7 for D, 12 for MS)")
    sub.add_argument("--compute", help="compute cluster name (default: the workspace's default)")
    sub.add_argument(
        "--metric", help="primary metric: e.g. accuracy; normalized_rmse, r2 (regression); mase, smape (forecasting)"
    )
    sub.add_argument("--max-trials", type=int)
    sub.add_argument("--timeout", type=float, help="seconds for the whole run")
    sub.add_argument("--max-concurrent-trials", type=int)
    sub.add_argument("--trial-timeout", type=float, help="seconds for one trial")
    sub.add_argument("--allowed-algorithms", help="comma-separated (forecasting: seasonal_naive, ets, arima...)")
    sub.add_argument("--test-fraction", type=float, help="share of rows held out to test the best model")
    sub.add_argument("--register-as", help="register the best model under this name")
    sub.add_argument("--experiment")
    sub.add_argument("--name", help="display name")
    sub.add_argument("--wait", action="store_true", help="wait until the run finishes")
    command(automl, "show", cmd_automl_show, "an AutoML run's results (a forecast's summary)").add_argument(
        "id", type=int
    )

    model = group("model", "registered models")
    sub = command(model, "register", cmd_model_register, "register a job's model or a model file")
    sub.add_argument("--name", required=True)
    sub.add_argument("--job", type=int, help="a job's id")
    sub.add_argument("--output", help="the command job's model output (e.g. model)")
    sub.add_argument("--file", help="a model file (skops, ONNX) or MLflow model folder")
    sub.add_argument("--data", help="data asset to infer the signature from (name:version)")
    sub.add_argument("--signature", help="JSON list of {name, type}, or @file.json")
    sub.add_argument("--target-column")
    sub.add_argument("--description")
    command(model, "list", cmd_model_list, "the registered models")
    sub = command(model, "download", cmd_model_download, "download a model version's file")
    sub.add_argument("ref", help="name, name:version or name@latest")
    sub.add_argument("-o", "--output", help="a file or folder (default: here)")

    endpoint = group("endpoint", "online endpoints")
    sub = command(endpoint, "create", cmd_endpoint_create, "create an endpoint (prints its key once)")
    sub.add_argument("name")
    sub.add_argument("--description")
    sub.add_argument("--rpm", type=int, help="requests per minute allowed")
    command(endpoint, "list", cmd_endpoint_list, "the endpoints")
    sub = command(endpoint, "deploy", cmd_endpoint_deploy, "deploy a model version to an endpoint")
    sub.add_argument("endpoint")
    sub.add_argument("--name", required=True, help="the deployment's name, e.g. blue")
    sub.add_argument("--model", required=True, help="name:version or name@latest")
    sub.add_argument("--compute", required=True, help="an inference target's name")
    sub.add_argument("--replicas", type=int)
    _add_autoscale_options(sub)
    sub = command(endpoint, "scale", cmd_endpoint_scale, "set a deployment's replicas or its autoscaling")
    sub.add_argument("endpoint")
    sub.add_argument("deployment")
    sub.add_argument("--replicas", type=int)
    _add_autoscale_options(sub)
    sub.add_argument("--no-autoscale", action="store_true", help="turn autoscaling off (keeps the current replicas)")
    sub = command(endpoint, "traffic", cmd_endpoint_traffic, "split traffic, e.g. blue=90 green=10")
    sub.add_argument("endpoint")
    sub.add_argument("split", nargs="+")
    sub = command(endpoint, "invoke", cmd_endpoint_invoke, "score rows (or ask a forecasting endpoint for forecasts)")
    sub.add_argument("endpoint")
    sub.add_argument("--data", help='rows as JSON; a forecasting endpoint takes a body: {} or {"history": [...]}')
    sub.add_argument("--file", help="a JSON file of rows (or of a forecasting body)")
    sub.add_argument("--key", help="the endpoint key (else STUDIO_ENDPOINT_KEY or the one kept at create)")
    sub.add_argument("--deployment", help="score with this deployment only")
    sub = command(endpoint, "monitoring", cmd_endpoint_monitoring, "requests, latency and drift per deployment")
    sub.add_argument("endpoint")
    sub.add_argument("--range", choices=("hour", "day", "week"), default="hour")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name, default in (("json", False), ("workspace", None), ("quiet", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.json:
        args.quiet = True
    try:
        ctx = Context(args)
        result, text = args.handler(ctx, args)
    except SpecError as exc:
        return _refuse(args, str(exc), exc.as_dict(), EXIT_USAGE)
    except Usage as exc:
        return _refuse(args, str(exc), {"error": {"code": "usage", "message": str(exc)}}, EXIT_USAGE)
    except StudioError as exc:
        return _refuse(args, str(exc), exc.as_dict(), EXIT_REFUSED)
    except OSError as exc:
        return _refuse(args, str(exc), {"error": {"code": "os_error", "message": str(exc)}}, EXIT_REFUSED)
    except KeyboardInterrupt:
        return 130
    if args.json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    elif text:
        print(text)
    return 0


def _refuse(args, message: str, body: dict, code: int) -> int:
    if getattr(args, "json", False):
        json.dump(body, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    print(f"error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
