"""A job's own token: issued with only its hash kept, valid while its job's attempt runs, revoked
when the job ends (by the engine, for every kind), refused once expired."""

import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from compute.jobs import services
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobStatus, JobToken
from compute.jobs.recovery import job_requeue_or_fail
from compute.jobs.tokens import TOKEN_TTL_MARGIN_SECONDS, job_token_authenticate, job_token_issue, job_tokens_revoke
from compute.models import TargetKind
from compute.services import target_create
from studio.services import token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(owner, workspace):
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    return services.job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})


@pytest.fixture
def running(job):
    """The job claimed by the system worker and running, as a node's runner would have it."""
    claimed = services.job_claim(job_id=job.pk, node_id=None)
    assert services.job_mark_running(job=claimed)
    return claimed


def test_the_key_is_returned_once_and_only_its_hash_is_stored(running):
    key = job_token_issue(job=running)
    assert key.startswith("sjt_") and len(key) > 40
    token = JobToken.objects.get(job=running)
    random_part = key.removeprefix("sjt_")
    assert token.key_hash == hashlib.sha256(random_part.encode()).hexdigest()
    assert key not in token.key_hash and random_part not in str(JobToken.objects.values().get())


def test_a_valid_key_authenticates_with_its_job(running):
    key = job_token_issue(job=running)
    token = job_token_authenticate(key)
    assert token is not None and token.job == running and token.job.submitted_by.username == "alice"


def test_two_keys_of_one_job_are_different_and_both_work(running):
    first, second = job_token_issue(job=running), job_token_issue(job=running)
    assert first != second
    assert job_token_authenticate(first).pk != job_token_authenticate(second).pk


@pytest.mark.parametrize(
    "key",
    ["", "sjt_", "sjt", "sjt_nope", "stu_abcdef123456_" + "x" * 43, "Bearer sjt_x", "sjt_" + "a" * 5000, "sjt_\x00"],
)
def test_malformed_or_unknown_keys_authenticate_nothing(running, key):
    job_token_issue(job=running)
    assert job_token_authenticate(key) is None


def test_a_personal_api_token_is_not_a_job_token(running, owner):
    assert job_token_authenticate(token_create(user=owner, name="laptop").plaintext) is None


def test_the_default_lifetime_is_the_time_limit_plus_a_margin(running):
    before = timezone.now()
    job_token_issue(job=running)
    expires_at = JobToken.objects.get(job=running).expires_at
    expected = before + timedelta(seconds=running.time_limit_seconds + TOKEN_TTL_MARGIN_SECONDS)
    assert abs((expires_at - expected).total_seconds()) < 60


@pytest.mark.parametrize("ttl", [0, -5, 1.5, "60", True])
def test_a_bad_lifetime_is_refused(running, ttl):
    with pytest.raises(ValidationError):
        job_token_issue(job=running, ttl_seconds=ttl)
    assert not JobToken.objects.exists()


def test_an_expired_token_is_refused(running):
    key = job_token_issue(job=running, ttl_seconds=30)
    assert job_token_authenticate(key) is not None
    JobToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert job_token_authenticate(key) is None


def test_revoking_refuses_every_token_of_the_job_and_no_other(running, owner, workspace):
    keys = [job_token_issue(job=running) for _ in range(2)]
    other = Job.objects.create(workspace=workspace, kind=DIAGNOSTIC, status=JobStatus.RUNNING, submitted_by=owner)
    other_key = job_token_issue(job=other)
    assert job_tokens_revoke(job=running) == 2
    assert all(job_token_authenticate(key) is None for key in keys)
    assert job_token_authenticate(other_key) is not None
    assert job_tokens_revoke(job=running) == 0  # already revoked: nothing changes


def test_only_a_job_on_a_node_has_a_valid_token(job):
    key = job_token_issue(job=job)
    assert job.status == JobStatus.QUEUED and job_token_authenticate(key) is None
    Job.objects.filter(pk=job.pk).update(status=JobStatus.STARTING)
    assert job_token_authenticate(key) is not None
    for finished in JobStatus.finished():
        Job.objects.filter(pk=job.pk).update(status=finished)
        assert job_token_authenticate(key) is None, finished


@pytest.mark.parametrize(
    "finish",
    [
        lambda job: services.job_complete(job=job, result={}),
        lambda job: services.job_fail(job=job, error="boom"),
        lambda job: services.job_finish_canceled(job=job),
    ],
    ids=["completed", "failed", "canceled"],
)
def test_the_engine_revokes_the_tokens_when_a_job_finishes(running, finish):
    key = job_token_issue(job=running)
    assert finish(running)
    assert JobToken.objects.get(job=running).revoked_at is not None
    assert job_token_authenticate(key) is None


def test_a_zombie_finish_revokes_nothing(running):
    key = job_token_issue(job=running)
    stale = Job.objects.get(pk=running.pk)
    stale.attempt = 0  # an attempt that is over: its late write is fenced out
    assert not services.job_complete(job=stale, result={})
    assert job_token_authenticate(key) is not None


def test_a_token_of_an_earlier_attempt_stops_working_when_the_job_is_claimed_again(running):
    old_key = job_token_issue(job=running)
    job_requeue_or_fail(running, "its node was lost")
    assert Job.objects.get(pk=running.pk).status == JobStatus.QUEUED
    again = services.job_claim(job_id=running.pk, node_id=None)
    assert again.attempt == 2
    assert job_token_authenticate(old_key) is None  # the old attempt's process changes nothing
    assert job_token_authenticate(job_token_issue(job=again)) is not None
