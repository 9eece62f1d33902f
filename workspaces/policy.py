"""The one policy table (R4): which role may do which action in a workspace.

Services call `require(...)`; views and viewsets only translate its exceptions. Nothing else in
the code base decides who may do what.
"""

import copy

from django.core.exceptions import PermissionDenied
from django.http import Http404

from studio.credentials import workspace_limit

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


def console_actor(user):
    """`user` acting through the admin console: an active staff member there has the Owner's rights in
    every workspace, so the admin calls the same services (same checks, same activity log) as the
    studio. Only the admin console makes such an actor; elsewhere staff are ordinary members."""
    if not (user.is_active and user.is_staff):
        raise PermissionDenied("Only active staff use the admin console.")
    actor = copy.copy(user)
    actor.acting_through_console = True
    return actor


def role_of(user, workspace: Workspace) -> str | None:
    """The user's role in the workspace, or None. Cached on the workspace object per user."""
    if user is None or not user.is_authenticated:
        return None
    limit = workspace_limit(user)
    if limit is not None and limit != workspace.pk:
        return None  # a token limited to another workspace: not a member here
    if getattr(user, "acting_through_console", False) and user.is_active and user.is_staff:
        return Role.OWNER
    cached = getattr(workspace, "_role_cache", None)
    if cached is not None and cached[0] == user.pk:
        role = cached[1]
    else:
        mine = Membership.objects.filter(workspace_id=workspace.pk, user_id=user.pk)
        role = mine.values_list("role", flat=True).first()
        workspace._role_cache = (user.pk, role)
    if limit is not None and role == Role.OWNER:
        # A token limited to one workspace (a notebook's) does a Contributor's work at most: code in
        # a notebook must not add members or make credentials that outlive the token.
        return Role.CONTRIBUTOR
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


class PersonalAction:
    """What can be done to a personal resource, one user's own (a compute instance, as in Azure)."""

    USE = "use"  # start, stop, restart
    CHANGE = "change"  # edit its settings
    DELETE = "delete"

    ALL = (USE, CHANGE, DELETE)
    DESCRIPTIONS = {USE: "started and stopped", CHANGE: "changed", DELETE: "deleted"}


# Beyond its owner (who needs the WRITE action), who else may act on a personal resource.
WORKSPACE_OWNER_MAY_ON_PERSONAL: frozenset[str] = frozenset({PersonalAction.USE, PersonalAction.DELETE})


def personal_allows(*, role: str | None, is_owner: bool, action: str) -> bool:
    if not role_allows(role, Action.WRITE):
        return False
    return is_owner or (role == Role.OWNER and action in WORKSPACE_OWNER_MAY_ON_PERSONAL)


def require_personal(user, workspace: Workspace, *, owner_id: int | None, action: str, noun: str) -> str:
    """`require(..., WRITE)`, then: only the resource's owner may act on it, and a workspace Owner
    may also do what WORKSPACE_OWNER_MAY_ON_PERSONAL lists. Returns the user's role."""
    role = require(user, workspace, Action.WRITE)
    if not personal_allows(role=role, is_owner=owner_id == user.pk, action=action):
        others = " (or a workspace Owner)" if action in WORKSPACE_OWNER_MAY_ON_PERSONAL else ""
        raise PermissionDenied(f"A {noun} is {PersonalAction.DESCRIPTIONS[action]} only by its owner{others}.")
    return role
