"""Read queries for workspaces, always scoped to the workspaces the user is a member of."""

from django.db.models import BigIntegerField, Count, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from studio.credentials import workspace_limit

from . import usage
from .models import Activity, Membership, Workspace
from .policy import Action, require


def _role_subquery(user):
    return Subquery(Membership.objects.filter(workspace=OuterRef("pk"), user=user).values("role")[:1])


def _count_subquery(model, field: str = "workspace"):
    return Coalesce(
        Subquery(
            model.objects.filter(**{field: OuterRef("pk")})
            .order_by()
            .values(field)
            .annotate(n=Count("pk"))
            .values("n")[:1],
            output_field=IntegerField(),
        ),
        0,
    )


def _with_counts(workspaces: QuerySet[Workspace], user) -> QuerySet[Workspace]:
    """The user's role and how much the workspace holds, as subqueries (still one query). The apps
    register what they count (workspaces/usage.py)."""
    return workspaces.annotate(
        role=_role_subquery(user),
        member_count=_count_subquery(Membership),
        **{count.name: _count_subquery(count.model, count.workspace_field) for count in usage.COUNTS},
    )


def _sum_subquery(queryset: QuerySet, workspace_field: str, size_field: str):
    return Coalesce(
        Subquery(
            queryset.filter(**{workspace_field: OuterRef("pk")})
            .order_by()
            .values(workspace_field)
            .annotate(total=Sum(size_field))
            .values("total")[:1],
            output_field=BigIntegerField(),
        ),
        Value(0),
        output_field=BigIntegerField(),
    )


def _with_storage(workspaces: QuerySet[Workspace]) -> QuerySet[Workspace]:
    """`storage_used`: the bytes a workspace holds, summed from the sizes recorded when each file
    was written (no disk walk): data versions, job artifacts, registered model files, and uploads
    waiting for their ingest (each registered by its app in workspaces/usage.py)."""
    total = Value(0, output_field=BigIntegerField())
    for stored in usage.STORED:
        total = total + _sum_subquery(stored.rows(), stored.workspace_field, stored.size_field)
    return workspaces.annotate(storage_used=total)


def workspace_storage_used(*, workspace: Workspace) -> int:
    """The bytes the workspace holds now (one query)."""
    return _with_storage(Workspace.objects.filter(pk=workspace.pk)).values_list("storage_used", flat=True).get()


def _reachable(workspaces: QuerySet[Workspace], user, field: str = "pk") -> QuerySet:
    """Only the workspace a workspace-limited token may reach (studio/credentials.py)."""
    limit = workspace_limit(user)
    return workspaces if limit is None else workspaces.filter(**{field: limit})


def workspace_list_for_user(*, user, with_storage: bool = False) -> QuerySet[Workspace]:
    """The user's workspaces with their role and counts (`with_storage`: and storage used), in one query."""
    if not user.is_authenticated:
        return Workspace.objects.none()
    workspaces = _with_counts(_reachable(Workspace.objects.filter(memberships__user=user), user), user)
    return (_with_storage(workspaces) if with_storage else workspaces).order_by("name", "id")


def workspace_get_for_user(*, user, workspace_id, action: str = Action.VIEW, with_storage: bool = False) -> Workspace:
    """Fetch-and-authorise: the workspace if the user may do `action` in it (`with_storage`: with
    `storage_used` too).

    A non-member gets Http404 whether or not the workspace exists; a member whose role lacks
    the action gets PermissionDenied.
    """
    try:
        workspace_id = int(workspace_id)
    except (TypeError, ValueError, OverflowError):
        raise Http404("Workspace not found.") from None
    workspaces = _with_counts(Workspace.objects.filter(pk=workspace_id), user)
    if with_storage:
        workspaces = _with_storage(workspaces)
    workspace = _reachable(workspaces, user).first() if user.is_authenticated else None
    if workspace is None or workspace.role is None:
        raise Http404("Workspace not found.")
    workspace._role_cache = (user.pk, workspace.role)
    require(user, workspace, action)
    return workspace


def workspace_joined_last_id(*, user) -> int | None:
    """The id of the workspace `user` joined most recently (where an invitation lands them), or None."""
    return (
        Membership.objects.filter(user_id=user.pk).order_by("-created_at", "-id").values_list("workspace_id", flat=True)
    ).first()


def member_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user", "added_by").order_by("user__username")


def member_get(*, workspace: Workspace, member_id) -> Membership:
    try:
        return member_list(workspace=workspace).get(pk=int(member_id))
    except (Membership.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Member not found.") from None


def activity_list_for_workspace(*, workspace: Workspace) -> QuerySet[Activity]:
    return Activity.objects.filter(workspace=workspace).select_related("actor", "workspace")


def activity_recent_for_user(*, user, limit: int = 15) -> QuerySet[Activity]:
    return (
        _reachable(Activity.objects.filter(workspace__memberships__user=user), user, "workspace_id")
        .select_related("actor", "workspace")
        .order_by("-created_at", "-id")[:limit]
    )
