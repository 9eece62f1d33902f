"""Command job pages beyond the job page's own: registering a model output."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from compute.jobs.selectors import job_get
from workspaces.pages import page_workspace

from . import services


@require_POST
def command_output_register(request, workspace_id, job_id, output):
    workspace = page_workspace(request, workspace_id, write=True)
    job = job_get(workspace=workspace, job_id=job_id)
    try:
        version = services.command_model_register(
            actor=request.user, job=job, output=output, name=request.POST.get("name", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("job-detail", workspace_id=workspace.pk, job_id=job.pk)
    messages.success(request, f"Registered {version}.")
    return redirect("model-version", workspace_id=workspace.pk, model_id=version.model_id, version=version.version)
