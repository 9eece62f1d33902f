"""One studio for the whole corpus: a user, a workspace, a warm two-node cluster, an inference
cluster, the local agent and the reconciler, shared by every file's test (module scope).

Starting node processes and the agent once (not per file) is what keeps the corpus pass within a
few minutes on a 2-core machine. The rows are committed for real (the node processes read them),
so the module ends by flushing the database, as a transactional test does after each test.
"""

import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.conftest import BackgroundLoop, _database_url, _embedded_broker, _use_broker, wait_for


class CorpusStudio:
    def __init__(self, *, data_dir: Path, owner, workspace, cluster, inference):
        self.data_dir, self.owner, self.workspace = data_dir, owner, workspace
        self.cluster, self.inference = cluster, inference


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus-studio")
    (path / "artifacts").mkdir()
    return path


@pytest.fixture
def studio_data_dir(corpus_dir) -> Path:
    """Every test of the corpus uses the module's data directory (the nodes' STUDIO_DATA_DIR)."""
    return corpus_dir


@pytest.fixture(scope="module")
def corpus_database(django_db_setup, django_db_blocker):
    """The test database. pytest-django creates it only for tests marked for the database (whose
    rows it then rolls back or flushes after each test); the corpus keeps its rows for the whole
    module, so when it runs alone it creates the test database itself."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        if connection.settings_dict["NAME"] == connection.creation._get_test_db_name():
            yield
            return
        created = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        yield
        teardown_databases(created, verbosity=0)


@pytest.fixture(scope="module")
def corpus_studio(corpus_database, django_db_blocker, corpus_dir):
    from django.contrib.auth import get_user_model

    from compute.agent import LocalAgent
    from compute.jobs.services import jobs_reconcile
    from compute.models import Node, NodeStatus, TargetKind
    from compute.services import default_cluster_for, target_create, target_update
    from endpoints import serving
    from endpoints.scoring.predictor import invalidate
    from studio.celery import app
    from tests.conftest import PASSWORD
    from workspaces.services import workspace_create

    broker = _embedded_broker(corpus_dir)
    overrides = override_settings(
        ARTIFACT_ROOT=corpus_dir / "artifacts",
        CELERY_BROKER_URL=broker.url,
        EMBEDDED_BROKER=True,
        STUDIO_HEARTBEAT_TIMEOUT=4,
        STUDIO_REPUBLISH_AFTER=2,
        STUDIO_MONITOR_FLUSH_SECONDS=0,
    )
    overrides.enable()
    previous = (app.conf.broker_url, app.conf.broker_transport_options)
    _use_broker(broker)
    loops, agent = [], None
    with django_db_blocker.unblock():
        try:
            owner = get_user_model().objects.create_user(username="alice", password=PASSWORD)
            workspace = workspace_create(actor=owner, name="Corpus")
            # One warm cluster for everything: the studio's default (ingest runs there) at two nodes.
            cluster = target_update(actor=owner, target=default_cluster_for(workspace), min_nodes=2, max_nodes=2)
            inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving")
            log_dir = corpus_dir / "node-logs"
            log_dir.mkdir(exist_ok=True)
            agent = LocalAgent(
                log_dir=str(log_dir),
                extra_env={
                    "DATABASE_URL": _database_url(),
                    "STUDIO_DATA_DIR": str(corpus_dir),
                    "CELERY_BROKER_URL": broker.url,
                    "STUDIO_HEARTBEAT_SECONDS": "0.5",
                    "STUDIO_HEARTBEAT_TIMEOUT": "4",
                },
            )
            loops.append(BackgroundLoop(agent.tick, 0.1).start())
            loops.append(BackgroundLoop(jobs_reconcile, 0.5).start())
            wait_for(
                lambda: Node.objects.filter(target=cluster, status=NodeStatus.IDLE).count() == 2,
                timeout=90,
                message="two warm nodes",
            )
            yield CorpusStudio(
                data_dir=corpus_dir, owner=owner, workspace=workspace, cluster=cluster, inference=inference.target
            )
            for loop in loops:
                assert not loop.errors, loop.errors
        finally:
            for loop in loops:
                loop.stop()
            if agent is not None:
                agent.stop_all(kill=True)
            call_command("flush", interactive=False, verbosity=0)
            serving.configs.clear()  # the endpoints this process cached are gone with the rows
            invalidate()
            app.conf.broker_url, app.conf.broker_transport_options = previous
            app._after_fork()
            overrides.disable()
            shutil.rmtree(corpus_dir / "broker", ignore_errors=True)


@pytest.fixture
def studio(corpus_studio, django_db_blocker):
    """The shared studio, with database access for the test body (committed, no rollback)."""
    with django_db_blocker.unblock():
        yield corpus_studio


def pytest_terminal_summary(terminalreporter):
    """The ONNX coverage of what the studio made from the corpus (issue 10's coverage figure)."""
    from tests.corpus.test_corpus import ONNX_SERVED

    if ONNX_SERVED:
        served = sum(onnx is True for onnx in ONNX_SERVED.values())
        terminalreporter.write_line(
            f"ONNX coverage on the corpus: {served}/{len(ONNX_SERVED)} models served by ONNX"
            + "".join(f"\n  no ONNX twin: {name}: {onnx}" for name, onnx in ONNX_SERVED.items() if onnx is not True)
        )
