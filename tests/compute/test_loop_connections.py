"""Loops that run for a process's life keep one database connection: with DB_CONN_MAX_AGE=0 (the
default) Django's close_old_connections() closed it at every turn, so the agent opened a new
PostgreSQL session four times a second and every node's heartbeat one per beat (docs/scale.md)."""

import threading

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from compute.agent import LocalAgent


class RecordingAgent(LocalAgent):
    """Records each tick's connection (and PostgreSQL backend), and whether the tick worked."""

    def __init__(self, ticks_wanted: int, **kwargs):
        super().__init__(**kwargs)
        self.ticks_wanted = ticks_wanted
        self.ticks: list[tuple[bool, int | None]] = []
        self.ticked = threading.Event()

    def tick(self):
        try:
            super().tick()
        except Exception:
            self.ticks.append((False, None))
            raise
        finally:
            self.ticked.set()
        backend = connection.connection.info.backend_pid if connection.vendor == "postgresql" else None
        self.ticks.append((True, backend))

    def done(self) -> bool:
        return len(self.ticks) >= self.ticks_wanted


def run_agent(agent, on_tick=None) -> list:
    opened = []  # the connection wrappers the agent's thread opened, kept here so a close is explicit

    def record(sender, connection, **kwargs):
        if threading.current_thread().name == "agent-loop":
            opened.append(connection)

    connection_created.connect(record)
    try:
        thread = threading.Thread(target=agent.run_forever, kwargs={"should_stop": agent.done}, name="agent-loop")
        thread.start()
        while thread.is_alive():
            if agent.ticked.wait(0.5) and on_tick:
                agent.ticked.clear()
                on_tick(agent)
        thread.join(30)
    finally:
        connection_created.disconnect(record)
    return opened


@pytest.mark.django_db(transaction=True)
def test_the_agent_keeps_one_connection_across_ticks_and_closes_it_when_it_stops(settings, tmp_path):
    settings.STUDIO_AGENT_INTERVAL = 0.01
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0
    agent = RecordingAgent(ticks_wanted=12, log_dir=str(tmp_path))
    opened = run_agent(agent)
    assert [ok for ok, _ in agent.ticks] == [True] * 12
    assert len(opened) == 1  # one connection for twelve ticks (twelve before)
    assert opened[0].connection is None  # closed when the loop ended, not left to the collector


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_replaced_at_the_next_tick(settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL drops a session here; SQLite's connection cannot break this way")
    settings.STUDIO_AGENT_INTERVAL = 0.05
    agent = RecordingAgent(ticks_wanted=20, log_dir=str(tmp_path))
    terminated = []

    def terminate_once(agent):
        ok_backends = [backend for ok, backend in agent.ticks if ok]
        if len(agent.ticks) >= 3 and not terminated:
            with connection.cursor() as cursor:  # the test's own connection ends the agent's session
                cursor.execute("SELECT pg_terminate_backend(%s)", [ok_backends[-1]])
                terminated.append(ok_backends[-1])

    opened = run_agent(agent, on_tick=terminate_once)
    assert terminated
    outcomes = [ok for ok, _ in agent.ticks]
    assert outcomes.count(False) <= 1 and outcomes[-5:] == [True] * 5  # one failed tick at most, then it goes on
    backends = [backend for ok, backend in agent.ticks if ok]
    assert backends[-1] != terminated[0]
    assert len(opened) == 2  # the first session and its replacement, no more
