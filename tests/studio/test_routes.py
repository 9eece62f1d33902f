"""Route inventory (R3): deny by default. Only login, health and key-scored routes are anonymous."""

import pytest
from rest_framework.permissions import AllowAny

from tests.routes import all_routes

pytestmark = pytest.mark.django_db

# Route names that anyone may reach without signing in, and why.
ANONYMOUS = {
    "login": "the sign-in page",
    "health": "the load balancer's probe",
    "admin:login": "the admin console's own sign-in page",
    "score": "the scoring route, authenticated by the endpoint's key",
    "sign-in-link": "a one-time link to set a password, authenticated by its secret",
}


def _anonymous_marked(route) -> bool:
    return getattr(route.callback, "login_required", True) is False


def _route_name(route):
    namespace = "admin:" if route.pattern.startswith("admin/") else ""
    return f"{namespace}{route.name}" if route.name else None


def test_every_route_has_an_access_policy():
    for route in all_routes():
        name = _route_name(route)
        if name in ANONYMOUS:
            continue
        cls = route.view_class
        if cls is not None and hasattr(cls, "permission_classes"):
            assert AllowAny not in cls.permission_classes, f"{route.pattern} allows anyone"
            assert cls.permission_classes, f"{route.pattern} has no permission classes"
        else:
            assert not _anonymous_marked(route), f"{route.pattern} ({name}) is reachable without signing in"


def test_anonymous_requests_are_refused_everywhere_but_the_allow_list(client):
    for route in all_routes():
        if _route_name(route) in ANONYMOUS:
            continue
        url = route.url(dict.fromkeys(route.params, 1)) if route.params else "/" + route.pattern
        if "(?P<" in url or "^" in url:
            continue  # regex routes of the admin (e.g. its static redirects)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (301, 302, 401, 403, 404, 405), (url, method, response.status_code)
            if response.status_code in (301, 302):
                assert "/login/" in response["Location"], (url, response["Location"])
            assert response.status_code != 200


def test_health_is_anonymous_and_says_whether_workers_consume(client):
    body = client.get("/health/").json()
    assert body["database"] is True
    assert body["workers_consuming"] is False  # no canary has run in this test


def test_login_page_is_public(client):
    assert client.get("/login/").status_code == 200
