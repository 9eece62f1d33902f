from django.contrib import admin, messages
from django.contrib.auth import get_user_model

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
