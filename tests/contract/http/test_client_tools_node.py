"""Client tools with the Node openai SDK: a streamed tool call, as a Node client
assembles it from the chunks, against a live server over the real CLI.

The SDK is installed project-local and pinned (`.node-openai-version`) by `make test`;
a missing one fails the test loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.conftest import ROOT
from tests.support.client_tools import WEATHER, call, tools_server
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli

SCRIPT = Path(__file__).parent / "node" / "stream_tool_call.mjs"


def node_modules() -> Path:
    version = (ROOT / ".node-openai-version").read_text().strip()
    return ROOT / ".tools" / f"node-openai-{version}" / "node_modules"


@pytest.fixture(scope="module")
def node_openai() -> Path:
    """The pinned Node openai SDK's node_modules (with node itself on PATH)."""
    modules = node_modules()
    if shutil.which("node") is None or not (modules / "openai" / "package.json").is_file():
        pytest.fail(
            f"node and the Node openai SDK at {modules} are needed: run `make test` "
            "(its `clients` step installs the pinned SDK with npm).",
            pytrace=False,
        )
    return modules


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    with tools_server(tmp_path_factory.mktemp("node-tools"), claude_bin, fake_upstream_server) as s:
        yield s


def stream_with_node(modules: Path, server: ServerProcess, body: dict[str, object]) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        ["node", str(SCRIPT), server.base_url + "/v1", json.dumps(body)],
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict = json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[type-arg]
    return found


def test_node_sdk_assembles_a_streamed_tool_call(
    node_openai: Path, server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    body = {
        "model": "sonnet",
        "messages": [
            {"role": "user", "content": "Node: Lima? " + call("get_weather", {"city": "Lima"})}
        ],
        "tools": [WEATHER],
    }
    seen = stream_with_node(node_openai, server, body)
    assert seen["heads"] == 1  # the call's id, type and name came once, in its first chunk
    [assembled] = seen["calls"]
    assert assembled["id"].startswith("toolu_")
    assert assembled["type"] == "function"
    assert assembled["name"] == "get_weather"
    assert seen["fragments"] > 1  # the arguments streamed in pieces, as the model wrote them
    assert json.loads(assembled["arguments"]) == {"city": "Lima"}
    assert seen["text"] == ""
    assert seen["finishReasons"] == ["tool_calls"]
    assert seen["usage"]["completion_tokens"] > 0
