"""Django's CSRF check run on the X-CSRFToken header alone, before a request's body is read.

Django's own check reads `request.POST` for the form's token first, and parsing a multipart body
stores its files. An upload must be refused before a byte of it is stored (R9), so upload routes
take the token from the header only: the studio's upload page and clients send it there.
"""

from django.http import QueryDict
from django.middleware.csrf import CsrfViewMiddleware


class _HeaderOnlyRequest:
    """The request as the check sees it: the same headers, cookies and session, an empty body."""

    def __init__(self, request):
        self._request = request
        self.POST = QueryDict()

    def __getattr__(self, name):
        return getattr(self._request, name)


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def csrf_refusal(request) -> str | None:
    """Why the request fails Django's CSRF check on its header token, or None when it passes."""
    view = _HeaderOnlyRequest(request)
    check = _CsrfCheck(lambda _request: None)
    check.process_request(view)
    reason = check.process_view(view, None, (), {})
    if reason is None:
        request.csrf_processing_done = True
    return reason


def csrf_refusal_message(reason: str) -> str:
    return f"CSRF check failed: {reason} Send the page's CSRF token in the X-CSRFToken header."
