"""What a lab adds to a compute instance's life, without starting one: notebook activity keeps an
instance up past its idle timeout, deleting the instance deletes its home, the data view, and the
lab environment's packages."""

import os
import signal
import subprocess
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from compute import services
from compute.agent import LocalAgent
from compute.models import ComputeTarget, Node, NodeStatus, TargetKind
from data.services import data_asset_delete, data_version_from_file
from environments.services import environment_create
from labs.models import InstanceLab, LabState
from labs.runtime import LAB_PACKAGES, data_view_refresh, lab_environment_packages, lab_home, lab_token_name
from studio.services import token_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _instances_in_the_tests_data_dir(settings, studio_data_dir):
    settings.DATA_DIR = studio_data_dir


@pytest.fixture
def instance(owner, workspace):
    target = services.target_create(
        actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="alice-box", idle_shutdown_minutes=10
    ).target
    services.autoscale()
    Node.objects.filter(target=target).update(status=NodeStatus.IDLE, idle_since=timezone.now() - timedelta(minutes=30))
    return target


def test_recent_notebook_activity_keeps_an_idle_instance_running(instance):
    services.instance_activity_record(target_id=instance.pk, at=timezone.now() - timedelta(minutes=2))
    services.autoscale()
    instance.refresh_from_db()
    assert instance.instance_running
    assert Node.objects.get(target=instance).status == NodeStatus.IDLE


def test_an_instance_with_old_notebook_activity_stops_after_its_idle_timeout(instance):
    services.instance_activity_record(target_id=instance.pk, at=timezone.now() - timedelta(minutes=11))
    services.autoscale()
    instance.refresh_from_db()
    assert not instance.instance_running
    assert Node.objects.get(target=instance).status == NodeStatus.LEAVING


def test_activity_is_only_ever_moved_forward(instance):
    later, earlier = timezone.now(), timezone.now() - timedelta(hours=1)
    services.instance_activity_record(target_id=instance.pk, at=later)
    services.instance_activity_record(target_id=instance.pk, at=earlier)
    instance.refresh_from_db()
    assert instance.instance_activity_at == later


def test_deleting_an_instance_deletes_its_home(owner, instance, django_capture_on_commit_callbacks):
    home = lab_home(instance.pk)
    (home / "notebooks with spaces").mkdir(parents=True)
    (home / "notebooks with spaces" / "analysis ✓.ipynb").write_text("{}")
    other = services.target_create(actor=owner, workspace=instance.workspace, kind=TargetKind.INSTANCE, name="b2")
    lab_home(other.target.pk).mkdir(parents=True)
    with django_capture_on_commit_callbacks(execute=True):
        services.target_delete(actor=owner, target=instance)
    assert not ComputeTarget.objects.filter(pk=instance.pk).exists()
    assert not home.parent.exists()
    assert lab_home(other.target.pk).is_dir()  # another instance's home stays


def test_the_data_view_holds_each_version_by_asset_name_and_follows_deletes(owner, workspace, tmp_path):
    source = tmp_path / "t.csv"
    source.write_text("a,b\n1,x\n2,y\n")
    data_version_from_file(actor=owner, workspace=workspace, path=source, name="sales by region (EU)")
    data_version_from_file(actor=owner, workspace=workspace, path=source, name="sales by region (EU)")
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="old stuff")
    folder = tmp_path / "view"
    assert data_view_refresh(workspace_id=workspace.pk, folder=folder) == 3
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet")) == [
        "old stuff/v1.parquet",
        "sales by region (EU)/v1.parquet",
        "sales by region (EU)/v2.parquet",
    ]
    assert (folder / "old stuff" / "v1.parquet").stat().st_mode & 0o004  # the sandbox's user reads it
    assert data_view_refresh(workspace_id=workspace.pk, folder=folder) == 0
    data_asset_delete(actor=owner, asset=version.asset)
    data_view_refresh(workspace_id=workspace.pk, folder=folder)
    assert not (folder / "old stuff").exists()


def test_a_chosen_environment_gets_the_lab_packages_it_lacks(owner, workspace, instance):
    plain = environment_create(actor=owner, workspace=workspace, name="plain", base="python", requirements="six\n")
    own_lab = environment_create(
        actor=owner, workspace=workspace, name="own-lab", base="python", requirements="jupyterlab==4.6.5\n"
    )
    lab = InstanceLab.objects.create(target=instance)
    default_key, default_packages = lab_environment_packages(lab)
    assert set(LAB_PACKAGES) <= set(default_packages) and any(p.startswith("pandas==") for p in default_packages)
    lab.environment_version = plain
    key, packages = lab_environment_packages(lab)
    assert key != default_key and packages == ["six", *LAB_PACKAGES]
    lab.environment_version = own_lab
    _, packages = lab_environment_packages(lab)
    assert packages == ["jupyterlab==4.6.5", "mlflow-skinny==3.17.2"]  # its own JupyterLab is kept
    assert lab_home(instance.pk).is_relative_to(settings.DATA_DIR)


def test_a_lab_killed_without_a_word_is_recorded_stopped_by_the_agent(owner, instance):
    node = Node.objects.get(target=instance)
    notebooks_token = token_create(user=owner, name=lab_token_name(instance), workspace=instance.workspace).token
    lab = InstanceLab.objects.create(
        target=instance, node=node, state=LabState.READY, address="127.0.0.1:1", token_sealed="sealed", pid=1
    )
    agent = LocalAgent()
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands for the lab process
    agent.labs[node.pk] = process
    agent.children[node.pk] = process  # its node still runs: only the lab dies
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    agent._reap_labs()
    lab.refresh_from_db()
    assert lab.state == LabState.STOPPED and lab.address == "" and lab.token_sealed == "" and lab.pid is None
    assert "code -9" in lab.reason
    notebooks_token.refresh_from_db()
    assert notebooks_token.revoked_at is not None
    assert node.pk not in agent.labs


@pytest.mark.parametrize("change", ["removed", "made a reader", "disabled"])
def test_an_instance_whose_owner_lost_access_is_stopped_with_its_lab(contributor, workspace, change):
    """Bob's lab reads the workspace's data: once he may not, the autoscaler stops his instance
    (so its lab stops), even while his notebooks are busy."""
    from workspaces.models import Membership, Role

    target = services.target_create(
        actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs-box"
    ).target
    services.autoscale()
    services.instance_activity_record(target_id=target.pk, at=timezone.now())
    membership = Membership.objects.filter(workspace=workspace, user=contributor)
    if change == "removed":
        membership.delete()
    elif change == "made a reader":
        membership.update(role=Role.READER)
    else:
        type(contributor).objects.filter(pk=contributor.pk).update(is_active=False)
    services.autoscale()
    target.refresh_from_db()
    assert not target.instance_running
    assert Node.objects.get(target=target).status in (NodeStatus.LEAVING, NodeStatus.STOPPED)
