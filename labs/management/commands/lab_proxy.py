"""`python manage.py lab_proxy`: serve the compute instances' JupyterLab (labs.proxy)."""

import os

from aiohttp import web
from django.conf import settings
from django.core.management.base import BaseCommand

from labs.proxy import make_app


class Command(BaseCommand):
    help = "Serve the compute instances' JupyterLab to their owners, on the lab origin (STUDIO_LAB_URL)."
    requires_system_checks = []  # a proxy to the labs, never Django's pages (compute.agent.SKIP_CHECKS_ENV)

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("STUDIO_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=settings.STUDIO_LAB_PORT)

    def handle(self, *args, **options):
        # The ORM runs in the proxy's own look-up threads, never on the event loop.
        self.stdout.write(f"Lab proxy on http://{options['host']}:{options['port']}/")
        self.stdout.flush()
        web.run_app(
            make_app(), host=options["host"], port=options["port"], access_log=None, print=None, shutdown_timeout=5
        )
