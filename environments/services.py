"""Environments: versions (a base and requirements) made in the web process, built on nodes.

Roles are checked here (R4): Readers read, Owners and Contributors create and delete. A version is
immutable; its `spec_hash` keys the build cache of every host, and its `lock` keeps what its first
build resolved, so every later build (on any host) installs exactly the same packages.
"""

import collections
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from compute.jobs.models import Job
from studio.validation import model_validate
from workspaces.models import Workspace
from workspaces.policy import Action, require
from workspaces.services import activity_record

from . import builder
from .bases import Base, base_get, bases
from .models import BuildState, Environment, EnvironmentBuild, EnvironmentVersion

COMMAND = "command"  # the job kind whose spec names an environment version (commands.models.COMMAND)
MAX_REQUIREMENTS_CHARS = 20_000
LOG_TAIL_LINES = 40


def _clean_base(base) -> Base:
    found = base_get(base)
    if found is None:
        raise ValidationError({"base": [f"Choose one of: {', '.join(bases())}."]})
    return found


def _clean_requirements(requirements, base: Base) -> tuple[str, list[str]]:
    """(the text as written, newlines normalised; its canonical requirement lines)."""
    if not isinstance(requirements, str):
        raise ValidationError({"requirements": ["Give the requirements as text, one per line."]})
    text = requirements.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_REQUIREMENTS_CHARS:
        raise ValidationError({"requirements": [f"Use at most {MAX_REQUIREMENTS_CHARS:,} characters."]})
    try:
        lines = builder.requirements_parse(text, pinned=base.pinned())
    except builder.RequirementError as exc:
        raise ValidationError({"requirements": [str(exc)]}) from None
    return text, lines


def _version_new(*, actor, environment: Environment, number: int, base, requirements) -> EnvironmentVersion:
    chosen = _clean_base(base)
    text, lines = _clean_requirements(requirements, chosen)
    version = EnvironmentVersion(
        environment=environment,
        version=number,
        base=chosen.key,
        requirements=text,
        spec_hash=builder.spec_hash(chosen, lines),
        created_by=actor,
    )
    model_validate(version, fields=["base", "requirements", "spec_hash"])
    return version


