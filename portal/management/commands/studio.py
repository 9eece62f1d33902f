"""`python manage.py studio`: migrate, seed the demo and run the whole studio on this machine.

Starts, as child processes, the web server (gunicorn, static files by whitenoise), the lab proxy
(the compute instances' JupyterLab, on a port of its own), a Celery worker for the studio's own
tasks, the periodic scheduler (Celery beat) and the local compute agent, which starts and stops
the compute clusters' node processes. A child that dies is restarted with a backoff
(studio/supervisor.py); the others, the web server first, go on.
Ctrl-C or SIGTERM stops them all.
"""

import hashlib
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.management.base import BaseCommand

from compute.agent import SINGLE_THREAD_ENV, SKIP_CHECKS_ENV
from data.uploads import remove_stale_staging
from portal.demo import demo_seed
from studio.broker import remove_stale_partial_files
from studio.services import worker_check_request
from studio.supervisor import Supervisor

# collectstatic's patterns of files it leaves out.
_STATIC_IGNORED = ["CVS", ".*", "*~"]


def web_server_argv(address: str, *, workers: int, threads: int = 4) -> list[str]:
    """The web server's command line: gunicorn's threaded workers on the studio's WSGI application,
    with an access log that leaves out answered scoring requests (studio/weblog.py)."""
    return [
        os.path.join(os.path.dirname(sys.executable), "gunicorn"),
        "portal.wsgi:application",
        "--bind",
        address,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "120",
        "--access-logfile",
        "-",
        "--logger-class",
        "studio.weblog.AccessLogger",
        "--log-level",
        "warning",
    ]


def static_sources_fingerprint() -> str:
    """What collectstatic would collect, as the name, size and modification time of every file."""
    found = []
    for finder in finders.get_finders():
        for path, storage in finder.list(_STATIC_IGNORED):
            stat = os.stat(storage.path(path))
            found.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    digest = hashlib.sha256(settings.STORAGES["staticfiles"]["BACKEND"].encode())
    for line in sorted(found):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def collect_static_if_changed() -> bool:
    """Run collectstatic unless the files are as it last collected them: it hashes and compresses
    every file again each time (~3 s of each start). True if it ran."""
    stamp = Path(settings.STATIC_ROOT).with_name("static.collected")
    fingerprint = static_sources_fingerprint()
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return False
    call_command("collectstatic", interactive=False, verbosity=0)
    stamp.write_text(fingerprint)
    return True


