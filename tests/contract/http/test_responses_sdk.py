"""The Responses API with the official openai SDK against a live server over the real CLI.

The fake upstream plays the model: it echoes the prompt it gets, answers with JSON
through the CLI's StructuredOutput tool (`[[tool-use:StructuredOutput:...]]`), calls
the offered client tools (`[[call:...]]`) and answers a tool result with
`tool result seen: <result>`. Each test opens its own conversation on one server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.support.client_tools import backend_details, call, plan_of, tool_results_in, tools_server
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    with tools_server(tmp_path_factory.mktemp("responses"), claude_bin, fake_upstream_server) as s:
        yield s


def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60
    )


def test_create_retrieve_and_delete(server: ServerProcess) -> None:
    client = sdk(server)
    response = client.responses.create(
        model="sonnet", input="Hello, responses.", metadata={"ticket": "15"}
    )
    assert response.status == "completed"
    assert response.output_text == "echo: Hello, responses."
    assert response.metadata == {"ticket": "15"}
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert client.responses.retrieve(response.id) == response
    deleted = client.responses.delete(response.id)
    assert deleted is None  # the SDK reads nothing of the body
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_stream_assembles_the_text_and_the_final_response(server: ServerProcess) -> None:
    client = sdk(server)
    with client.responses.stream(model="sonnet", input="Streamed, please.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: Streamed, please."
    assert final.output_text == "echo: Streamed, please."
    assert client.responses.retrieve(final.id).output_text == final.output_text


class Person(BaseModel):
    name: str
    age: int


def test_parse_follows_the_pydantic_model(server: ServerProcess) -> None:
    answer = '[[tool-use:StructuredOutput:{"name": "Ada", "age": 36}]]'
    parsed = sdk(server).responses.parse(
        model="sonnet", input=f"Who wrote the first program? {answer}", text_format=Person
    )
    assert parsed.output_parsed == Person(name="Ada", age=36)


def test_previous_response_id_sends_only_the_new_input_to_the_cli(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    first = client.responses.create(
        model="sonnet", input="First question.", instructions="You are terse."
    )
    raw = client.responses.with_raw_response.create(
        model="sonnet", input="Second question.", previous_response_id=first.id
    )
    second = raw.parse()
    assert plan_of(server, raw.headers["x-request-id"]) == "CONTINUE"
    # The CLI was sent the new input alone (a restart would send the whole transcript).
    assert fake_upstream.message_requests[-1].user_text == "Second question."
    assert second.output_text == "echo: Second question."
    assert second.previous_response_id == first.id
    assert second.instructions == "You are terse."  # kept from the chain


def test_a_function_call_round_trip_resumes_the_same_cli_turn(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    spawned = backend_details(server)["spawned"]
    first = client.responses.create(
        model="sonnet",
        input="Paris? " + call("get_weather", {"city": "Paris"}),
        tools=[WEATHER, {"type": "web_search"}],
    )
    [function_call] = first.output
    assert function_call.type == "function_call"
    assert function_call.name == "get_weather"
    assert json.loads(function_call.arguments) == {"city": "Paris"}
    assert backend_details(server)["suspended_turns"] == 1

    result: Any = {
        "type": "function_call_output",
        "call_id": function_call.call_id,
        "output": "18C and sunny",
    }
    raw = client.responses.with_raw_response.create(
        model="sonnet", input=[result], tools=[WEATHER], previous_response_id=first.id
    )
    final = raw.parse()
    assert final.output_text == "tool result seen: 18C and sunny"
    assert plan_of(server, raw.headers["x-request-id"]) == "CONTINUE"
    details = backend_details(server)
    assert details["spawned"] == spawned + 1  # one CLI process for both requests
    assert details["suspended_turns"] == 0
    last = fake_upstream.message_requests[-1]
    assert tool_results_in(last) == {function_call.call_id: "18C and sunny"}
