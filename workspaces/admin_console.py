"""The admin console goes through the services (STYLE: "admin actions call the services").

`ServiceAdmin` is the base of every model admin whose rows a service changes: saves and deletes
call the service with the staff member as a console actor (Owner rights everywhere, see
`policy.console_actor`), so the console gets the studio's checks, activity log and serving
reloads. A refusal becomes an error message on the page, never a 500; the failed change is
rolled back. Fields no service changes are read-only.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect

from .policy import console_actor


def refusal_text(exc: Exception) -> str:
    return " ".join(getattr(exc, "messages", None) or [str(exc)])


class ServiceAdmin(admin.ModelAdmin):
    """Subclasses implement `service_save(actor, obj, form, change)` and/or `service_delete(actor, obj)`;
    without them adding, changing or deleting is refused."""

    def actor(self, request):
        return console_actor(request.user)

    # --- Permissions: only what a service backs -----------------------------------------------
    def has_add_permission(self, request):
        return self._implements("service_add") and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        # Without a change service the change page still opens, read-only ("view" permission).
        return self._implements("service_save") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._implements("service_delete") and super().has_delete_permission(request, obj)

    def _implements(self, name: str) -> bool:
        return callable(getattr(self, name, None))

    # --- Saves and deletes through the services --------------------------------------------------
    def save_model(self, request, obj, form, change):
        if change:
            self.service_save(self.actor(request), obj, form)
        else:
            saved = self.service_add(self.actor(request), obj, form)
            obj.pk = saved.pk

    def delete_model(self, request, obj):
        self.service_delete(self.actor(request), obj)

    def get_deleted_objects(self, objs, request):
        # The service decides what goes with the row (logs, events, files): read-only related
        # admins must not block it.
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            try:
                self.service_delete(self.actor(request), obj)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{obj} was not deleted: {refusal_text(exc)}", messages.ERROR)

    # A refusal inside save_model/delete_model rolls the admin's transaction back; say why.
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            self.message_user(request, f"Not saved: {refusal_text(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:
            self.message_user(request, f"Not deleted: {refusal_text(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.path.rsplit("delete/", 1)[0])


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the studio writes itself (logs, events, measurements): staff read them, never edit them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline:
    """Inline rows shown for reading; each is changed on its own page, through its service."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