class Command(BaseCommand):
    help = "Run Studio: web server, worker and scheduler, on embedded defaults unless configured."
    requires_system_checks = []  # no view is needed here (compute.agent.SKIP_CHECKS_ENV)

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("STUDIO_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("STUDIO_PORT", "8000")))
        parser.add_argument(
            "--lab-port", type=int, default=None, help="Where the lab proxy serves JupyterLab (default: port + 1)."
        )
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("STUDIO_WEB_WORKERS", "2")))
        parser.add_argument("--no-worker", action="store_true", help="Start no Celery worker (workers run elsewhere).")
        parser.add_argument("--no-beat", action="store_true", help="Start no scheduler (it runs elsewhere).")
        parser.add_argument("--no-agent", action="store_true", help="Start no local provisioner (no local nodes).")

    def handle(self, *args, **options):
        self.supervisor = Supervisor(say=self._say)
        call_command("migrate", interactive=False, verbosity=0)
        collect_static_if_changed()
        remove_stale_staging()  # uploads a previous run left half-done
        if settings.EMBEDDED_BROKER:
            broker_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
            remove_stale_partial_files([broker_options["data_folder_out"], broker_options["control_folder"]])
        seed = demo_seed()

        if options["lab_port"] is None:
            configured = "STUDIO_LAB_PORT" in os.environ
            options["lab_port"] = settings.STUDIO_LAB_PORT if configured else options["port"] + 1
        # Every child agrees on the lab port (the web server's "Open JupyterLab" redirect points there).
        env = {
            **os.environ,
            **SINGLE_THREAD_ENV,
            **SKIP_CHECKS_ENV,
            "DJANGO_SETTINGS_MODULE": "studio.settings",
            "STUDIO_LAB_PORT": str(options["lab_port"]),
        }
        bin_dir = os.path.dirname(sys.executable)
        address = f"{options['host']}:{options['port']}"
        self._start("web", web_server_argv(address, workers=options["web_workers"]), env)
        # Lab traffic (long polls, WebSockets, uploads) in an asyncio process of its own, never in
        # the web server's threads.
        self._start(
            "lab-proxy",
            [sys.executable, "manage.py", "lab_proxy", "--host", options["host"], "--port", str(options["lab_port"])],
            env,
        )
        if not options["no_worker"]:
            self._start(
                "worker",
                [
                    os.path.join(bin_dir, "celery"),
                    "-A",
                    "studio",
                    "worker",
                    "--queues",
                    settings.CELERY_TASK_DEFAULT_QUEUE,
                    "--concurrency",
                    "2",
                    "--hostname",
                    "system@%h",
                    "--loglevel",
                    "INFO",
                ],
                env,
            )
        if not options["no_agent"]:
            (settings.DATA_DIR / "logs").mkdir(exist_ok=True)
            self._start(
                "agent",
                [
                    sys.executable,
                    "manage.py",
                    "compute_agent",
                    "--log-dir",
                    str(settings.DATA_DIR / "logs"),
                ],
                env,
            )
        if not options["no_beat"]:
            self._start(
                "scheduler",
                [
                    os.path.join(bin_dir, "celery"),
                    "-A",
                    "studio",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    settings.CELERY_BEAT_SCHEDULE_FILENAME,
                ],
                env,
            )

        worker_check_request()  # a first canary, so Home shows worker health right away
        # The printed address answers when it is printed.
        self._wait_until_serving("127.0.0.1" if options["host"] == "0.0.0.0" else options["host"], options["port"])  # noqa: S104
        host = "localhost" if options["host"] in ("127.0.0.1", "0.0.0.0") else options["host"]  # noqa: S104
        self._banner(f"http://{host}:{options['port']}/", seed)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            while True:
                self.supervisor.check()
                time.sleep(0.5)
        except _Stop:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.supervisor.stop_all()
            self.stdout.write("Studio stopped.")

    def _say(self, line: str) -> None:
        self.stderr.write(line)
        self.stderr.flush()

    def _wait_until_serving(self, host, port, timeout=60.0):
        deadline = time.monotonic() + timeout
        web = self.supervisor.get("web")
        host = f"[{host}]" if ":" in host else host
        while time.monotonic() < deadline and (web is None or web.proc.poll() is None):
            # An HTTP answer, not a TCP connect: gunicorn's master accepts connections before a
            # worker has loaded the application (seconds on a busy machine).
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/health/", timeout=5):  # noqa: S310 - our own server
                    return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                time.sleep(0.2)

    def _start(self, name, argv, env):
        self.supervisor.start(name, argv, env, cwd=settings.BASE_DIR)

    def _banner(self, url, seed):
        lines = [
            "",
            "Studio is running.",
            f"  Open:     {url}",
            f"  Login:    {seed.username}",
        ]
        if seed.password:
            lines.append(f"  Password: {seed.password}    (shown once: keep it, or change it after signing in)")
        else:
            lines.append("  Password: the one printed on the first run (reset: python manage.py changepassword admin)")
        broker = "embedded (filesystem)" if settings.EMBEDDED_BROKER else settings.CELERY_BROKER_URL.split("@")[-1]
        lines += [
            f"  Data:     {settings.DATA_DIR}",
            f"  Broker:   {broker}",
            "Press Ctrl-C to stop.",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _on_signal(self, signum, frame):
        raise _Stop()


class _Stop(Exception):
    pass
