from django.urls import path

from . import views

urlpatterns = [
    path("me/", views.MeApi.as_view(), name="api-me"),
    path("tokens/", views.TokenListApi.as_view(), name="api-token-list"),
    path("tokens/<id:token_id>/", views.TokenDetailApi.as_view(), name="api-token-detail"),
    path("worker-checks/", views.WorkerCheckListApi.as_view(), name="api-worker-check-list"),
    path("worker-checks/<id:check_id>/", views.WorkerCheckDetailApi.as_view(), name="api-worker-check-detail"),
]
