"""Pages of the shell: Home, account (API tokens), worker check; the anonymous health probe and
the anonymous page behind a one-time sign-in link."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services
from .api.errors import error_body
from .forms import TokenForm


@login_not_required
@require_GET
def health(request):
    """Anonymous probe for load balancers: database up and workers consuming (canary fresh)."""
    state = selectors.health_get()
    last = state.last_canary.completed_at.isoformat() if state.last_canary else None
    body = {
        "ok": state.ok,
        "database": state.database,
        "workers_consuming": state.workers_consuming,
        "last_canary_at": last,
    }
    return JsonResponse(body, status=200 if state.database else 503)


@require_POST
def worker_check_create(request):
    check = services.worker_check_request(user=request.user)
    return render(request, "studio/_worker_check.html", {"check": check})


@require_GET
def worker_check_detail(request, check_id):
    check = selectors.worker_check_get(user=request.user, check_id=check_id)
    return render(request, "studio/_worker_check.html", {"check": check})


@require_http_methods(["GET", "POST"])
def token_list(request):
    form = TokenForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.token_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Token “{issued.token.name}” created. Copy it now: it will not be shown again.")
            form = TokenForm()
    return render(
        request,
        "studio/tokens.html",
        {"form": form, "issued": issued, "tokens": selectors.token_list(user=request.user)},
    )


@require_POST
def token_revoke(request, token_id):
    token = services.token_revoke(user=request.user, token=selectors.token_get(user=request.user, token_id=token_id))
    messages.success(request, f"Token “{token.name}” revoked. Programs using it are now refused.")
    return redirect("token-list")


# --- Error pages: the API's one JSON error body under /api/, HTML pages elsewhere ----------------
# Django answers these itself (no route matched, a URL converter refused an id, a bad Host header,
# an uncaught error), before any API view and its exception handler run.
def is_api_request(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if is_api_request(request):
        if isinstance(exception, RequestDataTooBig):  # a body past DATA_UPLOAD_MAX_MEMORY_SIZE
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            message = f"The request body is larger than the limit of {limit:,} bytes."
            return JsonResponse(error_body("too_large", message), status=413)
        return JsonResponse(error_body("bad_request", "The request could not be understood."), status=400)
    return defaults.bad_request(request, exception)


def not_found(request, exception):
    if is_api_request(request):
        return JsonResponse(error_body("not_found", "No API route or object at this address."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_request(request):
        return JsonResponse(error_body("server_error", "Something went wrong on the server."), status=500)
    return defaults.server_error(request)
