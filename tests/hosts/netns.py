"""Worker hosts as Linux network namespaces on one bridge: made, cut, healed, removed.

Each host is a namespace with one veth link to a bridge in the root namespace;
the bridge carries an address of a private /24 that no route of this machine
uses, so traffic stays between these namespaces and the root namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field

IP_TIMEOUT_S = 10
# Candidate /24s for the test network, inside 10.0.0.0/8 (RFC 1918).
CANDIDATE_SECOND_OCTETS = range(200, 250)


class NetnsUnavailable(Exception):
    """This machine or user cannot make network namespaces."""


def ip(*args: str) -> str:
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def check_available() -> None:
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root")
    if shutil.which("ip") is None:
        raise NetnsUnavailable("iproute2's ip command is not installed")
    try:
        ip("netns", "list")
    except (RuntimeError, OSError) as error:
        raise NetnsUnavailable(f"ip netns does not work here: {error}") from None


def unused_subnet() -> ipaddress.IPv4Network:
    """A /24 that overlaps no route or address this machine already has."""
    routes = json.loads(ip("-j", "-4", "route", "show", "table", "all"))
    taken = []
    for route in routes:
        with contextlib.suppress(ValueError):
            taken.append(ipaddress.ip_network(route["dst"], strict=False))
    candidates = [
        ipaddress.ip_network(f"10.{second}.{third}.0/24")
        for second in CANDIDATE_SECOND_OCTETS
        for third in range(256)
    ]
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(other) for other in taken if other.prefixlen > 0):
            return subnet
    raise NetnsUnavailable("no free private /24 for the test network")


@dataclass
class Host:
    namespace: str
    veth: str  # the root-namespace end: taking it down cuts the host off
    address: str

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Network:
    """A bridge in the root namespace and hosts attached to it."""

    subnet: ipaddress.IPv4Network = field(default_factory=unused_subnet)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    hosts: list[Host] = field(default_factory=list)
    bridge_made: bool = False

    @property
    def bridge(self) -> str:
        return f"trb{self.tag}"

    @property
    def gateway(self) -> str:
        """The bridge's address: where the hosts reach services of the root namespace."""
        return str(self.subnet.network_address + 1)

    def create(self, host_count: int) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self.bridge_made = True
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for index in range(host_count):
            self.hosts.append(self._add_host(index))

    def _add_host(self, index: int) -> Host:
        host = Host(
            namespace=f"taskrelay-{self.tag}-h{index}",
            veth=f"trv{self.tag}{index}",
            address=str(self.subnet.network_address + 11 + index),
        )
        inside = f"trp{self.tag}{index}"
        ip("netns", "add", host.namespace)
        ip("link", "add", host.veth, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", host.namespace)
        ip("link", "set", host.veth, "master", self.bridge, "up")
        in_ns = ["netns", "exec", host.namespace, "ip"]
        ip(*in_ns, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", inside)
        ip(*in_ns, "link", "set", inside, "up")
        ip(*in_ns, "link", "set", "lo", "up")
        return host

    def cut(self, host: Host) -> None:
        """Pull the host's cable: its packets vanish silently, its connections stay open."""
        ip("link", "set", host.veth, "down")

    def heal(self, host: Host) -> None:
        ip("link", "set", host.veth, "up")

    def destroy(self) -> None:
        """Remove every namespace and link made here, whatever state they are in."""
        for host in self.hosts:
            with contextlib.suppress(RuntimeError, OSError):
                _kill_namespace_processes(host.namespace)
            with contextlib.suppress(RuntimeError, OSError):
                ip("netns", "del", host.namespace)
            # Deleting the namespace deletes the veth pair; this catches a half-made one.
            with contextlib.suppress(RuntimeError, OSError):
                ip("link", "del", host.veth)
        if self.bridge_made:
            with contextlib.suppress(RuntimeError, OSError):
                ip("link", "del", self.bridge)


def _kill_namespace_processes(namespace: str) -> None:
    for pid in ip("netns", "pids", namespace).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
