"""A built-in job that checks its node and reports, training nothing."""

import os
import platform
import sys
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from .kinds import CleanSpec, JobHandler

DIAGNOSTIC = "diagnostic"
# Libraries a node imports only when a job needs them (a kind's module imports them when its first
# job runs): the check reports those its process had already loaded, which slow a node's start.
ML_LIBRARIES = ("lightgbm", "onnxruntime", "pandas", "pyarrow", "scipy", "skops", "sklearn", "statsmodels")


class DiagnosticJob(JobHandler):
    submittable = True

    def validate(self, *, workspace, spec) -> CleanSpec:
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ValidationError({"spec": ["The spec must be a JSON object."]})
        sleep = spec.get("sleep_seconds", 0)
        if not isinstance(sleep, (int, float)) or isinstance(sleep, bool) or not 0 <= sleep <= 3600:
            raise ValidationError({"sleep_seconds": ["Give 0 to 3,600 seconds."]})
        return CleanSpec(spec={"sleep_seconds": sleep})

    def run(self, ctx) -> dict:
        started = time.perf_counter()
        ml_loaded = sorted(name for name in ML_LIBRARIES if name in sys.modules)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        writable = os.access(settings.ARTIFACT_ROOT, os.W_OK) or not settings.ARTIFACT_ROOT.exists()
        report = {
            "hostname": settings.STUDIO_HOSTNAME,
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "database": connection.vendor,
            "artifacts_writable": writable,
            "ml_libraries_loaded": ml_loaded,
        }
        ctx.log(
            f"Node check on {report['hostname']} (pid {report['pid']}): Python {report['python']}, "
            f"{report['cpus']} CPUs, database {report['database']}, artifacts writable: {writable}, "
            f"ML libraries loaded: {', '.join(ml_loaded) or 'none'}"
        )
        remaining = float(ctx.spec.get("sleep_seconds", 0))
        while remaining > 0:  # a stand-in for work that checks for cancellation between steps
            ctx.check_canceled()
            step = min(remaining, 0.2)
            time.sleep(step)
            remaining -= step
        report["seconds"] = round(time.perf_counter() - started, 4)
        return report
