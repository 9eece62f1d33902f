"""The studio's side of JupyterLab: a link on the studio's origin that lands on the lab proxy's."""

from django.conf import settings
from django.http import HttpResponseRedirect
from django.http.request import split_domain_port
from django.views.decorators.http import require_safe

from .routes import lab_route


@require_safe
def lab_redirect(request, workspace_id, target_id, rest=""):
    """The instance's owner goes to the lab proxy (which shows a "starting…" page until the lab is
    ready); anyone else gets 404, as from the proxy itself."""
    lab_route(workspace_id=workspace_id, target_id=target_id, user=request.user)
    return HttpResponseRedirect(lab_origin(request) + request.get_full_path())


def lab_origin(request) -> str:
    """STUDIO_LAB_URL, or the host name this request came to at the lab port (so the browser sends
    the same session cookie there: cookies ignore ports)."""
    if settings.STUDIO_LAB_URL:
        return settings.STUDIO_LAB_URL
    domain, _port = split_domain_port(request.get_host())
    return f"{request.scheme}://{domain}:{settings.STUDIO_LAB_PORT}"
