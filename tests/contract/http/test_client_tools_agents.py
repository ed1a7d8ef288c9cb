"""Client tools with the OpenAI Agents SDK (`openai-agents`): an Agent with a function
tool over its chat-completions model, run against a live server over the real CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

from tests.support.client_tools import backend_details, call, tool_results_in, tools_server
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    with tools_server(
        tmp_path_factory.mktemp("agents-tools"), claude_bin, fake_upstream_server
    ) as s:
        yield s


CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"gusty in {city}"


def forecaster(server: ServerProcess) -> Agent:
    set_tracing_disabled(True)  # the SDK would otherwise export traces to OpenAI
    client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    return Agent(
        name="forecaster",
        instructions="Answer with the weather tool.",
        tools=[get_weather],
        model=OpenAIChatCompletionsModel(model="sonnet", openai_client=client),
    )


def test_agent_runs_its_function_tool_and_answers_from_the_result(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    agent = forecaster(server)
    spawned = backend_details(server)["spawned"]
    CALLS.clear()
    prompt = "Agents: Reykjavik? " + call("get_weather", {"city": "Reykjavik"})
    result = asyncio.run(asyncio.wait_for(Runner.run(agent, prompt), timeout=90))
    assert CALLS == ["Reykjavik"]
    assert result.final_output == "tool result seen: gusty in Reykjavik"
    assert list(tool_results_in(fake_upstream.message_requests[-1]).values()) == [
        "gusty in Reykjavik"
    ]
    assert backend_details(server)["spawned"] == spawned + 1  # the same CLI turn resumed


def test_streamed_run_calls_the_tool_and_streams_the_answer(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    agent = forecaster(server)
    spawned = backend_details(server)["spawned"]
    CALLS.clear()

    async def run() -> tuple[str, list[str]]:
        streamed = Runner.run_streamed(
            agent, "Agents streamed: Tallinn? " + call("get_weather", {"city": "Tallinn"})
        )
        kinds = [event.type async for event in streamed.stream_events()]
        return str(streamed.final_output), kinds

    final, kinds = asyncio.run(asyncio.wait_for(run(), timeout=90))
    assert CALLS == ["Tallinn"]
    assert final == "tool result seen: gusty in Tallinn"
    assert "raw_response_event" in kinds
    assert backend_details(server)["spawned"] == spawned + 1  # the same CLI turn resumed
