from django.urls import path

from . import views

urlpatterns = [
    path("new/", views.workspace_create, name="workspace-create"),
    path("<id:workspace_id>/", views.workspace_detail, name="workspace-detail"),
    path("<id:workspace_id>/settings/", views.workspace_settings, name="workspace-settings"),
    path("<id:workspace_id>/delete/", views.workspace_delete, name="workspace-delete"),
    path("<id:workspace_id>/members/", views.member_list, name="member-list"),
    path("<id:workspace_id>/members/<id:member_id>/role/", views.member_change_role, name="member-change-role"),
    path("<id:workspace_id>/members/<id:member_id>/remove/", views.member_remove, name="member-remove"),
]
