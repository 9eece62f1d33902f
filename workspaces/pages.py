"""What every workspace page view does first and last: fetch-and-authorise the workspace, then
render with what the shell needs to show or hide controls."""

from django.shortcuts import render

from workspaces.policy import Action, role_allows
from workspaces.selectors import workspace_get_for_user


def page_workspace(request, workspace_id, *, write: bool = False):
    """The workspace if the user may view it (or change it: `write`, or any POST); 404/403 otherwise."""
    action = Action.WRITE if write or request.method == "POST" else Action.VIEW
    return workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=action)


def render_page(request, template: str, workspace, **context):
    context.update(
        workspace=workspace,
        can_write=role_allows(workspace.role, Action.WRITE),
        can_administer=role_allows(workspace.role, Action.ADMINISTER),
    )
    return render(request, template, context)
