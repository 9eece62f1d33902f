"""State changes for workspaces and members. Each service checks the actor's role itself (R4)."""

import shutil
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.template.defaultfilters import filesizeformat

from studio.credentials import LIMITED_TOKEN_MESSAGE, workspace_limit
from studio.models import SignInLinkPurpose
from studio.services import sign_in_link_create
from studio.validation import model_validate

from .models import Activity, Membership, Role, Workspace
from .policy import Action, require
from .selectors import workspace_storage_used


def activity_record(*, workspace: Workspace, actor, verb: str, summary: str) -> Activity:
    """Append one line to the workspace's history (shown on Home and the workspace page)."""
    return Activity.objects.create(
        workspace=workspace,
        actor=actor if actor is not None and actor.is_authenticated else None,
        verb=verb,
        summary=summary[:300],
    )


def _clean_name(name) -> str:
    name = name.strip() if isinstance(name, str) else ""
    model_validate(Workspace(name=name), fields=["name"])
    return name


def _clean_description(description) -> str:
    description = description or ""
    if not isinstance(description, str):
        raise ValidationError({"description": ["The description must be text."]})
    model_validate(Workspace(description=description), fields=["description"])
    return description


def workspace_create(*, actor, name: str, description: str = "") -> Workspace:
    """Create a workspace owned by `actor`."""
    if actor is None or not actor.is_authenticated:
        raise ValidationError("Sign in to create a workspace.")
    if workspace_limit(actor) is not None:
        raise PermissionDenied(LIMITED_TOKEN_MESSAGE)
    with transaction.atomic():
        workspace = Workspace(name=_clean_name(name), description=_clean_description(description), created_by=actor)
        workspace.full_clean()
        workspace.save()
        Membership.objects.create(workspace=workspace, user=actor, role=Role.OWNER, added_by=actor)
        activity_record(
            workspace=workspace, actor=actor, verb="created", summary=f"{actor} created the workspace {workspace.name}"
        )
    return workspace


def workspace_update(
    *, actor, workspace: Workspace, name: str | None = None, description: str | None = None
) -> Workspace:
    """Rename or describe a workspace (Owners)."""
    require(actor, workspace, Action.ADMINISTER)
    changes = []
    if name is not None:
        name = _clean_name(name)
        if name != workspace.name:
            changes.append(f"renamed it from {workspace.name} to {name}")
            workspace.name = name
    if description is not None:
        description = _clean_description(description)
        if description != workspace.description:
            changes.append("changed its description")
            workspace.description = description
    if changes:
        with transaction.atomic():
            workspace.full_clean()
            workspace.save(update_fields=["name", "description", "updated_at"])
            activity_record(
                workspace=workspace, actor=actor, verb="updated", summary=f"{actor} " + " and ".join(changes)
            )
    return workspace


def workspace_artifact_dir(workspace_id: int):
    """The directory that holds every file of a workspace, under the one artifact root (R1)."""
    return settings.ARTIFACT_ROOT / "workspaces" / str(int(workspace_id))


def workspace_delete(*, actor, workspace: Workspace) -> None:
    """Delete a workspace with everything in it (Owners). Its files go once the rows are gone."""
    require(actor, workspace, Action.ADMINISTER)
    folder = workspace_artifact_dir(workspace.pk)
    with transaction.atomic():
        workspace.delete()
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


def _owner_count(workspace: Workspace) -> int:
    return Membership.objects.filter(workspace=workspace, role=Role.OWNER).count()


def _clean_role(role) -> str:
    if role not in Role.values:
        raise ValidationError({"role": [f"Choose one of: {', '.join(Role.values)}."]})
    return role


def member_add(*, actor, workspace: Workspace, username: str, role: str) -> Membership:
    """Add an existing user to the workspace with a role (Owners)."""
    require(actor, workspace, Action.ADMINISTER)
    role = _clean_role(role)
    if not isinstance(username, str) or not username.strip():
        raise ValidationError({"username": ["Give the username of the person to add."]})
    User = get_user_model()
    user = User.objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ValidationError(
            {"username": ValidationError(f"No active user is called {username.strip()!r}.", code="not_found")}
        )
    with transaction.atomic():
        if Membership.objects.filter(workspace=workspace, user=user).exists():
            raise ValidationError(
                {
                    "username": ValidationError(
                        f"{user.username} is already a member; change their role instead.", code="conflict"
                    )
                }
            )
        membership = Membership.objects.create(workspace=workspace, user=user, role=role, added_by=actor)
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="member_added",
            summary=f"{actor} added {user.username} as {Role(role).label}",
        )
    return membership


@dataclass(frozen=True)
class Invitation:
    membership: Membership
    secret: str = ""  # the one-time link's secret, shown once; empty when the person already had an account
    expires_at: object = None


def _never_signed_in(user) -> bool:
    return user.last_login is None and not user.has_usable_password()


