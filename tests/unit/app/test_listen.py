"""serve's own bind: the sockets it listens on, and one clear line when it cannot."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from claude_max_api.listen import bind_sockets, cannot_listen, listening_sockets
from proxy_http.app import create_app
from tests.support.server import fake_service, live_app


@pytest.fixture
def held() -> Iterator[int]:
    """A port another (plain) program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def bind_error(host: str, port: int) -> OSError:
    """The error binding host:port (the test fails if it binds)."""
    try:
        sockets = bind_sockets(host, port)
    except OSError as error:
        return error
    for sock in sockets:
        sock.close()
    raise AssertionError(f"{host}:{port} could be bound")


def test_a_port_held_by_another_program_says_so_with_the_port_hint(held: int) -> None:
    failure = cannot_listen("127.0.0.1", held, bind_error("127.0.0.1", held))
    assert failure.line == (
        f"127.0.0.1:{held} is already in use by another process; "
        f"choose another port with --port {held + 1}"
    )


def test_a_port_held_by_a_claude_max_api_server_names_it() -> None:
    with live_app(create_app(fake_service())) as server:
        failure = cannot_listen("127.0.0.1", server.port, bind_error("127.0.0.1", server.port))
    assert (
        failure.problem == f"127.0.0.1:{server.port} is already in use by a claude-max-api server"
    )
    assert failure.remedy == f"choose another port with --port {server.port + 1}"


def test_an_address_of_another_machine_says_to_choose_a_host() -> None:
    # 192.0.2.0/24 is reserved for documentation: never an address of this machine.
    failure = cannot_listen("192.0.2.7", 3456, bind_error("192.0.2.7", 3456))
    assert (
        failure.problem
        == "cannot listen on 192.0.2.7:3456: 192.0.2.7 is not an address of this machine"
    )
    assert "--host 127.0.0.1" in failure.remedy


def test_a_host_that_does_not_resolve_says_so() -> None:
    failure = cannot_listen("no-such-host.invalid", 3456, bind_error("no-such-host.invalid", 3456))
    assert failure.problem.startswith("cannot resolve the host 'no-such-host.invalid'")
    assert "--host" in failure.remedy


def test_an_ipv6_host_is_bound_as_ipv6_and_shown_in_brackets() -> None:
    [sock] = listening_sockets("::1", 0)
    with sock:
        assert sock.family == socket.AF_INET6
        port = sock.getsockname()[1]
        failure = cannot_listen("::1", port, bind_error("::1", port))
    assert failure.problem == f"[::1]:{port} is already in use by another process"


def test_the_sockets_are_bound_as_uvicorn_binds_them() -> None:
    [sock] = bind_sockets("127.0.0.1", 0)
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert not sock.get_inheritable()  # a CLI child must not hold the port
