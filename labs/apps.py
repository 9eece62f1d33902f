from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "labs"
    verbose_name = "Notebooks (JupyterLab on compute instances)"

    def ready(self) -> None:
        from compute.agent import lab_ended_register

        from .runtime import lab_process_ended

        lab_ended_register(lab_process_ended)  # the agent, below labs, reports labs that ended unheard
