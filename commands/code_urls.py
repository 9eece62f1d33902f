from django.urls import path

from commands import code_views

urlpatterns = [
    path("", code_views.code_list, name="code-list"),
    path("<id:snapshot_id>/", code_views.code_detail, name="code-detail"),
    path("<id:snapshot_id>/download/", code_views.code_file_download_page, name="code-file-download"),
]
