from django.urls import path

from . import views

urlpatterns = [
    path("new/", views.workspace_create, name="workspace-create"),
    path("<int:workspace_id>/", views.workspace_detail, name="workspace-detail"),
    path("<int:workspace_id>/settings/", views.workspace_settings, name="workspace-settings"),
    path("<int:workspace_id>/delete/", views.workspace_delete, name="workspace-delete"),
    path("<int:workspace_id>/members/", views.member_list, name="member-list"),
    path("<int:workspace_id>/members/<int:member_id>/role/", views.member_change_role, name="member-change-role"),
    path("<int:workspace_id>/members/<int:member_id>/remove/", views.member_remove, name="member-remove"),
]
