"""`python manage.py compute_node --target ID --token join_…`: join this machine to attached compute.

Run it on the machine to attach, with the same DATABASE_URL, CELERY_BROKER_URL and
STUDIO_DATA_DIR (a shared file system) as the studio. It registers a node with the join token
and becomes that node's Celery worker.
"""

import os
import sys

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from compute.agent import NODE_WORKER_ENV, node_worker_argv
from compute.models import ComputeTarget
from compute.services import node_join


class Command(BaseCommand):
    help = "Join this machine to an attached compute target and run its worker."

    def add_arguments(self, parser):
        parser.add_argument("--target", type=int, required=True)
        parser.add_argument(
            "--token",
            default=os.environ.get("STUDIO_JOIN_TOKEN", ""),
            help="The join token (or set STUDIO_JOIN_TOKEN, which keeps it out of `ps`).",
        )

    def handle(self, *args, target, token, **options):
        try:
            node = node_join(token=token, target_id=target, hostname=settings.STUDIO_HOSTNAME, pid=os.getpid())
        except (PermissionDenied, ValidationError) as exc:
            raise CommandError(str(exc).strip("[]'\"")) from None
        queue = ComputeTarget.objects.get(pk=target).queue
        self.stdout.write(f"Joined as {node.name}; consuming {queue}.")
        env = {**os.environ, **NODE_WORKER_ENV, "STUDIO_NODE_ID": str(node.pk)}
        env.pop("STUDIO_JOIN_TOKEN", None)
        argv = node_worker_argv(queue=queue, node_name=node.name)
        os.execve(sys.executable, argv, env)  # noqa: S606 - the worker replaces this process; its pid stays the node's
