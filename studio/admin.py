from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from . import services
from .models import ApiToken, SignInLink, WorkerCheck


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user"]
    # The hash is useless to an administrator and the secret is never stored.
    exclude = ["secret_hash"]
    readonly_fields = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    date_hierarchy = "created_at"
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False  # tokens are issued by their owner, who sees the secret once

    def has_delete_permission(self, request, obj=None):
        return False  # revoking keeps the record of what the token did

    @admin.action(description="Revoke the tokens (they stop working at once)", permissions=["view"])
    def revoke_tokens(self, request, queryset):
        for token in queryset.select_related("user"):
            services.token_revoke(user=token.user, token=token)
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)


@admin.register(SignInLink)
class SignInLinkAdmin(admin.ModelAdmin):
    """Read-only: links are issued from the users' list (action), which shows each secret once."""

    list_display = ["user", "purpose", "prefix", "created_by", "created_at", "expires_at", "used_at", "revoked_at"]
    list_filter = ["purpose", ("used_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["user__username", "prefix"]
    list_select_related = ["user", "created_by"]
    exclude = ["secret_hash"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
                issued_link = services.sign_in_link_issue(actor=request.user, user=user)
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
                services.user_disable(actor=request.user, user=user)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{user}: {' '.join(getattr(exc, 'messages', [str(exc)]))}", messages.ERROR)
            else:
                self.message_user(request, f"{user} is disabled.", messages.SUCCESS)

    # Deleting an account goes through the service: never the last Owner of a workspace.
    def delete_model(self, request, obj):
        from workspaces.services import account_delete

        account_delete(actor=request.user, user=obj)

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
        removed = sum(services.user_sign_in_unlock(actor=request.user, user=user) for user in queryset)
        self.message_user(request, f"Lock-outs lifted ({removed} failure records removed).", messages.SUCCESS)


@admin.register(WorkerCheck)
class WorkerCheckAdmin(admin.ModelAdmin):
    """Canary checks the studio records itself (worker health): read-only."""

    list_display = ["id", "requested_at", "completed_at", "worker", "broker", "requested_by"]
    list_filter = ["broker", ("completed_at", admin.EmptyFieldListFilter)]
    search_fields = ["worker"]
    date_hierarchy = "requested_at"
    list_select_related = ["requested_by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
