"""The worker's and scheduler's log, without the routine ticks of the scheduled housekeeping.

The scheduler sends the job reconciler every 5 s (and the canary, the sweeps and the lab schedules
less often), and Celery logs each one three times at INFO: sent, received, succeeded. In the
terminal of `manage.py studio` that was a screenful a minute, burying the lines of users' jobs. A
routine task's warnings and errors are still logged, and so is everything with ``LOG_LEVEL=DEBUG``.
"""

import logging


class RoutineTaskFilter(logging.Filter):
    """Drops INFO lines that name one of ``tasks`` (Celery's "Sending due task … (name)",
    "Task name[id] received" and "Task name[id] succeeded")."""

    def __init__(self, tasks):
        super().__init__()
        self.marks = tuple(mark for task in tasks for mark in (f"({task})", f"{task}["))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
            return True
        message = record.getMessage()
        return not any(mark in message for mark in self.marks)
