from django.apps import AppConfig


class CommandsConfig(AppConfig):
    name = "commands"
    verbose_name = "Command jobs"

    def ready(self) -> None:
        from compute.jobs.kinds import register
        from training.submit_forms import submit_form_register
        from workspaces.usage import stored_register

        from .models import COMMAND, CodeSnapshot

        # The job kind's handler and form by their dotted paths: imported when first needed.
        register(COMMAND, "Command", "commands.jobs.CommandJob")
        submit_form_register(COMMAND, "commands.forms.CommandJobForm")
        # Code snapshots count against the workspace's storage quota.
        stored_register(CodeSnapshot.objects.all, workspace_field="workspace", size_field="size")
