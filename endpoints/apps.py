from django.apps import AppConfig
from django.utils.module_loading import import_string


def deployments_of(model_versions) -> list[str]:
    """The deployments that serve any of the model versions: the check imported on first use, because
    endpoints.selectors imports the serving runtime (pandas, the model loaders) and every process,
    nodes included, starts Django."""
    return import_string("endpoints.selectors.deployments_of")(model_versions)


def replicas_reconcile() -> None:
    """The agent's tick hook (imported on first use, like deployments_of)."""
    import_string("endpoints.services.replicas_reconcile")()


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints"

    def ready(self) -> None:
        from compute.agent import tick_hook_register
        from compute.jobs.kinds import register
        from training.registry_services import MODEL_VERSION_REFERENCES
        from training.submit_forms import submit_form_register

        from .models import BATCH_SCORE

        # The job kind's handler and form by their dotted paths: imported (with pandas) when first needed.
        register(BATCH_SCORE, "Batch scoring", "endpoints.jobs.BatchScoreJob")
        submit_form_register(BATCH_SCORE, "endpoints.forms.BatchScoreJobForm")
        MODEL_VERSION_REFERENCES.register(deployments_of)
        tick_hook_register(replicas_reconcile)  # the local agent, below endpoints, starts the replicas
