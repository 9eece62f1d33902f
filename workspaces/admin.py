from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from studio import services as studio_services

from . import services
from .admin_console import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin
from .models import Activity, Membership, Workspace


class MembershipInline(ReadOnlyInline, admin.TabularInline):
    model = Membership
    fk_name = "workspace"
    fields = ["user", "role", "added_by", "created_at"]
    readonly_fields = fields


@admin.register(Workspace)
class WorkspaceAdmin(ServiceAdmin):
    """Name and description through `workspace_update`, deletion (with its files) through
    `workspace_delete`; the storage quota is staff's own setting."""

    list_display = ["name", "id", "storage_quota_bytes", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "created_by__username"]
    list_filter = ["created_at"]
    date_hierarchy = "created_at"
    list_select_related = ["created_by"]
    inlines = [MembershipInline]
    fields = ["name", "description", "storage_quota_bytes", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]

    def service_add(self, actor, obj, form):
        workspace = services.workspace_create(actor=actor, name=obj.name, description=obj.description)
        if obj.storage_quota_bytes is not None:
            Workspace.objects.filter(pk=workspace.pk).update(storage_quota_bytes=obj.storage_quota_bytes)
        return workspace

    def service_save(self, actor, obj, form):
        # The service compares with the stored row (the form has already changed `obj`).
        stored = Workspace.objects.get(pk=obj.pk)
        services.workspace_update(actor=actor, workspace=stored, name=obj.name, description=obj.description)
        if "storage_quota_bytes" in form.changed_data:
            Workspace.objects.filter(pk=obj.pk).update(storage_quota_bytes=obj.storage_quota_bytes)
            services.activity_record(
                workspace=obj,
                actor=actor,
                verb="storage_quota_set",
                summary=f"{actor} set the storage quota to {obj.storage_quota_bytes or 'the default'} bytes",
            )

    def service_delete(self, actor, obj):
        services.workspace_delete(actor=actor, workspace=obj)


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    """Members are added, re-roled and removed through the member services: the last Owner stays."""

    list_display = ["user", "workspace", "role", "added_by", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__username", "workspace__name"]
    list_select_related = ["user", "workspace", "added_by"]
    raw_id_fields = ["user", "workspace"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "workspace", "added_by"] if obj else ["added_by"]

    def service_add(self, actor, obj, form):
        return services.member_add(actor=actor, workspace=obj.workspace, username=obj.user.username, role=obj.role)

    def service_save(self, actor, obj, form):
        services.member_change_role(actor=actor, workspace=obj.workspace, membership=obj, role=obj.role)

    def service_delete(self, actor, obj):
        services.member_remove(actor=actor, workspace=obj.workspace, membership=obj)


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "actor", "verb", "summary"]
    list_filter = ["verb", "created_at"]
    search_fields = ["summary", "workspace__name", "actor__username"]
    list_select_related = ["workspace", "actor"]
    date_hierarchy = "created_at"
    raw_id_fields = ["workspace", "actor"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StudioUserAdmin(UserAdmin):
    """Django's user admin with the studio's account actions, each through a service."""

    actions = ["issue_password_reset_link", "disable_accounts", "lift_sign_in_lockouts"]

    @admin.action(description="Issue a one-time password-reset link (shown once)", permissions=["change"])
    def issue_password_reset_link(self, request, queryset):
        issued, refused = [], []
        for user in queryset.order_by("username"):
            try:
                issued_link = studio_services.sign_in_link_issue(actor=request.user, user=user)
            except (ValidationError, PermissionDenied) as exc:
                refused.append(f"{user}: {' '.join(getattr(exc, 'messages', [str(exc)]))}")
                continue
            # The secret goes after "#", which browsers never send to the server (see the view).
            url = request.build_absolute_uri(reverse("sign-in-link")) + "#" + issued_link.secret
            issued.append({"user": user, "url": url, "expires_at": issued_link.link.expires_at})
        context = {**self.admin_site.each_context(request), "issued": issued, "refused": refused}
        # The admin marks every page no-store, so the links are not kept by the browser either.
        return TemplateResponse(request, "admin/studio/sign_in_links_issued.html", context)

    @admin.action(description="Disable accounts (sessions and API tokens stop at once)", permissions=["change"])
    def disable_accounts(self, request, queryset):
        for user in queryset:
            try:
                studio_services.user_disable(actor=request.user, user=user)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{user}: {' '.join(getattr(exc, 'messages', [str(exc)]))}", messages.ERROR)
            else:
                self.message_user(request, f"{user} is disabled.", messages.SUCCESS)

    # Deleting an account goes through the service: never the last Owner of a workspace.
    def delete_model(self, request, obj):
        services.account_delete(actor=request.user, user=obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            try:
                self.delete_model(request, user)
            except (ValidationError, PermissionDenied) as exc:
                reason = " ".join(getattr(exc, "messages", [str(exc)]))
                self.message_user(request, f"{user} was not deleted: {reason}", messages.ERROR)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:
            self.message_user(request, f"Not deleted: {' '.join(exc.messages)}", messages.ERROR)
            return HttpResponseRedirect(request.path.rsplit("delete/", 1)[0])

    @admin.action(description="Lift sign-in lock-outs", permissions=["change"])
    def lift_sign_in_lockouts(self, request, queryset):
        removed = sum(studio_services.user_sign_in_unlock(actor=request.user, user=user) for user in queryset)
        self.message_user(request, f"Lock-outs lifted ({removed} failure records removed).", messages.SUCCESS)