def environment_create(
    *, actor, workspace: Workspace, name: str, base: str, requirements: str, description: str = ""
) -> EnvironmentVersion:
    """A new environment with its version 1 (Owners and Contributors)."""
    require(actor, workspace, Action.WRITE)
    name = name.strip() if isinstance(name, str) else ""
    description = description if isinstance(description, str) else ""
    errors = {}  # every field at fault at once, for the form
    try:
        model_validate(Environment(name=name, description=description), fields=["name", "description"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        version = _version_new(actor=actor, environment=None, number=1, base=base, requirements=requirements)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    conflict = ValidationError(
        {"name": ValidationError(f"This workspace already has an environment called {name}.", code="conflict")}
    )
    if Environment.objects.filter(workspace=workspace, name=name).exists():
        raise conflict
    try:
        with transaction.atomic():
            environment = Environment.objects.create(
                workspace=workspace, name=name, description=description, created_by=actor
            )
            version.environment = environment
            version.save()
            activity_record(
                workspace=workspace,
                actor=actor,
                verb="environment_created",
                summary=f"{actor} created the environment {name}",
            )
    except IntegrityError:
        raise conflict from None  # created by someone else meanwhile
    return version


def environment_version_create(*, actor, environment: Environment, base: str, requirements: str) -> EnvironmentVersion:
    """The environment's next version; a specification identical to the latest version's returns
    that version instead of making a copy."""
    require(actor, environment.workspace, Action.WRITE)
    version = _version_new(actor=actor, environment=environment, number=0, base=base, requirements=requirements)
    with transaction.atomic():
        Environment.objects.select_for_update().filter(pk=environment.pk).first()  # numbers one at a time
        latest = environment.versions.order_by("-version").first()
        if latest is not None and latest.spec_hash == version.spec_hash:
            return latest
        version.version = (latest.version if latest else 0) + 1
        version.save()
        Environment.objects.filter(pk=environment.pk).update(updated_at=timezone.now())
        activity_record(
            workspace=environment.workspace,
            actor=actor,
            verb="environment_version_created",
            summary=f"{actor} made version {version.version} of the environment {environment.name}",
        )
    return version


def environment_jobs(*, environment: Environment) -> list[str]:
    """The jobs whose spec names one of the environment's versions, in words (at most five)."""
    ids = list(environment.versions.values_list("pk", flat=True))
    jobs = list(
        Job.objects.filter(kind=COMMAND, spec__environment_version_id__in=ids).values_list("pk", "display_name")[:6]
    )
    names = [f"#{pk}" + (f" ({name})" if name else "") for pk, name in jobs[:5]]
    return names + (["more"] if len(jobs) > 5 else [])


def environment_delete(*, actor, environment: Environment) -> None:
    """Delete an environment and its versions; refused while a job names one of them."""
    require(actor, environment.workspace, Action.WRITE)
    jobs = environment_jobs(environment=environment)
    if jobs:
        raise ValidationError(
            f"{environment.name} is used by job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}. Delete those first.",
            code="conflict",
        )
    with transaction.atomic():
        name, workspace = environment.name, environment.workspace
        environment.delete()
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="environment_deleted",
            summary=f"{actor} deleted the environment {name}",
        )
    # Built copies stay in the hosts' caches (another version may share their hash) until evicted.


# --- On the node ----------------------------------------------------------------------------------
def environment_cache_dir() -> Path:
    return Path(settings.STUDIO_ENVIRONMENT_CACHE_DIR)


def environment_prepare(*, version: EnvironmentVersion, on_line: Callable[[str], None]) -> Path:
    """The python to run a job of this version with, from this host's cache or built now (its
    output streamed to `on_line`). Records the build on this host; raises builder.BuildFailed."""
    host = settings.STUDIO_HOSTNAME
    cache_dir = environment_cache_dir()
    ready = builder.reuse(spec_hash=version.spec_hash, cache_dir=cache_dir)
    now = timezone.now()
    if ready is not None:
        updated = EnvironmentBuild.objects.filter(version=version, host=host, state=BuildState.READY).update(
            last_used_at=now
        )
        if not updated:  # first use here of an entry another version (same hash) built, or a stale row
            _build_record(version=version, host=host, prepared=ready, log_tail="", now=now)
        return ready.python
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    def line(text: str) -> None:
        tail.append(text)
        on_line(text)

    _build_row_set(version=version, host=host, state=BuildState.BUILDING, started_at=now, finished_at=None, log_tail="")
    try:
        packages, requirements = _install_list(version)
        prepared = builder.prepare(
            spec_hash=version.spec_hash,
            base_packages=packages,
            requirements=requirements,
            cache_dir=cache_dir,
            size_limit_bytes=settings.STUDIO_ENVIRONMENT_CACHE_BYTES,
            on_line=line,
        )
    except builder.BuildFailed as exc:
        EnvironmentBuild.objects.filter(version=version, host=host).update(
            state=BuildState.FAILED, finished_at=timezone.now(), log_tail="\n".join(tail) or str(exc)
        )
        raise
    _build_record(version=version, host=host, prepared=prepared, log_tail="\n".join(tail), now=timezone.now())
    if not version.lock and prepared.freeze:
        # The first build resolves the lock; later ones (here or elsewhere) install exactly it.
        EnvironmentVersion.objects.filter(pk=version.pk, lock="").update(lock=prepared.freeze)
        version.lock = prepared.freeze
    if prepared.evicted:
        EnvironmentBuild.objects.filter(host=host, version__spec_hash__in=prepared.evicted).update(
            state=BuildState.EVICTED
        )
    return prepared.python


def environment_install_list(*, version: EnvironmentVersion) -> list[str]:
    """Every package line a build of this version installs (its lock once it has one), for a
    derived environment such as a compute instance's lab. Raises builder.BuildFailed."""
    packages, requirements = _install_list(version)
    return [*packages, *requirements]


def _install_list(version: EnvironmentVersion) -> tuple[list[str], list[str]]:
    """(base pins, requirements) to install: the version's lock once it has one, else its specification."""
    if version.lock.strip():
        return [], [line for line in version.lock.splitlines() if line.strip() and not line.startswith("#")]
    base = base_get(version.base)
    if base is None:
        raise builder.BuildFailed(f"The base {version.base} is no longer offered by this studio.")
    try:
        return list(base.packages), builder.requirements_parse(version.requirements, pinned=base.pinned())
    except builder.RequirementError as exc:  # the studio's own versions changed since the version was made
        raise builder.BuildFailed(f"The requirements no longer fit the base {base.key}: {exc}") from None


def _build_record(*, version, host: str, prepared: builder.Prepared, log_tail: str, now) -> None:
    values = {
        "state": BuildState.READY,
        "size_bytes": prepared.size_bytes,
        "finished_at": now,
        "last_used_at": now,
    }
    if prepared.built:
        values.update(seconds=prepared.seconds, log_tail=log_tail)
    _build_row_set(version=version, host=host, **values)


def _build_row_set(*, version, host: str, **values) -> None:
    """Update the (version, host) row, or create it; two node processes of one host may race here."""
    if EnvironmentBuild.objects.filter(version=version, host=host).update(**values):
        return
    try:
        with transaction.atomic():
            EnvironmentBuild.objects.create(version=version, host=host, **values)
    except IntegrityError:  # the other process created it first
        EnvironmentBuild.objects.filter(version=version, host=host).update(**values)
