"""Template helpers of the command job's page section (commands/_job_sections.html)."""

from django import template
from django.http import Http404

from environments.selectors import environment_version_get_by_id

register = template.Library()


@register.simple_tag
def command_environment(job):
    """The environment version a command job names, or None once it was deleted (the page then
    shows the name the node recorded)."""
    try:
        return environment_version_get_by_id(workspace=job.workspace, version_id=job.spec.get("environment_version_id"))
    except Http404:
        return None
