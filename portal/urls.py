from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from studio import views as studio_views
from studio.api import schema  # noqa: F401 - registers the OpenAPI auth extensions; with the URLs, not in every node

from . import views

handler400 = "studio.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "studio.views.not_found"
handler500 = "studio.views.server_error"

admin.site.site_header = "Studio administration"
admin.site.site_title = "Studio admin"

api_v1 = [
    path("", include("studio.api.urls")),
    path("", include("workspaces.api.urls")),
    path("", include("data.api.urls")),
    path("", include("compute.api.urls")),
    path("", include("labs.api.urls")),
    path("", include("environments.api.urls")),
    path("", include("training.api.urls")),
    path("", include("commands.api.urls")),
    path("", include("endpoints.api.urls")),
    path("", include("commands.api.run_urls")),
    path("", include("commands.api.code_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", studio_views.health, name="health"),
    path("score/", include("endpoints.scoring_urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/set-password/", views.sign_in_link, name="sign-in-link"),
    path("account/tokens/", studio_views.token_list, name="token-list"),
    path("account/tokens/<id:token_id>/revoke/", studio_views.token_revoke, name="token-revoke"),
    path("worker-checks/", studio_views.worker_check_create, name="worker-check-create"),
    path("worker-checks/<id:check_id>/", studio_views.worker_check_detail, name="worker-check-detail"),
    path("w/", include("workspaces.urls")),
    path("w/<id:workspace_id>/data/", include("data.urls")),
    path("w/<id:workspace_id>/compute/", include("compute.urls")),
    path("w/<id:workspace_id>/environments/", include("environments.urls")),
    path("w/<id:workspace_id>/jobs/", include("training.urls")),
    path("w/<id:workspace_id>/experiments/", include("training.experiment_urls")),
    path("w/<id:workspace_id>/models/", include("training.registry_urls")),
    path("w/<id:workspace_id>/commands/", include("commands.urls")),
    path("w/<id:workspace_id>/endpoints/", include("endpoints.urls")),
    path("w/<id:workspace_id>/code/", include("commands.code_urls")),
    path("w/<id:workspace_id>/mlflow/", include("tracking.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # The schema is an API (401 without credentials); the docs page is a page (login redirect).
    # The split Swagger view serves its start-up script as a file, so the CSP needs no inline script.
    path("api/schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
