from django.contrib import admin

from .models import ApiToken, WorkerCheck


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user"]
    # The hash is useless to an administrator and the secret is never stored.
    exclude = ["secret_hash"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False  # tokens are issued by their owner, who sees the secret once


@admin.register(WorkerCheck)
class WorkerCheckAdmin(admin.ModelAdmin):
    list_display = ["id", "requested_at", "completed_at", "worker", "broker", "requested_by"]
    list_filter = ["broker", ("completed_at", admin.EmptyFieldListFilter)]
    search_fields = ["worker"]
    date_hierarchy = "requested_at"
