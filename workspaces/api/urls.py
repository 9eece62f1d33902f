from django.urls import path

from . import views

urlpatterns = [
    path("workspaces/", views.WorkspaceListApi.as_view(), name="api-workspace-list"),
    path("workspaces/<id:workspace_id>/", views.WorkspaceDetailApi.as_view(), name="api-workspace-detail"),
    path("workspaces/<id:workspace_id>/members/", views.MemberListApi.as_view(), name="api-member-list"),
    path(
        "workspaces/<id:workspace_id>/members/<id:member_id>/",
        views.MemberDetailApi.as_view(),
        name="api-member-detail",
    ),
    path("workspaces/<id:workspace_id>/activity/", views.ActivityListApi.as_view(), name="api-activity-list"),
]
