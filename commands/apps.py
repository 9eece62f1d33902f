from django.apps import AppConfig


class CommandsConfig(AppConfig):
    name = "commands"
    verbose_name = "Command jobs"

    def ready(self) -> None:
        from workspaces.usage import stored_register

        from . import jobs  # noqa: F401 - registers the command job kind with the job engine
        from .models import CodeSnapshot

        # Code snapshots count against the workspace's storage quota.
        stored_register(CodeSnapshot.objects.all, workspace_field="workspace", size_field="size")
