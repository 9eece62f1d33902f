"""The sandbox for user code (command jobs): a pure engine, no Django.

A run is a child process tree in its own session, with an allow-listed environment, as an
unprivileged user when the node is root, inside bubblewrap where the host has it, limited to the
node's size and ended whole on cancel, time limit or any limit hit. See sandbox.Sandbox.
"""

from .host import protections_available
from .sandbox import Sandbox, SandboxError
from .spec import Limits, Mount, Outcome, Protections, SandboxSpec

__all__ = [
    "Limits",
    "Mount",
    "Outcome",
    "Protections",
    "Sandbox",
    "SandboxError",
    "SandboxSpec",
    "protections_available",
]
