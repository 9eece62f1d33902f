"""The scheduler's routine ticks stay out of the console; users' tasks and every failure stay in."""

import logging

from celery.app.trace import LOG_FAILURE, LOG_RECEIVED, LOG_SUCCESS
from django.conf import settings

RECONCILE = settings.CELERY_BEAT_SCHEDULE["jobs-reconcile"]["task"]
RUN_JOB = "training.tasks.run_job_task"


def logged(caplog, logger: str, level: int, message: str, *args) -> bool:
    caplog.clear()
    logging.getLogger(logger).log(level, message, *args)
    return bool(caplog.records)


def test_routine_ticks_are_dropped_and_the_rest_is_logged(caplog):
    caplog.set_level(logging.INFO)
    task = {"id": "8fe17df4", "runtime": 0.02, "return_value": None, "exc": "OperationalError('db locked')"}
    # the three INFO lines of every scheduled housekeeping task, as Celery words them
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert not logged(
            caplog, "celery.beat", logging.INFO, "Scheduler: Sending due task %s (%s)", "x", entry["task"]
        )
        assert not logged(caplog, "celery.worker.strategy", logging.INFO, LOG_RECEIVED, {**task, "name": entry["task"]})
        assert not logged(caplog, "celery.app.trace", logging.INFO, LOG_SUCCESS, {**task, "name": entry["task"]})
    # a user's job, and a routine task that fails, are logged
    assert logged(caplog, "celery.worker.strategy", logging.INFO, LOG_RECEIVED, {**task, "name": RUN_JOB})
    assert logged(caplog, "celery.app.trace", logging.INFO, LOG_SUCCESS, {**task, "name": RUN_JOB})
    assert logged(
        caplog,
        "celery.app.trace",
        logging.ERROR,
        LOG_FAILURE,
        {**task, "name": RECONCILE, "description": "raised unexpected"},
    )
    # a task whose name only starts like a routine one is not one
    assert logged(caplog, "celery.app.trace", logging.INFO, LOG_SUCCESS, {**task, "name": RECONCILE + "_later"})


def test_log_level_debug_shows_the_ticks_too(caplog):
    root = logging.getLogger()
    level = root.level
    caplog.set_level(logging.DEBUG)
    try:
        root.setLevel(logging.DEBUG)
        assert logged(caplog, "celery.app.trace", logging.INFO, LOG_SUCCESS,
                      {"id": "1", "runtime": 0.01, "return_value": None, "name": RECONCILE})  # fmt: skip
    finally:
        root.setLevel(level)
