"""Environment services: versions, identical specifications, roles, deletion, and the build on a node."""

import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from environments import builder, selectors, services
from environments.bases import base_get
from environments.models import BuildState, Environment, EnvironmentBuild, EnvironmentVersion
from workspaces.models import Activity

pytestmark = pytest.mark.django_db


def _create(actor, workspace, name="tables", requirements="tabulate", base="python", **extra):
    return services.environment_create(
        actor=actor, workspace=workspace, name=name, base=base, requirements=requirements, **extra
    )


def test_creating_an_environment_makes_version_1_with_its_hash(owner, workspace):
    version = _create(
        owner, workspace, requirements="Tabulate>=0.9  # pretty tables\r\nsix\r\n", description="Für Tabellen ✓"
    )
    assert version.version == 1 and version.base == "python"
    assert version.environment.description == "Für Tabellen ✓"
    assert version.requirements == "Tabulate>=0.9  # pretty tables\nsix"  # as written, newlines normalised
    assert version.spec_hash == builder.spec_hash(base_get("python"), builder.requirements_parse("six\ntabulate>=0.9"))
    assert Activity.objects.filter(workspace=workspace, verb="environment_created").exists()


def test_a_contributor_creates_and_a_reader_may_not(contributor, reader, workspace):
    assert _create(contributor, workspace).environment.created_by == contributor
    with pytest.raises(PermissionDenied):
        _create(reader, workspace, name="other")
    assert Environment.objects.filter(workspace=workspace).count() == 1


def test_an_outsider_gets_not_found(outsider, workspace):
    with pytest.raises(Http404):
        _create(outsider, workspace)


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"name": "has spaces"}, "name", "letters, digits"),
        ({"name": ""}, "name", "letters, digits"),
        ({"name": "x" * 101}, "name", "letters, digits"),
        ({"base": "conda"}, "base", "Choose one of: studio-sklearn, python"),
        ({"requirements": "six\n-e git+https://example.com/x.git"}, "requirements", "Line 2"),
        ({"requirements": "numpy<1", "base": "studio-sklearn"}, "requirements", "the base pins numpy"),
        ({"requirements": "a\n" * 201}, "requirements", "at most 200"),
        ({"requirements": 5}, "requirements", "as text"),
        ({"description": "d" * 2001}, "description", "2,000"),
    ],
)
def test_bad_input_is_refused_naming_the_field(owner, workspace, fields, field, text):
    values = {"name": "tables", "base": "python", "requirements": "six", **fields}
    with pytest.raises(ValidationError) as refused:
        services.environment_create(actor=owner, workspace=workspace, **values)
    assert text in " ".join(refused.value.message_dict[field])
    assert not Environment.objects.exists()


def test_a_taken_name_is_a_conflict(owner, workspace, other_workspace, outsider):
    _create(owner, workspace, name="tables")
    with pytest.raises(ValidationError) as refused:
        _create(owner, workspace, name="tables")
    assert refused.value.error_dict["name"][0].code == "conflict"
    assert _create(outsider, other_workspace, name="tables").version == 1  # names are per workspace


def test_new_versions_are_numbered_and_an_identical_spec_returns_the_latest(owner, contributor, reader, workspace):
    first = _create(owner, workspace, requirements="six")
    environment = first.environment
    second = services.environment_version_create(
        actor=contributor, environment=environment, base="python", requirements="six\ntabulate"
    )
    assert second.version == 2
    same = services.environment_version_create(
        actor=owner, environment=environment, base="python", requirements="# same thing\nTABULATE\n\nsix"
    )
    assert same.pk == second.pk and environment.versions.count() == 2
    # The same spec as an older version (not the latest) is a new version: history stays linear.
    third = services.environment_version_create(actor=owner, environment=environment, base="python", requirements="six")
    assert third.version == 3 and third.spec_hash == first.spec_hash
    with pytest.raises(PermissionDenied):
        services.environment_version_create(actor=reader, environment=environment, base="python", requirements="")
    with pytest.raises(ValidationError) as refused:
        services.environment_version_create(
            actor=owner, environment=environment, base="python", requirements="https://example.com/x.whl"
        )
    assert "requirements" in refused.value.message_dict


def test_selectors_list_the_latest_version_and_scope_to_the_workspace(owner, workspace, outsider, other_workspace):
    version = _create(owner, workspace, name="tables")
    services.environment_version_create(
        actor=owner, environment=version.environment, base="studio-sklearn", requirements=""
    )
    _create(outsider, other_workspace, name="theirs")
    listed = list(selectors.environment_list(workspace=workspace))
    assert [(e.name, e.latest_version, e.latest_base, e.version_count) for e in listed] == [
        ("tables", 2, "studio-sklearn", 2)
    ]
    theirs = Environment.objects.get(name="theirs")
    with pytest.raises(Http404):
        selectors.environment_get(workspace=workspace, environment_id=theirs.pk)
    with pytest.raises(Http404):
        selectors.environment_version_get_by_id(workspace=workspace, version_id=theirs.versions.get().pk)
    assert selectors.environment_version_get_by_id(workspace=workspace, version_id=version.pk) == version


