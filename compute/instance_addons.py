"""What apps above compute add to a compute instance's page and API (labs adds the notebook).

compute may not import those apps (the layers in .importlinter), so they register here when Django
starts, as job kinds do in compute.jobs.kinds."""

from collections.abc import Callable

# (request, target, live) -> extra context for the instance page; `live` is the htmx refresh.
# The context's "instance_panels" / "instance_live_panels" list the templates to include.
_page_context: list[Callable] = []
# (target, user) -> the instance's `lab` object of the API (compute.api.serializers.InstanceLabOut).
_lab_summary: list[Callable] = []


def register_page_context(provider: Callable) -> None:
    _page_context.append(provider)


def register_lab_summary(provider: Callable) -> None:
    if _lab_summary:
        raise RuntimeError("the lab summary is registered twice")
    _lab_summary.append(provider)


def page_context(request, target, *, live: bool) -> dict:
    context: dict = {"instance_panels": [], "instance_live_panels": []}
    for provider in _page_context:
        extra = provider(request, target, live=live)
        context["instance_panels"] += extra.pop("instance_panels", [])
        context["instance_live_panels"] += extra.pop("instance_live_panels", [])
        context.update(extra)
    return context


def lab_summary(target, user) -> dict | None:
    return _lab_summary[0](target=target, user=user) if _lab_summary else None
