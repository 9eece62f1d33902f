"""The site's own pages, which bring the apps together: Home, the 403 page inside a workspace, and
the page of a sign-in link (an invitation ends in its workspace)."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from endpoints.selectors import endpoints_health_for_user
from studio import selectors, services
from studio.api.errors import error_body
from studio.models import SignInLinkPurpose
from studio.views import is_api_request
from workspaces.selectors import (
    activity_recent_for_user,
    workspace_get_for_user,
    workspace_joined_last_id,
    workspace_list_for_user,
)


def permission_denied(request, exception):
    """The 403 page (handler403). Inside a workspace it keeps the workspace's sidebar, so a member
    whose role lacks an action still sees where they may go; a non-member never gets here (404).
    Under /api/ it is the API's JSON error body."""
    if is_api_request(request):
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
