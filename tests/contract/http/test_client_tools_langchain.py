"""Client tools with LangChain's ChatOpenAI against a live server over the real CLI:
`bind_tools` and a tool loop, and `with_structured_output(method="function_calling")`,
which forces a call of the one tool it offers."""

from __future__ import annotations

from collections.abc import Iterator

import pydantic
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.support.client_tools import (
    backend_details,
    call,
    client_tools_offered,
    tool_results_in,
    tools_server,
)
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    with tools_server(tmp_path_factory.mktemp("lc-tools"), claude_bin, fake_upstream_server) as s:
        yield s


def chat(server: ServerProcess) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        model="sonnet",
        max_retries=0,
        timeout=60,
    )


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"drizzle in {city}"


def test_bind_tools_and_a_tool_loop(server: ServerProcess, fake_upstream: FakeAnthropic) -> None:
    llm = chat(server).bind_tools([get_weather])
    spawned = backend_details(server)["spawned"]
    history: list[BaseMessage] = [
        HumanMessage("LangChain: Bergen? " + call("get_weather", {"city": "Bergen"}))
    ]
    reply = llm.invoke(history)
    assert isinstance(reply, AIMessage)
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    [tool_call] = reply.tool_calls
    assert tool_call["name"] == "get_weather"
    assert tool_call["args"] == {"city": "Bergen"}
    history.append(reply)
    answer = get_weather.invoke(tool_call)  # a ToolMessage answering the call's id
    assert isinstance(answer, ToolMessage)
    history.append(answer)
    final = llm.invoke(history)
    assert isinstance(final, AIMessage)
    assert final.tool_calls == []
    assert final.content == "tool result seen: drizzle in Bergen"
    assert backend_details(server)["spawned"] == spawned + 1  # the same CLI turn resumed


def test_streamed_tool_call_and_its_result(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    """Streaming: LangChain assembles the call from its chunks and sends it back as it
    assembled it (its own spelling of the arguments)."""
    llm = chat(server).bind_tools([get_weather])
    spawned = backend_details(server)["spawned"]
    history: list[BaseMessage] = [
        HumanMessage("LangChain streamed: Turku? " + call("get_weather", {"city": "Turku"}))
    ]
    chunks = list(llm.stream(history))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert isinstance(whole, AIMessageChunk)
    [tool_call] = whole.tool_calls
    assert tool_call["name"] == "get_weather"
    assert tool_call["args"] == {"city": "Turku"}
    assert whole.response_metadata["finish_reason"] == "tool_calls"
    history += [whole, get_weather.invoke(tool_call)]
    text = "".join(str(chunk.content) for chunk in llm.stream(history))
    assert text == "tool result seen: drizzle in Turku"
    assert list(tool_results_in(fake_upstream.message_requests[-1])) == [tool_call["id"]]
    assert backend_details(server)["spawned"] == spawned + 1  # the same CLI turn resumed


class Forecast(pydantic.BaseModel):
    """A forecast for one city."""

    city: str
    degrees: int


def test_structured_output_through_a_forced_function(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    structured = chat(server).with_structured_output(Forecast, method="function_calling")
    forecast = structured.invoke("Structured: a forecast for Tromso, please.")
    assert isinstance(forecast, Forecast)
    assert isinstance(forecast.city, str)
    # The forced tool is the only client tool the model was offered.
    assert client_tools_offered(fake_upstream.message_requests[0]) == ["Forecast"]
