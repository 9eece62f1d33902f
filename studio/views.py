"""Pages of the shell: Home, account (API tokens), worker check; the anonymous health probe and
the anonymous page behind a one-time sign-in link."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from endpoints.selectors import endpoints_health_for_user
from workspaces.selectors import (
    activity_recent_for_user,
    workspace_get_for_user,
    workspace_joined_last_id,
    workspace_list_for_user,
)

from . import selectors, services
from .api.errors import error_body
from .forms import TokenForm
from .models import SignInLinkPurpose


def permission_denied(request, exception):
    """The 403 page (handler403). Inside a workspace it keeps the workspace's sidebar, so a member
    whose role lacks an action still sees where they may go; a non-member never gets here (404).
    Under /api/ it is the API's JSON error body."""
    if _is_api(request):
        return JsonResponse(error_body("permission_denied", "You do not have permission to do this."), status=403)
    workspace = None
    workspace_id = getattr(request.resolver_match, "kwargs", {}).get("workspace_id")
    if workspace_id is not None and request.user.is_authenticated:
        try:
            workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
        except Http404:
            workspace = None
    context = {"exception": str(exception) or "", "workspace": workspace}
    return render(request, "403.html", context, status=403)


@require_GET
def home(request):
    return render(
        request,
        "studio/home.html",
        {
            "workspaces": workspace_list_for_user(user=request.user),
            "activities": activity_recent_for_user(user=request.user),
            "health": selectors.health_get(),
            "endpoints": endpoints_health_for_user(user=request.user),
        },
    )


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


@login_not_required
@sensitive_post_parameters("secret", "new_password1", "new_password2")
@never_cache
@require_http_methods(["GET", "POST"])
def sign_in_link(request):
    """The page of a one-time sign-in link: set a password (Django's validators), then sign in.

    The link is `/account/set-password/#<secret>`: the secret after "#" never reaches the server
    in a URL (no access log, no Referer); the page's script posts it with the form.
    """
    if request.method == "GET":
        return render(request, "registration/sign_in_link.html", {"form": SetPasswordForm(None), "secret": ""})
    secret = request.POST.get("secret", "")
    try:
        link = services.sign_in_link_check(secret)
    except services.SignInLinkRefused as exc:
        return render(request, "registration/sign_in_link.html", {"refused": str(exc)}, status=exc.status)
    form = SetPasswordForm(link.user, request.POST)
    if form.is_valid():
        try:
            user = services.sign_in_link_use(secret=secret, password=form.cleaned_data["new_password1"])
        except services.SignInLinkRefused as exc:  # spent by a concurrent submission
            return render(request, "registration/sign_in_link.html", {"refused": str(exc)}, status=exc.status)
        except ValidationError as exc:
            form.add_error("new_password2", exc)
        else:
            if link.purpose != SignInLinkPurpose.INVITATION:
                messages.success(request, "Your password is set. Sign in with it.")
                return redirect("login")
            # An invited person has just proved the link and chosen a password: sign them in and
            # take them to the workspace they were invited to.
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Studio. Your password is set.")
            workspace_id = workspace_joined_last_id(user=user)
            return redirect("workspace-detail", workspace_id=workspace_id) if workspace_id else redirect("home")
    context = {"form": form, "link": link, "secret": secret}
    return render(request, "registration/sign_in_link.html", context)


# --- Error pages: the API's one JSON error body under /api/, HTML pages elsewhere ----------------
# Django answers these itself (no route matched, a URL converter refused an id, a bad Host header,
# an uncaught error), before any API view and its exception handler run.
def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if _is_api(request):
        if isinstance(exception, RequestDataTooBig):  # a body past DATA_UPLOAD_MAX_MEMORY_SIZE
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            message = f"The request body is larger than the limit of {limit:,} bytes."
            return JsonResponse(error_body("too_large", message), status=413)
        return JsonResponse(error_body("bad_request", "The request could not be understood."), status=400)
    return defaults.bad_request(request, exception)


def not_found(request, exception):
    if _is_api(request):
        return JsonResponse(error_body("not_found", "No API route or object at this address."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Something went wrong on the server."), status=500)
    return defaults.server_error(request)
