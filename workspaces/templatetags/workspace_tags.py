"""Template filters that know roles (installed as builtins, beside studio_tags)."""

from django import template

from ..policy import role_allows

register = template.Library()


@register.filter
def allows(workspace, action: str) -> bool:
    """`{% if workspace|allows:"write" %}`: whether the viewing user's role (annotated by the
    workspace selectors) allows the action, so navigation offers only what the user may do."""
    return role_allows(getattr(workspace, "role", None), action)
