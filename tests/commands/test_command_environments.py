"""Command jobs in environments with requirements from PyPI, on real node workers: the first job
builds the environment (its build in the job's log), the next reuses the host's cache, and a
requirement that does not exist fails the job with the installer's last lines."""

import pytest

from compute.jobs.models import JobStatus
from compute.models import TargetKind
from compute.services import target_create
from environments.models import BuildState, EnvironmentBuild, EnvironmentVersion

from .test_command_jobs import finished, log_text, submit, upload

pytestmark = [pytest.mark.worker]

TABLE_PY = """\
import tabulate
print(tabulate.tabulate([["prix (€)", 1.5], ["naïve", 2]], headers=["name", "value"]))
print("tabulate", tabulate.__version__)
"""


@pytest.fixture
def node_env(node_env, studio_data_dir):
    """The nodes build into this test's own cache (by default they share the host's), so the first
    job always builds."""
    return {**node_env, "STUDIO_ENVIRONMENT_CACHE_DIR": str(studio_data_dir / "environments")}


@pytest.fixture
def cluster(owner, workspace):
    return target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=0, max_nodes=1
    ).target


def environment_version(api, owner, workspace, name: str, requirements: str) -> EnvironmentVersion:
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/environments/",
        {"name": name, "base": "python", "requirements": requirements},
        format="json",
    )
    assert response.status_code == 201, response.content
    return EnvironmentVersion.objects.get(pk=response.json()["latest_version_id"])


def run_table(api, owner, workspace, cluster, version, code_id):
    response = submit(
        api,
        owner,
        workspace,
        cluster,
        {"code_snapshot_id": code_id, "command": "python table.py", "environment_version_id": version.pk},
    )
    assert response.status_code == 201, response.content
    return finished(response.json()["id"], timeout=240)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_the_first_job_builds_the_environment_and_the_next_reuses_the_hosts_cache(
    api, owner, workspace, cluster, agent, broker
):
    version = environment_version(api, owner, workspace, "tables", "# for the report\ntabulate==0.9.0\n")
    code_id = upload(api, owner, workspace, {"table.py": TABLE_PY})["id"]

    first = run_table(api, owner, workspace, cluster, version, code_id)
    text = log_text(first)
    assert first.status == JobStatus.COMPLETED, (first.error, text)
    assert f"Building environment {version.spec_hash[:12]}" in text, text  # the build streamed into the log
    assert "tabulate==0.9.0" in text or "+ tabulate" in text, text  # uv's own lines
    assert f"Environment {version.spec_hash[:12]} ready in" in text
    assert "prix (€)" in text and "tabulate 0.9.0" in text
    assert "(cached on this host)" not in text
    version.refresh_from_db()
    assert "tabulate==0.9.0" in version.lock.splitlines(), version.lock
    build = EnvironmentBuild.objects.get(version=version)
    assert build.state == BuildState.READY and build.seconds > 0 and build.size_bytes > 0
    built_used_at = build.last_used_at

    second = run_table(api, owner, workspace, cluster, version, code_id)
    text = log_text(second)
    assert second.status == JobStatus.COMPLETED, (second.error, text)
    assert second.node_id == first.node_id
    assert f"Environment {version} ready (cached on this host)." in text, text
    assert "Building environment" not in text and "Installing" not in text and "ready in" not in text
    assert "tabulate 0.9.0" in text
    build = EnvironmentBuild.objects.get(version=version)  # still the one row for this host
    assert build.state == BuildState.READY and build.last_used_at > built_used_at


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_requirement_that_does_not_exist_fails_the_job_with_the_installers_last_lines(
    api, owner, workspace, cluster, agent, broker
):
    version = environment_version(api, owner, workspace, "missing", "no-such-package-xyz-studio==1.0")
    code_id = upload(api, owner, workspace, {"table.py": TABLE_PY})["id"]

    job = run_table(api, owner, workspace, cluster, version, code_id)
    assert job.status == JobStatus.FAILED, (job.status, log_text(job))
    assert job.error.startswith(f"The environment {version} failed to build: Installing the requirements failed"), (
        job.error
    )
    last_lines = job.error.split("Its last lines:", 1)[1]
    assert "no-such-package-xyz-studio" in last_lines and "not found" in last_lines, job.error
    assert "tabulate" not in log_text(job)  # the command never ran
    assert job.result.get("exit_code") is None
    build = EnvironmentBuild.objects.get(version=version)
    assert build.state == BuildState.FAILED and "no-such-package-xyz-studio" in build.log_tail
    version.refresh_from_db()
    assert version.lock == ""
