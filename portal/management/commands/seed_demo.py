from django.core.management.base import BaseCommand

from portal.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo admin and workspace if they do not exist (prints a new password once)."

    def handle(self, *args, **options):
        seed = demo_seed()
        if seed.password:
            self.stdout.write(f"Created user {seed.username} with password: {seed.password}")
        else:
            self.stdout.write(f"User {seed.username} exists; its password is unchanged.")
        self.stdout.write(f"Demo workspace: {seed.workspace.name} (id {seed.workspace.pk})")
