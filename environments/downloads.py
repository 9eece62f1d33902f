"""The lock file of a version as a download (it lives in the database, not in storage)."""

from django.http import HttpResponse

from .models import EnvironmentVersion


def lock_file_response(version: EnvironmentVersion) -> HttpResponse:
    response = HttpResponse(version.lock, content_type="text/plain; charset=utf-8")
    # The name is built from validated parts only (an environment name is [A-Za-z0-9._-]).
    filename = f"{version.environment.name}-v{int(version.version)}-requirements.lock.txt"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
