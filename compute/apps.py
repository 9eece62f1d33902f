from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute"

    def ready(self) -> None:
        from workspaces.usage import count_register, stored_register

        from . import worker  # noqa: F401 - connects the node's Celery signal handlers
        from .jobs.diagnostic import DIAGNOSTIC
        from .jobs.kinds import register
        from .models import Artifact, ComputeTarget, Job

        register(DIAGNOSTIC, "Diagnostic", "compute.jobs.diagnostic.DiagnosticJob")  # the built-in node check
        count_register("job_count", Job)
        count_register("compute_count", ComputeTarget)
        stored_register(Artifact.objects.all, workspace_field="job__workspace", size_field="size")
