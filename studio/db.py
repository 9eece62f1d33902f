"""Database connections in loops that run for a process's life (the agent, heartbeats, flushes)."""

from django.db import connections


def close_broken_connections() -> None:
    """Call at the top of each turn of a long-running loop: this thread keeps its connection from
    one turn to the next, and loses it only when it is broken (an error left it unusable, or a
    transaction setting was left changed); the next query then connects again.

    Django's ``close_old_connections()`` also closes a connection older than ``DB_CONN_MAX_AGE``,
    which with the default of 0 is every connection, every call: the agent ticking four times a
    second opened four PostgreSQL sessions a second, and each node's heartbeat one every beat.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue
        if conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
