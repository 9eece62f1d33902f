from django.urls import path

from endpoints.scoring_views import score

urlpatterns = [
    path("<slug:endpoint_name>/", score, name="score"),
]
