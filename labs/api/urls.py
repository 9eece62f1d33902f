from django.urls import path

from . import views

prefix = "workspaces/<id:workspace_id>/compute/<id:target_id>/"
urlpatterns = [
    path(prefix + "lab/environment/", views.LabEnvironmentApi.as_view(), name="api-lab-environment"),
    path(prefix + "schedules/", views.ScheduleListApi.as_view(), name="api-lab-schedules"),
    path(prefix + "schedules/<id:schedule_id>/", views.ScheduleDetailApi.as_view(), name="api-lab-schedule"),
]
