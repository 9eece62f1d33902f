"""The command job kind: a user's own code, with its inputs, in a versioned environment, run in
the sandbox on a node. The node's process prepares and watches; it never runs the user's code."""

import os
import shutil
from pathlib import Path

from django.conf import settings

from compute.jobs.kinds import CleanSpec, JobHandler
from compute.jobs.runner import JobCanceled, JobError
from compute.jobs.tokens import job_token_issue
from compute.sandbox import Limits, Mount, Sandbox, SandboxSpec
from data.dataio.export import iter_csv
from data.models import DataVersion
from data.services import data_version_path
from environments.builder import BuildFailed
from environments.models import EnvironmentVersion
from environments.services import environment_prepare
from studio import objectstore

from . import services
from .code_services import code_snapshot_local
from .models import CodeSnapshot
from .placeholders import resolve
from .sealing import unseal
from .specs import clean_command_spec, public_command_spec

# Where things are inside the sandbox (with bubblewrap; the host paths are used without it).
SANDBOX_ROOT = "/job"
MIB = 1024 * 1024
# A job log line keeps 10,000 characters (JobContext.log): a cut line keeps fewer, so that the
# sandbox's "… [cut N chars]" still fits in it and the reader sees the line was cut.
LOG_LINE_CHARS = 9_900


class CommandJob(JobHandler):
    """Spec: see commands/specs.py. The job's code and inputs are copied into a scratch folder of
    the node, the command runs there in the sandbox, and each output folder's files become the
    job's artifacts (`outputs/<name>/<path>`)."""

    submittable = True
    page_template = "commands/_job_sections.html"

    def validate(self, *, workspace, spec) -> CleanSpec:
        clean, data_version = clean_command_spec(workspace=workspace, spec=spec)
        return CleanSpec(spec=clean, data_version=data_version)

    def public_spec(self, spec: dict) -> dict:
        return public_command_spec(spec)

    def page_context(self, job) -> dict:
        return services.command_page_context(job)

    def run(self, ctx) -> dict:
        job, spec = ctx.job, ctx.spec
        scratch = Path(settings.DATA_DIR) / "scratch" / f"job-{int(job.pk)}-{int(job.attempt)}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            return _run(ctx, job, spec, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _limits(job) -> Limits:
    size = job.node.target.node_size if job.node_id and job.node.target_id else None
    cores = size.cores if size else 1
    memory = (size.memory_gib if size else 2) * 1024 * MIB
    return Limits(
        memory_bytes=min(memory, settings.STUDIO_COMMAND_MAX_MEMORY_BYTES),
        processes=settings.STUDIO_COMMAND_MAX_PROCESSES,
        open_files=settings.STUDIO_COMMAND_MAX_OPEN_FILES,
        output_bytes=settings.STUDIO_COMMAND_MAX_OUTPUT_BYTES,
        threads=cores,
        line_chars=LOG_LINE_CHARS,
    )


def _materialise_data(version: DataVersion, folder: Path, name: str) -> Path:
    """The data version as `<name>.parquet` and `<name>.csv` in `folder`; the Parquet path."""
    folder.mkdir(parents=True)
    parquet = folder / f"{name}.parquet"
    shutil.copyfile(data_version_path(version), parquet)
    with open(folder / f"{name}.csv", "wb") as out:
        for chunk in iter_csv(parquet):
            out.write(chunk)
    return parquet


def _environment_python(ctx, env_version) -> Path:
    """The environment's Python on this node: from the host's cache, or built now (the build's
    lines stream into the job's log)."""
    ctx.log(f"Environment: {env_version}")
    streamed = []

    def build_line(text: str) -> None:
        streamed.append(1)
        ctx.log(text)

    try:
        python = environment_prepare(version=env_version, on_line=build_line)
    except BuildFailed as exc:
        raise JobError(f"The environment {env_version} failed to build: {exc}") from None
    if not streamed:  # a reuse from the cache says nothing itself
        ctx.log(f"Environment {env_version} ready (cached on this host).")
    return python


