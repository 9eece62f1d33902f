"""Where an instance's lab answers, and whether a user may reach it: one read shared by the lab
proxy and the studio's redirect view, so both answer the same 404 to the same people."""

from dataclasses import dataclass, field

from django.http import Http404

from commands.sealing import unseal
from compute.models import ComputeTarget, TargetKind
from workspaces.policy import PersonalAction, personal_allows, role_of

from .models import LabState


@dataclass(frozen=True)
class LabRoute:
    """The owner's view of a lab: its state, and while READY where it answers and its token."""

    workspace_id: int
    target_id: int
    target_name: str
    state: str  # a LabState
    reason: str = ""
    address: str = ""  # "127.0.0.1:PORT", only while READY
    token: str = field(default="", repr=False)  # Jupyter's token, unsealed; never sent to a browser

    @property
    def ready(self) -> bool:
        return self.state == LabState.READY and bool(self.address and self.token)


def lab_route(*, workspace_id: int, target_id: int, user) -> LabRoute:
    """The lab of compute instance `target_id` in workspace `workspace_id` for `user`; Http404 unless
    the user is the instance's owner and may still run code in its workspace (a workspace Owner
    who does not own the instance gets 404 too: a lab is one person's workstation). Two queries."""
    if user is None or not user.is_authenticated:
        raise Http404("Lab not found.")
    target = (
        ComputeTarget.objects.select_related("workspace", "lab")
        .filter(pk=target_id, workspace_id=workspace_id, kind=TargetKind.INSTANCE)
        .first()
    )
    if target is None or target.owner_id != user.pk:
        raise Http404("Lab not found.")
    if not personal_allows(role=role_of(user, target.workspace), is_owner=True, action=PersonalAction.USE):
        raise Http404("Lab not found.")
    base = {"workspace_id": workspace_id, "target_id": target_id, "target_name": target.name}
    lab = getattr(target, "lab", None)
    if not target.instance_running:
        reason = "The compute instance is stopped: start it to open JupyterLab."
        return LabRoute(**base, state=LabState.STOPPED, reason=reason)
    if lab is None:
        return LabRoute(**base, state=LabState.STARTING, reason="The compute instance is starting.")
    if lab.state != LabState.READY:
        return LabRoute(**base, state=lab.state, reason=lab.reason)
    try:
        token = unseal(lab.token_sealed) if lab.token_sealed else ""
    except ValueError:
        reason = "The lab's token cannot be read (the studio's SECRET_KEY changed): restart the instance."
        return LabRoute(**base, state=LabState.FAILED, reason=reason)
    return LabRoute(**base, state=LabState.READY, reason=lab.reason, address=lab.address, token=token)
