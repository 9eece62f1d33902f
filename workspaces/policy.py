"""The one policy table (R4): which role may do which action in a workspace.

Services call `require(...)`; views and viewsets only translate its exceptions. Nothing else in
the code base decides who may do what.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from .models import Membership, Role, Workspace


class Action:
    VIEW = "view"  # see the workspace and everything in it; download data and models
    WRITE = "write"  # create, change, run and delete data, compute, jobs, models and endpoints
    ADMINISTER = "administer"  # rename, describe or delete the workspace; manage its members

    ALL = (VIEW, WRITE, ADMINISTER)
    DESCRIPTIONS = {
        VIEW: "view this workspace",
        WRITE: "change the contents of this workspace",
        ADMINISTER: "administer this workspace (settings and members)",
    }


ALLOWED_ACTIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset({Action.VIEW, Action.WRITE, Action.ADMINISTER}),
    Role.CONTRIBUTOR: frozenset({Action.VIEW, Action.WRITE}),
    Role.READER: frozenset({Action.VIEW}),
}


def role_allows(role: str | None, action: str) -> bool:
    return role is not None and action in ALLOWED_ACTIONS.get(role, frozenset())


def role_of(user, workspace: Workspace) -> str | None:
    """The user's role in the workspace, or None. Cached on the workspace object per user."""
    if user is None or not user.is_authenticated:
        return None
    cached = getattr(workspace, "_role_cache", None)
    if cached is not None and cached[0] == user.pk:
        return cached[1]
    role = Membership.objects.filter(workspace_id=workspace.pk, user_id=user.pk).values_list("role", flat=True).first()
    workspace._role_cache = (user.pk, role)
    return role


def require(user, workspace: Workspace, action: str) -> str:
    """Raise Http404 for a non-member (no existence leak) and PermissionDenied for a role that
    lacks the action; return the user's role otherwise."""
    role = role_of(user, workspace)
    if role is None:
        raise Http404("Workspace not found.")
    if not role_allows(role, action):
        raise PermissionDenied(f"Your role ({Role(role).label}) does not allow you to {Action.DESCRIPTIONS[action]}.")
    return role
