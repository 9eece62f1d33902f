"""What a request's credential limits its user to.

A personal API token may be limited to one workspace (`ApiToken.workspace`: the token a compute
instance's lab hands to its notebooks). Authentication marks the request's user with that
workspace, and the one policy table (workspaces/policy.py) and the workspace selectors read the
mark: every other workspace is then not found, and nothing outside a workspace (new workspaces,
new tokens) may be made with it.
"""

WORKSPACE_LIMIT_ATTRIBUTE = "credential_workspace_id"
LIMITED_TOKEN_MESSAGE = "A token limited to one workspace cannot do this; sign in or use a personal token."  # noqa: S105 - a message


def credential_limit(user, workspace_id: int | None) -> None:
    """Mark `user` (this request's own object) as limited to `workspace_id` (None: no limit)."""
    if workspace_id is not None:
        setattr(user, WORKSPACE_LIMIT_ATTRIBUTE, int(workspace_id))


def workspace_limit(user) -> int | None:
    """The one workspace the request's credential may reach, or None when it may reach all the user's."""
    return getattr(user, WORKSPACE_LIMIT_ATTRIBUTE, None)
