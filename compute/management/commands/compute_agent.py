"""`python manage.py compute_agent [--replicas-only]`: the local provisioner (the run command starts one;
a serving host runs one with --replicas-only)."""

import signal

from django.core.management.base import BaseCommand

from compute.agent import LocalAgent, recover_after_restart


class Command(BaseCommand):
    help = "Scale clusters and start/stop their node processes on this machine until stopped."
    requires_system_checks = []  # an agent starts processes, never serves pages (SKIP_CHECKS_ENV)

    def add_arguments(self, parser):
        parser.add_argument("--log-dir", default=None, help="Write each node's worker log to this folder.")
        parser.add_argument(
            "--replicas-only",
            action="store_true",
            help="A serving host: start only the serving replicas of inference clusters (no job nodes, no "
            "cluster autoscaling; another host's agent does that).",
        )

    def handle(self, *args, log_dir=None, replicas_only=False, **options):
        stop = {"now": False}

        def on_signal(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        recovered = recover_after_restart()
        if recovered:
            self.stdout.write(f"Marked {recovered} node(s) of a previous run as lost.")
        agent = LocalAgent(log_dir=log_dir, replicas_only=replicas_only)
        try:
            agent.run_forever(should_stop=lambda: stop["now"])
        finally:
            agent.stop_all()
