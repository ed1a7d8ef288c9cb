"""The server's listening sockets, bound before anything else starts.

`serve` binds host:port itself, before it opens the service (CLI processes, the warm
pool), so a port in use stops it at once with one line that says what to do, instead
of uvicorn's `[Errno 98]` after the whole start-up. `doctor` binds the same way to
tell whether `serve` could.
"""

from __future__ import annotations

import errno
import socket
from typing import NamedTuple

from claude_max_api.probe import BUSY, probe_host, proxy_health

__all__ = [
    "ListenFailure",
    "address_of",
    "bind_sockets",
    "cannot_listen",
    "listening_sockets",
    "port_holder",
    "spare_port",
]


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address `host` names, as uvicorn's own bind would make
    them (asyncio's `create_server`: SO_REUSEADDR, IPv6 sockets IPv6-only); not yet
    listening. Raises OSError (socket.gaierror for a host that does not resolve)."""
    infos = socket.getaddrinfo(
        host or None,
        port,
        family=socket.AF_UNSPEC,
        type=socket.SOCK_STREAM,
        flags=socket.AI_PASSIVE,
    )
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # As asyncio does: `::` then takes IPv6 only, leaving IPv4 to its own socket.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """`bind_sockets`, listening: the port is ours from now on (raises OSError)."""
    sockets = bind_sockets(host, port)
    try:
        for sock in sockets:
            sock.listen()
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def address_of(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def spare_port(port: int) -> int:
    """The port to suggest instead of `port`."""
    return port + 1 if port < 65535 else port - 1


def port_holder(host: str, port: int) -> str | None:
    """What a claude-max-api server holding host:port says of itself (`ok`, `degraded`,
    `busy`), or None when what holds it is not one (or does not answer)."""
    return proxy_health(port, host=probe_host(host))


class ListenFailure(NamedTuple):
    """Why `serve` cannot listen on an address, and what to do instead."""

    problem: str
    remedy: str

    @property
    def line(self) -> str:
        """Both, on one line."""
        return f"{self.problem}; {self.remedy}"


def cannot_listen(host: str, port: int, error: OSError) -> ListenFailure:
    """Why `serve` cannot listen on host:port (the error binding it), and what to do."""
    where = address_of(host, port)
    if isinstance(error, socket.gaierror):
        return ListenFailure(
            f"cannot resolve the host {host!r} ({error.strerror})",
            "choose another with --host (e.g. --host 127.0.0.1)",
        )
    if error.errno == errno.EADDRINUSE:
        holder = port_holder(host, port)
        who = "another process" if holder is None else "a claude-max-api server"
        if holder == BUSY:
            who += " (at its connection limit)"
        return ListenFailure(
            f"{where} is already in use by {who}",
            f"choose another port with --port {spare_port(port)}",
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return ListenFailure(
            f"cannot listen on {where}: {host} is not an address of this machine",
            "choose one with --host (e.g. --host 127.0.0.1)",
        )
    if error.errno == errno.EACCES:
        why = "; ports below 1024 need privileges" if port < 1024 else ""
        return ListenFailure(
            f"not allowed to listen on {where} ({error.strerror}{why})",
            "choose another port with --port (e.g. --port 3456)",
        )
    return ListenFailure(
        f"cannot listen on {where}: {error.strerror or error}",
        "choose another address with --host or --port",
    )
