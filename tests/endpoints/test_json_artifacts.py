"""The JSON files of jobs and model versions are read through one selector each, which answers
None for a file that is missing or not JSON (pages then show nothing instead of failing)."""

import pytest

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.selectors import job_json_artifact
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from training.registry_selectors import model_version_json_file
from training.registry_services import model_version_dir

pytestmark = pytest.mark.django_db


def test_a_jobs_json_artifact_is_parsed_or_none(owner, workspace):
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    folder = job_artifact_dir(job)
    folder.mkdir(parents=True)
    (folder / "charts.json").write_text('{"roc": [1, 2]}')
    (folder / "broken.json").write_text("{not json")
    assert job_json_artifact(job=job, name="charts.json") == {"roc": [1, 2]}
    assert job_json_artifact(job=job, name="broken.json") is None
    assert job_json_artifact(job=job, name="missing.json") is None


def test_a_model_versions_json_file_is_parsed_or_none(model_version):
    assert model_version_json_file(version=model_version, name="reference_profile.json")
    assert model_version_json_file(version=model_version, name="missing.json") is None
    (model_version_dir(model_version) / "onnx_report.json").write_text("[truncated")
    assert model_version_json_file(version=model_version, name="onnx_report.json") is None