def _inputs_and_outputs(ctx, spec: dict, scratch: Path) -> tuple[list[Mount], dict]:
    """The folders the command sees (data inputs read-only, outputs writable) and what each
    placeholder stands for: a literal value, or (mount, file name in it)."""
    mounts, values = [], {}
    for name, item in spec["inputs"].items():
        if item["type"] == "data":
            version = DataVersion.objects.select_related("asset").get(pk=item["data_version_id"])
            parquet = _materialise_data(version, scratch / "inputs" / name, name)
            mount = Mount(parquet.parent, f"{SANDBOX_ROOT}/inputs/{name}")
            mounts.append(mount)
            values[("inputs", name)] = (mount, parquet.name)
            ctx.log(f"Input {name}: {version} ({version.rows:,} rows) as Parquet and CSV")
        else:
            value = item["value"]
            values[("inputs", name)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    for name in spec["outputs"]:
        folder = scratch / "outputs" / name
        folder.mkdir(parents=True)
        mount = Mount(folder, f"{SANDBOX_ROOT}/outputs/{name}", writable=True)
        mounts.append(mount)
        values[("outputs", name)] = (mount, "")
    return mounts, values


def _run(ctx, job, spec: dict, scratch: Path) -> dict:
    snapshot = CodeSnapshot.objects.get(pk=spec["code_snapshot_id"])
    env_version = EnvironmentVersion.objects.select_related("environment").get(pk=spec["environment_version_id"])
    work = scratch / "work"
    try:
        shutil.copytree(code_snapshot_local(snapshot), work)
    except objectstore.ObjectStoreError as exc:
        raise JobError(f"The code {snapshot.name} could not be fetched: {exc}") from None
    ctx.log(f"Code: {snapshot.name} ({snapshot.file_count} files, {snapshot.sha256[:12]})")

    python = _environment_python(ctx, env_version)
    ctx.check_canceled()
    # The environment at /job/env (its venv is relocatable); the Python it is made from at its own
    # path, since the venv's interpreter links there and the node user's home is hidden.
    environment = Mount(python.parent.parent, f"{SANDBOX_ROOT}/env")
    interpreter = Path(os.path.realpath(python)).parent.parent
    mounts, values = _inputs_and_outputs(ctx, spec, scratch)
    mounts += [environment, Mount(interpreter, str(interpreter))]
    ctx.check_canceled()

    try:
        secrets = {name: unseal(sealed) for name, sealed in spec.get("secret_env", {}).items()}
    except ValueError as exc:
        raise JobError(f"The job's secret variables cannot be read: {exc}.") from None
    token = job_token_issue(job=job)
    env = {**spec.get("env", {}), **secrets}
    sandbox_spec = SandboxSpec(
        argv=["/bin/sh", "-c", ""],
        workdir=Mount(work, f"{SANDBOX_ROOT}/work", writable=True),
        mounts=mounts,
        env=env,
        limits=_limits(job),
        hide=[Path(settings.DATA_DIR), Path(settings.BASE_DIR), Path.home()],
        network=spec.get("network", False),
        secrets=[*secrets.values(), token],
    )
    sandbox = Sandbox(sandbox_spec, on_line=lambda stream, text: ctx.log(text))
    resolved_values = {
        key: value if isinstance(value, str) else os.path.join(sandbox.path_of(value[0]), value[1]).rstrip("/")
        for key, value in values.items()
    }
    resolved = resolve(spec["command"], resolved_values)
    sandbox_spec.argv[-1] = resolved
    for name in spec.get("env", {}):
        env[name] = resolve(env[name], resolved_values, quote=False)
    env_prefix = sandbox.path_of(environment)
    env.update(
        {
            "PATH": f"{env_prefix}/bin:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": env_prefix,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "STUDIO_JOB_ID": str(job.pk),
            "STUDIO_RUN_TOKEN": token,
            "STUDIO_API_URL": settings.STUDIO_PUBLIC_URL,
            # The MLflow client in the job's code logs to this job itself (tracking/: the job is the run).
            "MLFLOW_TRACKING_URI": f"{settings.STUDIO_PUBLIC_URL.rstrip('/')}/w/{job.workspace_id}/mlflow",
            "MLFLOW_TRACKING_TOKEN": token,
            "MLFLOW_RUN_ID": str(job.pk),
            **({"MLFLOW_EXPERIMENT_ID": str(job.experiment_id)} if job.experiment_id else {}),
        }
    )
    protections = sandbox.protections.describe()
    services.command_result_record(job=job, command=resolved, protections=protections, environment=str(env_version))
    ctx.log(f"Protections: {' '.join(protections)}")
    ctx.log(f"$ {resolved}")
    ctx.on_stop(sandbox.stop)
    # The watchdog ends the process after a cancel or the time limit: no `finally` runs then.
    ctx.on_stop(lambda reason: shutil.rmtree(scratch, ignore_errors=True))
    sandbox.start()
    while (outcome := sandbox.wait(timeout=0.2)) is None:
        if ctx.cancel_requested.is_set():
            sandbox.stop("canceled")
            sandbox.wait()
            raise JobCanceled()
    services.command_result_record(job=job, exit_code=outcome.exit_code, limit=outcome.limit, seconds=outcome.seconds)
    if not outcome.ok:
        raise JobError(f"The command {outcome.reason}")
    ctx.log(f"The command exited with code 0 in {outcome.seconds:.2f} s")
    outputs = services.command_outputs_collect(ctx=ctx, scratch=scratch, outputs=spec["outputs"])
    return {
        "exit_code": 0,
        "command": resolved,
        "environment": str(env_version),
        "protections": protections,
        "outputs": outputs,
        "seconds": round(outcome.seconds, 3),
    }
