"""Walk the URLconf: every route with its view, so tests can cover routes added later too."""

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass
class Route:
    pattern: str  # e.g. "api/v1/workspaces/<id:workspace_id>/members/"
    name: str | None
    callback: object

    @property
    def params(self) -> list[str]:
        return [m.group("name") for m in _PARAM.finditer(self.pattern)]

    @property
    def view_class(self):
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)

    def url(self, values: dict) -> str:
        return "/" + _PARAM.sub(lambda m: str(values[m.group("name")]), self.pattern)

    def methods(self) -> list[str]:
        cls = self.view_class
        if cls is None:
            return ["GET", "POST"]
        return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]


def all_routes() -> list[Route]:
    routes: list[Route] = []

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                routes.append(Route(prefix + str(p.pattern), p.name, p.callback))

    walk(get_resolver().url_patterns)
    return routes
