"""The MLflow REST API 2.0 (tracking): experiments, runs, metrics, params, tags. Thin: each view
reads MLflow's request message, calls one selector or service, answers MLflow's response message."""

from rest_framework.response import Response

from . import selectors, services
from .base import TrackingApiView
from .errors import invalid
from .mlflow_json import experiment_json, run_info_json, run_json
from .selectors import run_row, runs_data


class _View(TrackingApiView):
    def run(self, message: dict):
        run_id = message.get("run_id") or message.get("run_uuid")
        if not run_id:
            raise invalid("Give the run's id (run_id).")
        return selectors.run_get(access=self.access, run_id=run_id)

    def experiment(self, message: dict):
        if message.get("experiment_id") in (None, ""):
            raise invalid("Give the experiment's id (experiment_id).")
        return selectors.experiment_get(access=self.access, experiment_id=message["experiment_id"])


def _one_run(run) -> dict:
    row = run_row(run)
    return run_json(row, runs_data([row]))


# --- Experiments --------------------------------------------------------------------------------
class ExperimentCreateApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        experiment = services.experiment_create(access=self.access, name=message.get("name"), tags=message.get("tags"))
        return Response({"experiment_id": str(experiment.pk)})


class ExperimentGetApi(_View):
    def get(self, request, workspace_id):
        return Response({"experiment": experiment_json(self.experiment(self.message()))})


class ExperimentGetByNameApi(_View):
    def get(self, request, workspace_id):
        name = self.message().get("experiment_name")
        experiment = selectors.experiment_get_by_name(access=self.access, name=name)
        return Response({"experiment": experiment_json(experiment)})


class ExperimentSearchApi(_View):
    reads = True

    def _search(self, message):
        experiments, token = selectors.experiments_search(
            access=self.access,
            filter_string=message.get("filter"),
            view=message.get("view_type"),
            order_by=message.get("order_by"),
            limit=message.get("max_results"),
            token=message.get("page_token"),
        )
        body = {"experiments": [experiment_json(experiment) for experiment in experiments]}
        if token:
            body["next_page_token"] = token
        return Response(body)

    def post(self, request, workspace_id):
        return self._search(self.message())

    def get(self, request, workspace_id):
        message = self.message()
        message["order_by"] = request.query_params.getlist("order_by") or None
        return self._search(message)


class ExperimentUpdateApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        experiment = self.experiment(message)
        if message.get("new_name") not in (None, ""):
            services.experiment_rename(access=self.access, experiment=experiment, name=message["new_name"])
        return Response({})


class ExperimentDeleteApi(_View):
    def post(self, request, workspace_id):
        services.experiment_delete(access=self.access, experiment=self.experiment(self.message()))
        return Response({})


class ExperimentRestoreApi(_View):
    def post(self, request, workspace_id):
        services.experiment_restore(access=self.access, experiment=self.experiment(self.message()))
        return Response({})


class ExperimentTagSetApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        experiment = self.experiment(message)
        services.experiment_tag_set(
            access=self.access, experiment=experiment, key=message.get("key"), value=message.get("value")
        )
        return Response({})


class ExperimentTagDeleteApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        services.experiment_tag_delete(access=self.access, experiment=self.experiment(message), key=message.get("key"))
        return Response({})


# --- Runs -----------------------------------------------------------------------------------------
class RunCreateApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        self.access.require_unscoped()
        experiment_id = message.get("experiment_id") or selectors.DEFAULT_EXPERIMENT_ID
        experiment = selectors.experiment_get(access=self.access, experiment_id=experiment_id)
        run = services.run_create(
            access=self.access,
            experiment=experiment,
            run_name=message.get("run_name"),
            start_time=message.get("start_time"),
            tags=message.get("tags"),
        )
        run = selectors.run_get(access=self.access, run_id=run.pk)
        return Response({"run": _one_run(run)})


class RunGetApi(_View):
    def get(self, request, workspace_id):
        return Response({"run": _one_run(self.run(self.message()))})


class RunUpdateApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        run = services.run_update(
            access=self.access,
            run=self.run(message),
            status=message.get("status"),
            end_time=message.get("end_time"),
            run_name=message.get("run_name"),
        )
        return Response({"run_info": run_info_json(run_row(run))})


class RunDeleteApi(_View):
    def post(self, request, workspace_id):
        services.run_delete(access=self.access, run=self.run(self.message()))
        return Response({})


class RunRestoreApi(_View):
    def post(self, request, workspace_id):
        services.run_restore(access=self.access, run=self.run(self.message()))
        return Response({})


class RunSearchApi(_View):
    reads = True

    def post(self, request, workspace_id):
        message = self.message()
        runs, token = selectors.runs_search(
            access=self.access,
            experiment_ids=message.get("experiment_ids"),
            filter_string=message.get("filter"),
            view=message.get("run_view_type"),
            order_by=message.get("order_by"),
            limit=message.get("max_results"),
            token=message.get("page_token"),
        )
        data = runs_data(runs)
        body = {"runs": [run_json(run, data) for run in runs]}
        if token:
            body["next_page_token"] = token
        return Response(body)


class LogMetricApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        metric = {key: message.get(key) for key in ("key", "value", "timestamp", "step")}
        services.run_log_batch(access=self.access, run=self.run(message), metrics=[metric])
        return Response({})


class LogParamApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        param = {"key": message.get("key"), "value": message.get("value")}
        services.run_log_batch(access=self.access, run=self.run(message), params=[param])
        return Response({})


class LogBatchApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        services.run_log_batch(
            access=self.access,
            run=self.run(message),
            metrics=message.get("metrics"),
            params=message.get("params"),
            tags=message.get("tags"),
        )
        return Response({})


class SetTagApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        services.run_tag_set(
            access=self.access, run=self.run(message), key=message.get("key"), value=message.get("value")
        )
        return Response({})


class DeleteTagApi(_View):
    def post(self, request, workspace_id):
        message = self.message()
        services.run_tag_delete(access=self.access, run=self.run(message), key=message.get("key"))
        return Response({})


class MetricHistoryApi(_View):
    def get(self, request, workspace_id):
        message = self.message()
        key = message.get("metric_key")
        rows, token = selectors.metric_history(
            run=self.run(message), key=key, limit=message.get("max_results"), token=message.get("page_token")
        )
        body = {
            "metrics": [
                {"key": key, "value": value, "timestamp": int(at.timestamp() * 1000), "step": step}
                for value, step, at in rows
            ]
        }
        if token:
            body["next_page_token"] = token
        return Response(body)


class LoggedModelSearchApi(_View):
    """The studio keeps no MLflow logged models (its models are in its registry): the search
    answers none, so the client's artifact listing and download of a run's folder work."""

    reads = True

    def post(self, request, workspace_id):
        self.message()
        return Response({"models": []})