def member_invite(*, actor, workspace: Workspace, username: str, role: str, email: str = "") -> Invitation:
    """Add someone to the workspace (Owners). An existing user is added as a member; a new username
    gets an account without a password, and a one-time invitation link (stored hashed, expiring,
    shown once to the Owner) with which the person sets their password."""
    require(actor, workspace, Action.ADMINISTER)
    role = _clean_role(role)
    if not isinstance(username, str) or not username.strip():
        raise ValidationError({"username": ["Give a username for the person to add."]})
    User = get_user_model()
    username = username.strip()
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        membership = Membership.objects.filter(workspace=workspace, user=existing).first()
        if membership is not None and existing.is_active and _never_signed_in(existing):
            # Invited here before and the link was lost or expired: a new link replaces the old one.
            issued = sign_in_link_create(created_by=actor, user=existing, purpose=SignInLinkPurpose.INVITATION)
            activity_record(
                workspace=workspace,
                actor=actor,
                verb="member_invited",
                summary=f"{actor} sent {existing.username} a new invitation link",
            )
            return Invitation(membership=membership, secret=issued.secret, expires_at=issued.link.expires_at)
        return Invitation(membership=member_add(actor=actor, workspace=workspace, username=username, role=role))
    email = (email or "").strip()
    with transaction.atomic():
        user = User(username=username, email=email)
        user.set_unusable_password()
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            fields = {k: v for k, v in exc.message_dict.items() if k in ("username", "email")}
            raise ValidationError(fields or exc.message_dict) from exc
        user.save()
        membership = Membership.objects.create(workspace=workspace, user=user, role=role, added_by=actor)
        issued = sign_in_link_create(created_by=actor, user=user, purpose=SignInLinkPurpose.INVITATION)
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="member_invited",
            summary=f"{actor} invited {user.username} as {Role(role).label}",
        )
    return Invitation(membership=membership, secret=issued.secret, expires_at=issued.link.expires_at)


def member_change_role(*, actor, workspace: Workspace, membership: Membership, role: str) -> Membership:
    """Change a member's role (Owners). The last Owner cannot be demoted."""
    require(actor, workspace, Action.ADMINISTER)
    role = _clean_role(role)
    if membership.workspace_id != workspace.pk:
        raise ValidationError("That member belongs to another workspace.", code="not_found")
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        if membership.role == role:
            return membership
        if membership.role == Role.OWNER and _owner_count(workspace) <= 1:
            raise ValidationError(
                {
                    "role": ValidationError(
                        "The last Owner cannot be demoted; make someone else an Owner first.", code="conflict"
                    )
                }
            )
        membership.role = role
        membership.save(update_fields=["role"])
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="member_role_changed",
            summary=f"{actor} made {membership.user.username} {Role(role).label}",
        )
    return membership


def member_remove(*, actor, workspace: Workspace, membership: Membership) -> None:
    """Remove a member (Owners), or leave (any member removing themselves).

    The last Owner can neither be removed nor leave.
    """
    leaving = membership.user_id == actor.pk
    require(actor, workspace, Action.VIEW if leaving else Action.ADMINISTER)
    if membership.workspace_id != workspace.pk:
        raise ValidationError("That member belongs to another workspace.", code="not_found")
    with transaction.atomic():
        membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
        if membership.role == Role.OWNER and _owner_count(workspace) <= 1:
            raise ValidationError(
                "The last Owner cannot leave or be removed; make someone else an Owner first, or delete the workspace.",
                code="conflict",
            )
        membership.delete()
        username = membership.user.username
        summary = f"{username} left the workspace" if leaving else f"{actor} removed {username}"
        activity_record(workspace=workspace, actor=actor, verb="member_removed", summary=summary)


def account_delete(*, actor, user) -> None:
    """Delete an account (staff, from the admin console). Refused for one's own account and for the
    last Owner of a workspace, which would be left without one; disabling keeps the history instead."""
    if not (actor.is_active and actor.is_staff):
        raise PermissionDenied("Only staff delete accounts.")
    if user.pk == actor.pk:
        raise ValidationError("You cannot delete your own account.")
    owned = Membership.objects.filter(user=user, role=Role.OWNER).values_list("workspace_id", flat=True)
    sole = (
        Workspace.objects.filter(pk__in=list(owned))
        .annotate(owners=Count("memberships", filter=Q(memberships__role=Role.OWNER)))
        .filter(owners__lte=1)
        .values_list("name", flat=True)
    )
    if sole:
        raise ValidationError(
            f"{user} is the last Owner of {', '.join(sorted(sole))}: make someone else an Owner first, "
            "or disable the account instead."
        )
    user.delete()


# --- Storage quota ----------------------------------------------------------------------------------
class StorageQuotaExceeded(ValidationError):
    """The workspace's stored bytes are at or past its quota (or would pass it)."""


def workspace_storage_check(*, workspace: Workspace, adding: int = 0) -> None:
    """Refuse to store `adding` more bytes when that would pass the workspace's quota; with nothing
    to add (a job about to write results), refuse once the workspace is at or past its quota."""
    used, quota = workspace_storage_used(workspace=workspace), workspace.storage_quota
    if (used + adding > quota) if adding else (used >= quota):
        what = "this upload would pass it" if adding else "it is full"
        raise StorageQuotaExceeded(
            f"This workspace stores {filesizeformat(used)} of its {filesizeformat(quota)} storage quota; "
            f"{what}. Delete data versions, jobs or models you no longer need, or ask an administrator "
            "for a larger quota."
        )
