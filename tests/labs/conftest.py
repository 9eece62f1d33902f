import pytest

from compute import services as compute_services
from compute.models import TargetKind
from environments.services import environment_create
from workspaces.models import Membership, Role


@pytest.fixture
def people(persona, make_user, workspace, owner):
    """alice (workspace Owner), bob (Contributor, the instance's owner), dave (another Contributor),
    carol (Reader), mallory (outsider)."""
    dave = make_user("dave")
    Membership.objects.create(workspace=workspace, user=dave, role=Role.CONTRIBUTOR, added_by=owner)
    return persona | {"dave": dave}


@pytest.fixture
def bobs(contributor, workspace):
    """bob's compute instance (running, as a new instance is)."""
    return compute_services.target_create(
        actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs-box"
    ).target


@pytest.fixture
def team_version(owner, workspace):
    return environment_create(actor=owner, workspace=workspace, name="team.env", base="python", requirements="")


@pytest.fixture
def foreign_version(outsider, other_workspace):
    return environment_create(actor=outsider, workspace=other_workspace, name="theirs", base="python", requirements="")
