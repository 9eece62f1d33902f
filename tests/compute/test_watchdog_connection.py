"""A job's watchdog thread closes its own database connection when the job ends: left open, it
lingered until garbage collection, and idle nodes held one more PostgreSQL connection per job run
(bench/scale.py saw 35 connections grow to 92 and PostgreSQL refuse new ones)."""

import threading

import pytest
from django.db.backends.signals import connection_created

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.runner import JobContext, Watchdog
from compute.jobs.services import job_claim, job_submit
from compute.models import TargetKind
from compute.services import target_create


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_closes_its_connection_when_the_job_ends(owner, workspace, settings):
    settings.STUDIO_HEARTBEAT_SECONDS = 0.1
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="watched").target
    submitted = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={})
    job = job_claim(job_id=submitted.pk, node_id=None)  # its attempt is ours: the watchdog heartbeats it
    opened = []  # (thread name, connection wrapper), kept alive here so only an explicit close counts

    def record(sender, connection, **kwargs):
        opened.append((threading.current_thread().name, connection))

    connection_created.connect(record)
    try:
        for _ in range(3):
            watchdog = Watchdog(JobContext(job))
            watchdog.start()
            watchdog.done.wait(0.6)  # it heartbeats the job: its thread opens a connection
            watchdog.done.set()
            watchdog.join(10)
    finally:
        connection_created.disconnect(record)
    watchdogs = [wrapper for name, wrapper in opened if name.endswith("-watchdog")]
    assert len(watchdogs) == 3
    assert all(wrapper.connection is None for wrapper in watchdogs)  # closed
