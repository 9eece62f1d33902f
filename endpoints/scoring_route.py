"""The scoring route's short way: past the pages' middleware, and past Django's request handler.

POST /score/<endpoint>/ carries an endpoint key, not a session: sessions, CSRF, sign-in, messages,
htmx, CSP and the sign-in lock-out have nothing to do with it, and running them cost about 0.17 ms
of every scoring request (measured in one process: 0.25 ms through the whole chain, 0.08 ms with
the security headers alone).

* `ScoringApplication` is the web server's WSGI application (portal/wsgi.py). It answers a scoring
  request with only SecurityMiddleware around the view, without Django's handler: its signals, the
  whole middleware chain's wrappers and the response's close hooks cost another 0.08 ms of every
  request, a tenth of the portal's part. What the handler did that scoring needs is kept: database
  connections are closed as the request signals would close them, and an error is answered as the
  handler answers it (Django's own exception wrapper, around the view and the middleware). Every
  other request goes to Django's handler.
* `ScoringRouteMiddleware` sits right after SecurityMiddleware and does the same for requests
  that come through Django's handler (the test client).
"""

from functools import lru_cache

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest, get_path_info
from django.db import close_old_connections
from django.http import JsonResponse
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve

from studio.api.errors import STORAGE_RETRY_AFTER, StorageUnavailable, error_body
from studio.storage_errors import ObjectStoreError

from .scoring_views import score

SCORING_PREFIX = "/score/"


def scoring_match(path_info: str):
    """The scoring view's URL match for a path, or None when the path is not the scoring route."""
    if not path_info.startswith(SCORING_PREFIX):
        return None
    return _scoring_match(path_info)


@lru_cache(maxsize=1024)
def _scoring_match(path_info: str):
    # A scoring client asks for the same few paths again and again; resolving one through the URL
    # patterns each time was ~8% of the portal's work on a scoring request (the match is not changed
    # by anyone it is handed to, so sharing it is safe; a flood of new paths only misses the cache).
    try:
        match = resolve(path_info)
    except Resolver404:
        return None  # the whole chain's 404
    return match if match.func is score else None


def answer(request):
    """The scoring view's answer to a request whose `resolver_match` is the scoring route."""
    match = request.resolver_match
    try:
        return score(request, *match.args, **match.kwargs)
    except ObjectStoreError:
        # A scoring client reads JSON: storage that is down is a 503 to retry, not the pages' HTML
        # page, and without the store's address (the API's answer has it): the caller holds a
        # key, not an account. Any other error is Django's logged 500, as for any view.
        response = JsonResponse(error_body("storage_unavailable", StorageUnavailable.default_detail), status=503)
        response["Retry-After"] = str(STORAGE_RETRY_AFTER)
        return response


class ScoringRouteMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        match = scoring_match(request.path_info)
        if match is None:
            return self.get_response(request)
        request.resolver_match = match
        return answer(request)


class ScoringApplication:
    """WSGI: scoring requests with the security headers and nothing else, the rest to Django."""

    def __init__(self, django_application):
        self.django_application = django_application
        # Wrapped as Django's handler wraps its chain: an exception becomes Django's (logged) error
        # answer where it is raised, and SecurityMiddleware still adds its headers to it.
        self.secured = convert_exception_to_response(SecurityMiddleware(convert_exception_to_response(answer)))

    def __call__(self, environ, start_response):
        match = scoring_match(get_path_info(environ) or "/")
        if match is None:
            return self.django_application(environ, start_response)
        close_old_connections()  # what the request_started signal does
        request = WSGIRequest(environ)
        request.resolver_match = match
        try:
            response = self.secured(request)
        finally:
            close_old_connections()  # what the request_finished signal does
        headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return [response.content]
