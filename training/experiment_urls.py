from django.urls import path

from . import experiment_views as views

urlpatterns = [
    path("", views.experiment_list, name="experiment-list"),
    path("<id:experiment_id>/", views.experiment_detail, name="experiment-detail"),
    path("<id:experiment_id>/compare/", views.experiment_compare, name="experiment-compare"),
]