def test_deleting_is_refused_while_a_job_names_a_version(owner, reader, workspace):
    version = _create(owner, workspace)
    environment = version.environment
    with pytest.raises(PermissionDenied):
        services.environment_delete(actor=reader, environment=environment)
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="mine").target
    job = Job.objects.create(
        workspace=workspace,
        kind="command",
        target=target,
        spec={"environment_version_id": version.pk, "command": "python train.py"},
        display_name="nightly ✓",
    )
    # A job of another kind whose spec happens to carry the key does not count.
    Job.objects.create(workspace=workspace, kind=DIAGNOSTIC, target=target, spec={"environment_version_id": 999})
    with pytest.raises(ValidationError) as refused:
        services.environment_delete(actor=owner, environment=environment)
    assert refused.value.code == "conflict"
    assert f"#{job.pk} (nightly ✓)" in refused.value.messages[0]
    job.delete()
    services.environment_delete(actor=owner, environment=environment)
    assert not EnvironmentVersion.objects.exists()
    assert Activity.objects.filter(verb="environment_deleted").exists()


# --- On the node ---------------------------------------------------------------------------------------
def test_prepare_builds_records_the_build_and_keeps_the_lock(owner, workspace, settings):
    settings.STUDIO_HOSTNAME = "build-host"  # builds are per host, by the host's studio name
    version = _create(owner, workspace, requirements="six")
    lines: list[str] = []
    python = services.environment_prepare(version=version, on_line=lines.append)
    assert python.exists() and str(python).startswith(str(settings.STUDIO_ENVIRONMENT_CACHE_DIR))
    build = EnvironmentBuild.objects.get(version=version)
    assert build.host == "build-host"
    assert build.state == BuildState.READY and build.size_bytes > 0 and build.seconds > 0
    assert build.last_used_at and build.finished_at and "six" in build.log_tail
    version.refresh_from_db()
    assert "six==" in version.lock
    assert any("six" in line for line in lines)

    # Reuse: the same python, the row's last use moves on, nothing streamed.
    before = build.last_used_at
    again: list[str] = []
    started = time.perf_counter()
    assert services.environment_prepare(version=version, on_line=again.append) == python
    assert time.perf_counter() - started < 1.0  # a file read, a stamp and one UPDATE (the bench wants < 0.2 s)
    build.refresh_from_db()
    assert build.last_used_at > before and again == []


def test_a_second_version_with_the_same_spec_reuses_the_cache_and_gets_its_own_row(owner, workspace):
    first = _create(owner, workspace, name="a", requirements="six")
    other = _create(owner, workspace, name="b", requirements="SIX")
    python = services.environment_prepare(version=first, on_line=lambda line: None)
    assert services.environment_prepare(version=other, on_line=lambda line: None) == python
    assert EnvironmentBuild.objects.get(version=other).state == BuildState.READY


def test_a_later_build_installs_the_lock(owner, workspace, settings, tmp_path):
    version = _create(owner, workspace, requirements="tabulate")
    version.lock = "tabulate==0.9.0\n"
    version.save()
    python = services.environment_prepare(version=version, on_line=lambda line: None)
    assert "tabulate==0.9.0" in (python.parent.parent / builder.ENTRY_FILE).read_text()


def test_a_failed_build_is_recorded_and_re_raised(owner, workspace):
    version = _create(owner, workspace, requirements="studio-no-such-package-4f1c2b")
    with pytest.raises(builder.BuildFailed, match="studio-no-such-package-4f1c2b"):
        services.environment_prepare(version=version, on_line=lambda line: None)
    build = EnvironmentBuild.objects.get(version=version)
    assert build.state == BuildState.FAILED and "studio-no-such-package-4f1c2b" in build.log_tail
    version.refresh_from_db()
    assert version.lock == ""


def test_evicted_builds_are_marked(owner, workspace, settings):
    old = _create(owner, workspace, name="old", requirements="six")
    services.environment_prepare(version=old, on_line=lambda line: None)
    settings.STUDIO_ENVIRONMENT_CACHE_BYTES = 1
    new = _create(owner, workspace, name="new", requirements="tabulate")
    services.environment_prepare(version=new, on_line=lambda line: None)
    assert EnvironmentBuild.objects.get(version=old).state == BuildState.EVICTED
    assert EnvironmentBuild.objects.get(version=new).state == BuildState.READY
    # Used again: built again, ready again.
    services.environment_prepare(version=old, on_line=lambda line: None)
    assert EnvironmentBuild.objects.get(version=old).state == BuildState.READY


def test_a_base_the_studio_no_longer_offers_fails_the_build_with_a_reason(owner, workspace):
    version = _create(owner, workspace, requirements="six")
    EnvironmentVersion.objects.filter(pk=version.pk).update(base="retired-base")
    version.refresh_from_db()
    with pytest.raises(builder.BuildFailed, match="retired-base is no longer offered"):
        services.environment_prepare(version=version, on_line=lambda line: None)
    build = EnvironmentBuild.objects.get(version=version)
    assert build.state == BuildState.FAILED and "no longer offered" in build.log_tail
