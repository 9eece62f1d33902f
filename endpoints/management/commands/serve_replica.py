"""`python manage.py serve_replica --node ID`: run one serving replica (endpoints/replica.py).

The local agent runs it for each replica node of an inference cluster. With `--standby` it imports
the serving stack, then reads "<node id>\t<log path>" on its standard input and serves that node
(the agent keeps one such process ready, so a replica starts without a fresh interpreter). `--bind` (default
STUDIO_REPLICA_BIND, 127.0.0.1) and `--port` (default 0: a free port) choose where it listens;
STUDIO_REPLICA_ADVERTISE names the host the portal should reach it by, when that differs.
"""

import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from endpoints.replica import serve, wait_for_node


class Command(BaseCommand):
    help = "Serve one deployment's model as the replica of an inference cluster's node."
    requires_system_checks = []  # a replica serves its model, never pages: the checks load every view

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--node", type=int)
        which.add_argument("--standby", action="store_true", help="Wait for the node on standard input.")
        parser.add_argument("--bind", default=None, help="Address to listen on (default STUDIO_REPLICA_BIND).")
        parser.add_argument("--port", type=int, default=0, help="Port to listen on (default: a free one).")

    def handle(self, *args, node, standby, bind, port, **options):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        if standby:
            node = wait_for_node()
            if node is None:
                sys.exit(0)
        sys.exit(serve(node_id=node, bind=bind or settings.STUDIO_REPLICA_BIND, port=port))
