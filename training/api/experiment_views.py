"""An experiment's runs in the REST API with chosen metric and parameter
values, sorted like the experiment page (the same selectors)."""

from drf_spectacular.utils import extend_schema

from studio.api.inputs import query_values
from workspaces.api.base import WorkspaceListApiView

from .. import experiment_selectors as selectors
from .serializers import ExperimentRunOut, ExperimentRunsIn


class ExperimentRunsApi(WorkspaceListApiView):
    serializer_class = ExperimentRunOut

    def get_queryset(self):
        self.values = query_values(ExperimentRunsIn, self.request)
        experiment = selectors.experiment_get(workspace=self.workspace, experiment_id=self.kwargs["experiment_id"])
        sort = selectors.run_sort_parse(self.values["sort"])
        return selectors.experiment_run_ids(experiment=experiment, sort=sort, trials=self.values["trials"])

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return selectors.runs_get(page, metrics=self.values["metrics"], params=self.values["params"])

    @extend_schema(parameters=[ExperimentRunsIn], summary="An experiment's runs, with their latest metric values")
    def get(self, request, workspace_id, experiment_id):
        return self.list(request)
