"""Workspace pages: thin views that fetch, call one service and redirect."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_http_methods, require_POST

from studio.forms_errors import add_service_errors
from workspaces.pages import render_page

from . import selectors, services
from .forms import MemberAddForm, MemberRoleForm, WorkspaceForm
from .models import Role
from .policy import Action, require


def _action_for(request, write_action: str) -> str:
    """A page is viewed with VIEW; a form posted to it needs the write action (403 before parsing)."""
    return write_action if request.method == "POST" else Action.VIEW


@require_http_methods(["GET", "POST"])
def workspace_create(request):
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.workspace_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Workspace “{workspace.name}” created. You are its Owner.")
            return redirect("workspace-detail", workspace_id=workspace.pk)
    return render(request, "workspaces/create.html", {"form": form})


def workspace_detail(request, workspace_id):
    workspace = selectors.workspace_get_for_user(user=request.user, workspace_id=workspace_id, with_storage=True)
    activities = selectors.activity_list_for_workspace(workspace=workspace)[:20]
    return render_page(request, "workspaces/detail.html", workspace, activities=activities)


@require_http_methods(["GET", "POST"])
def workspace_settings(request, workspace_id):
    workspace = selectors.workspace_get_for_user(
        user=request.user, workspace_id=workspace_id, action=_action_for(request, Action.ADMINISTER)
    )
    form = WorkspaceForm(request.POST or None, initial={"name": workspace.name, "description": workspace.description})
    if request.method == "POST" and form.is_valid():
        try:
            services.workspace_update(actor=request.user, workspace=workspace, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Workspace settings saved.")
            return redirect("workspace-settings", workspace_id=workspace.pk)
    return render_page(request, "workspaces/settings.html", workspace, form=form)


@require_http_methods(["GET", "POST"])
def workspace_delete(request, workspace_id):
    workspace = selectors.workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=Action.ADMINISTER)
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != workspace.name:
            messages.error(request, "Type the workspace's name exactly to confirm.")
        else:
            name = workspace.name
            services.workspace_delete(actor=request.user, workspace=workspace)
            messages.success(request, f"Workspace “{name}” and everything in it were deleted.")
            return redirect("home")
    return render_page(request, "workspaces/delete.html", workspace)


@require_http_methods(["GET", "POST"])
def member_list(request, workspace_id):
    workspace = selectors.workspace_get_for_user(
        user=request.user, workspace_id=workspace_id, action=_action_for(request, Action.ADMINISTER)
    )
    form = MemberAddForm(request.POST or None)
    invitation = None
    if request.method == "POST" and form.is_valid():
        try:
            invitation = services.member_invite(actor=request.user, workspace=workspace, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            membership = invitation.membership
            if not invitation.secret:
                messages.success(request, f"{membership.user.username} added as {Role(membership.role).label}.")
                return redirect("member-list", workspace_id=workspace.pk)
            form = MemberAddForm()
    members = selectors.member_list(workspace=workspace)
    context = {"form": form, "members": members, "roles": Role.choices}
    if invitation and invitation.secret:
        # The link is shown on this answer only (no redirect that would need to keep it), never cached;
        # the secret goes after "#", which browsers never send to the server.
        context["invitation"] = invitation
        context["invitation_url"] = request.build_absolute_uri(reverse("sign-in-link")) + "#" + invitation.secret
    response = render_page(request, "workspaces/members.html", workspace, **context)
    if invitation and invitation.secret:
        patch_cache_control(response, no_store=True, no_cache=True, private=True)
    return response


@require_POST
def member_change_role(request, workspace_id, member_id):
    workspace = selectors.workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=Action.ADMINISTER)
    membership = selectors.member_get(workspace=workspace, member_id=member_id)
    form = MemberRoleForm(request.POST)
    role = form.cleaned_data["role"] if form.is_valid() else request.POST.get("role", "")
    try:
        membership = services.member_change_role(
            actor=request.user, workspace=workspace, membership=membership, role=role
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{membership.user.username} is now {Role(membership.role).label}.")
    return redirect("member-list", workspace_id=workspace.pk)


@require_http_methods(["GET", "POST"])
def member_remove(request, workspace_id, member_id):
    workspace = selectors.workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    membership = selectors.member_get(workspace=workspace, member_id=member_id)
    leaving = membership.user_id == request.user.pk
    if not leaving:
        require(request.user, workspace, Action.ADMINISTER)
    if request.method == "POST":
        try:
            services.member_remove(actor=request.user, workspace=workspace, membership=membership)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("member-list", workspace_id=workspace.pk)
        if leaving:
            messages.success(request, f"You left “{workspace.name}”.")
            return redirect("home")
        messages.success(request, f"{membership.user.username} was removed from the workspace.")
        return redirect("member-list", workspace_id=workspace.pk)
    return render_page(request, "workspaces/member_remove.html", workspace, membership=membership, leaving=leaving)
