from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "labs"
    verbose_name = "Notebooks (JupyterLab on compute instances)"

    def ready(self) -> None:
        from compute import instance_addons
        from compute.agent import lab_ended_register

        from . import views
        from .runtime import lab_process_ended
        from .selectors import lab_summary

        instance_addons.register_page_context(views.instance_page_context)
        instance_addons.register_lab_summary(lab_summary)
        lab_ended_register(lab_process_ended)  # the agent, below labs, reports labs that ended unheard
