"""Hosts on one machine: network namespaces joined by a bridge, each with its own address.

Host A is this (the root) namespace: the bridge carries A's address, and whatever A offers the
other hosts listens there: a Redis started for the suite, PostgreSQL through a relay to the
machine's server (which listens on loopback only), the studio's web server. Hosts B, C, … are
network namespaces with a veth pair into the bridge: their own loopback, their own address, and
no way to this machine's loopback services but through A's address. Processes run on a host with
`ip netns exec`; they share the machine's file system, so each host gets its own data directory
(nothing is shared but the network).
"""

import asyncio
import os
import secrets
import shutil
import subprocess
import threading
from dataclasses import dataclass, field


class NamespacesUnavailable(RuntimeError):
    """This machine cannot make network namespaces (not root, no `ip`)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NamespacesUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _free_subnet() -> str:
    """A 10.x.y.0/24 no interface of this machine is on (x from 200, y random)."""
    taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(200):
        prefix = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
        if f" {prefix}." not in taken:
            return prefix
    raise NamespacesUnavailable("no free 10.x.y.0/24 subnet")


@dataclass
class Host:
    name: str
    address: str
    namespace: str | None  # None: host A, this namespace

    def argv(self, argv: list[str]) -> list[str]:
        """`argv` run on this host (`ip netns exec` replaces itself with the command: same pid)."""
        return argv if self.namespace is None else ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Network:
    """A bridge with host A's address and one namespace per further host; `close` removes them."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: dict = field(default_factory=dict)

    def __post_init__(self):
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise NamespacesUnavailable("network namespaces need root and iproute2's `ip`")
        self.prefix = _free_subnet()
        self.bridge = f"stb{self.tag}"
        _ip("link", "add", self.bridge, "type", "bridge")
        try:
            _ip("addr", "add", f"{self.prefix}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except NamespacesUnavailable:
            self.close()
            raise
        self.hosts["a"] = Host("a", f"{self.prefix}.1", None)

    def add_host(self, name: str) -> Host:
        number = len(self.hosts) + 1
        namespace, outside, inside = f"sto{self.tag}{name}", f"stv{self.tag}{name}", f"sti{self.tag}{name}"
        _ip("netns", "add", namespace)
        self.hosts[name] = host = Host(name, f"{self.prefix}.{number}", namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", outside, "master", self.bridge, "up")
        _ip("link", "set", inside, "netns", namespace)
        _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            if host.namespace:
                subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)  # takes its veth end
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class TcpRelay:
    """Forwards connections from `listen` to `target` (host A offers a loopback-only server on its
    bridge address this way), in a thread with its own event loop."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.listen, self.target = listen, target
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"relay-{listen[1]}", daemon=True)

    def start(self) -> "TcpRelay":
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"the relay on {self.listen} did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, *self.listen))
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

    async def _serve(self, reader, writer) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, target_writer), self._pipe(target_reader, writer))

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
