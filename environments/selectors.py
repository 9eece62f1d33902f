"""Read queries for environments and their versions, scoped to one workspace."""

from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404

from workspaces.models import Workspace

from .models import Environment, EnvironmentBuild, EnvironmentVersion


def _latest(field: str):
    return Subquery(
        EnvironmentVersion.objects.filter(environment=OuterRef("pk")).order_by("-version").values(field)[:1]
    )


def environment_list(*, workspace: Workspace, q: str = "") -> QuerySet[Environment]:
    """Environments with their latest version's number, base and date, and their version count (one query)."""
    environments = (
        Environment.objects.filter(workspace=workspace)
        .select_related("created_by")
        .annotate(
            latest_version=_latest("version"),
            latest_version_id=_latest("pk"),
            latest_base=_latest("base"),
            latest_created_at=_latest("created_at"),
            version_count=Count("versions"),
        )
    )
    if q:
        environments = environments.filter(name__icontains=q.strip())
    return environments.order_by("name")


def environment_get(*, workspace: Workspace, environment_id) -> Environment:
    try:
        return environment_list(workspace=workspace).get(pk=int(environment_id))
    except (Environment.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Environment not found.") from None


def environment_version_list(*, environment: Environment) -> QuerySet[EnvironmentVersion]:
    """Versions, newest first, with their builds on every host."""
    return (
        environment.versions.select_related("created_by")
        .prefetch_related(Prefetch("builds", queryset=EnvironmentBuild.objects.order_by("host")))
        .order_by("-version")
    )


def environment_version_get(*, environment: Environment, version) -> EnvironmentVersion:
    try:
        return (
            environment_version_list(environment=environment)
            .select_related("environment", "environment__workspace")
            .get(version=int(version))
        )
    except (EnvironmentVersion.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Environment version not found.") from None


def environment_version_get_by_id(*, workspace: Workspace, version_id) -> EnvironmentVersion:
    """A version by its id, only within `workspace` (what a job's spec names)."""
    try:
        return EnvironmentVersion.objects.select_related("environment").get(
            pk=int(version_id), environment__workspace=workspace
        )
    except (EnvironmentVersion.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Environment version not found.") from None


def environment_versions_for_picker(*, workspace: Workspace) -> QuerySet[EnvironmentVersion]:
    """Every version of every environment, for job forms (by name, newest first)."""
    return (
        EnvironmentVersion.objects.filter(environment__workspace=workspace)
        .select_related("environment")
        .order_by("environment__name", "-version")
    )
