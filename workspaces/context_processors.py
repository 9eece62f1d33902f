from django.utils.functional import SimpleLazyObject

from .selectors import workspace_list_for_user


def shell(request):
    """The workspace switcher's list, evaluated only if a page renders it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"switcher_workspaces": SimpleLazyObject(lambda: list(workspace_list_for_user(user=user)[:50]))}
