"""nginx for tests: Debian's binary, run unprivileged-style on 127.0.0.1 with
`deploy/nginx.conf` as the fragment it serves.

Everything it writes (pid, logs, temp files) is under one directory; the master runs
in the foreground in its own process group and is always stopped with its workers. A
missing nginx fails the test loudly (never a skip): `make test` installs it
(`make nginx`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

DEFAULT_NGINX = "/usr/sbin/nginx"
DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"

_UPSTREAM_SERVER = re.compile(r"^(\s*server )127\.0\.0\.1:\d+( [^;]*;)$", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen 8080;$", re.MULTILINE)
_LOG_DIR = "/var/log/nginx/"


def nginx_path() -> str:
    """$CLAUDE_PROXY_TEST_NGINX, else /usr/sbin/nginx; the test fails when missing."""
    path = os.environ.get("CLAUDE_PROXY_TEST_NGINX") or DEFAULT_NGINX
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"The scale-out test needs Debian's nginx at {path}. Run `make nginx` (as "
            "root it runs `apt-get install -y nginx`), or set CLAUDE_PROXY_TEST_NGINX "
            "to an nginx executable.",
            pytrace=False,
        )
    return path


def render_deploy_conf(listen_port: int, upstream_ports: Sequence[int], log_dir: Path) -> str:
    """deploy/nginx.conf with its instances at `upstream_ports` on 127.0.0.1, listening
    on 127.0.0.1:`listen_port`, logging under `log_dir`; everything else as shipped.

    Fails when the file no longer has the shape this rewrites (one instance line per
    port, one `listen 8080;`), so the test never serves something else unawares.
    """
    text = DEPLOY_CONF.read_text()
    servers = _UPSTREAM_SERVER.findall(text)
    assert len(servers) == len(upstream_ports), "deploy/nginx.conf lists other instances"
    ports = iter(upstream_ports)
    text = _UPSTREAM_SERVER.sub(lambda m: f"{m[1]}127.0.0.1:{next(ports)}{m[2]}", text)
    text, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{listen_port};", text)
    assert listens == 1, "deploy/nginx.conf no longer listens on 8080"
    assert _LOG_DIR in text, "deploy/nginx.conf no longer logs under /var/log/nginx"
    return text.replace(_LOG_DIR, f"{log_dir}/")


def main_conf(root: Path, fragment: Path) -> str:
    """A whole nginx.conf around `fragment`: every path under `root`. As root, the
    workers run as root too, since the directory is root's alone (a test's tmp dir)."""
    temp = " ".join(
        f"{kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    return "\n".join(
        [
            *(["user root;"] if os.geteuid() == 0 else []),
            "worker_processes 2;",
            f"pid {root / 'nginx.pid'};",
            f"error_log {root / 'error.log'} notice;",
            "events { worker_connections 256; }",
            "http {",
            f"    {temp}",
            f"    uwsgi_temp_path {root / 'uwsgi'}; scgi_temp_path {root / 'scgi'};",
            f"    access_log {root / 'access.log'};",
            f"    include {fragment};",
            "}",
            "",
        ]
    )


class Nginx:
    """nginx serving `deploy/nginx.conf` in front of instances on 127.0.0.1."""

    def __init__(self, root: Path, listen_port: int, upstream_ports: Sequence[int]) -> None:
        self.root = root
        self.port = listen_port
        self.base_url = f"http://127.0.0.1:{listen_port}"
        root.mkdir(parents=True, exist_ok=True)
        fragment = root / "claude-max-api.conf"
        fragment.write_text(render_deploy_conf(listen_port, upstream_ports, root))
        self.conf = root / "nginx.conf"
        self.conf.write_text(main_conf(root, fragment))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, executable: str, timeout: float = 20.0) -> Nginx:
        argv = [executable, "-p", str(self.root), "-e", str(self.root / "error.log")]
        argv += ["-c", str(self.conf), "-g", "daemon off;"]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.base_url}: {self.log()}")

    def log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def access_log(self) -> str:
        path = self.root / "claude-max-api.access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """A fast shutdown (SIGTERM: the master ends once its workers have), else
        SIGKILL for the master's whole group, workers included."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the master is not reaped yet
            self.process.wait(5)
