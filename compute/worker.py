"""Hooks that run inside a node's Celery worker process (STUDIO_NODE_ID is set by the provisioner
or by `manage.py compute_node` on an attached machine): report ready, heartbeat, stop when told.
"""

import logging
import os
import signal
import threading
import time

from celery import signals
from django.conf import settings
from django.db import close_old_connections

from studio.db import close_broken_connections

from . import services
from .sandbox import protections_available

log = logging.getLogger("studio.node")


def current_node_id() -> int | None:
    raw = os.environ.get("STUDIO_NODE_ID")
    return int(raw) if raw and raw.isdigit() else None


class _Heartbeat(threading.Thread):
    """Heartbeats the node from the worker's main process; stops the worker when the node is
    asked to leave, or when it cannot reach the database for longer than the heartbeat timeout."""

    def __init__(self, node_id: int):
        super().__init__(name="node-heartbeat", daemon=True)
        self.node_id = node_id
        self.stop_event = threading.Event()

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self.stop_event.wait(settings.STUDIO_HEARTBEAT_SECONDS):
            try:
                close_broken_connections()
                status = services.node_heartbeat(node_id=self.node_id)
                last_ok = time.monotonic()
            except Exception:  # noqa: BLE001 - a heartbeat failure must not kill the thread
                log.exception("heartbeat failed")
                if time.monotonic() - last_ok > settings.STUDIO_HEARTBEAT_TIMEOUT:
                    log.error("cannot heartbeat for %.0f s: stopping this node", settings.STUDIO_HEARTBEAT_TIMEOUT)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                continue
            if status in (None, "leaving", "stopped", "lost"):
                log.info("node-%s is %s: stopping", self.node_id, status or "deleted")
                os.kill(os.getpid(), signal.SIGTERM)
                return


_heartbeat: _Heartbeat | None = None


@signals.worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):
    global _heartbeat
    node_id = current_node_id()
    if node_id is None:
        return

    services.node_mark_ready(
        node_id=node_id,
        hostname=settings.STUDIO_HOSTNAME,
        pid=os.getpid(),
        protections=protections_available().describe(),
    )
    _heartbeat = _Heartbeat(node_id)
    _heartbeat.start()


@signals.worker_shutdown.connect
def _on_worker_shutdown(sender=None, **kwargs):
    node_id = current_node_id()
    if node_id is None:
        return
    if _heartbeat is not None:
        _heartbeat.stop_event.set()

    close_old_connections()
    services.node_mark_stopped(node_id=node_id, reason="worker shut down")
