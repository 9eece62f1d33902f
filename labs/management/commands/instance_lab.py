"""`python manage.py instance_lab --node <id>`: a compute instance's lab (the local agent starts it)."""

import signal
import sys
import threading

from django.core.management.base import BaseCommand

from labs.runtime import LabRun


class Command(BaseCommand):
    help = "Run the JupyterLab of a compute instance's node in the sandbox until stopped (SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument("--node", type=int, required=True, help="The id of the instance's node.")

    def handle(self, *args, node, **options):
        stop_requested = threading.Event()

        def on_signal(signum, frame):
            stop_requested.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        code = LabRun(node, stop_requested, out=self.stdout).run()
        if code:
            sys.exit(code)
