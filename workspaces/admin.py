from django.contrib import admin

from .models import Activity, Membership, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "workspace"
    extra = 0
    raw_id_fields = ["user", "added_by"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description", "created_by__username"]
    list_filter = ["created_at"]
    date_hierarchy = "created_at"
    inlines = [MembershipInline]
    raw_id_fields = ["created_by"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "added_by", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__username", "workspace__name"]
    list_select_related = ["user", "workspace", "added_by"]
    raw_id_fields = ["user", "workspace", "added_by"]


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ["created_at", "workspace", "actor", "verb", "summary"]
    list_filter = ["verb", "created_at"]
    search_fields = ["summary", "workspace__name", "actor__username"]
    list_select_related = ["workspace", "actor"]
    date_hierarchy = "created_at"
    raw_id_fields = ["workspace", "actor"]
