"""Included by compute/urls.py under /w/<workspace_id>/compute/<target_id>/."""

from django.urls import path

from . import views

urlpatterns = [
    path("lab/", views.lab_redirect, name="lab-open"),
    path("lab/<path:rest>", views.lab_redirect, name="lab-open-path"),
]
