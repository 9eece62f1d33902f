from django.urls import path

from .views_scoring import score

urlpatterns = [
    path("<slug:endpoint_name>/", score, name="score"),
]
