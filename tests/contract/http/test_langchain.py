"""LangChain's ChatOpenAI, unchanged, against the live server (over the FakeRunner).

What LangChain users reach for: invoke and stream with usage, async, a continued
conversation, structured output (its default json_schema method and json_mode),
stop sequences, reasoning effort, and errors as OpenAI's exceptions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import openai
import pydantic
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from proxy_core import Effort, Event, FailureReason, TurnPlan

from .conftest import MakeServer, fail, reply


def chat(base_url: str, **options: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=base_url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        model="sonnet",
        max_retries=0,
        timeout=30,
        **options,  # type: ignore[arg-type]
    )


def test_invoke_returns_the_reply_with_usage_and_finish_reason(make_server: MakeServer) -> None:
    server, _, runner = make_server(reply("Paris", "."))
    answer = chat(server.base_url).invoke([SystemMessage("Be brief."), HumanMessage("Capital?")])
    assert answer.content == "Paris."
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == 15  # 7 in + 5 cached + 3 out
    assert answer.usage_metadata["input_token_details"].get("cache_read") == 5
    assert runner.plans[0].system == "Be brief."


def test_stream_yields_the_pieces_and_usage_at_the_end(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("one ", "two"))
    chunks = list(chat(server.base_url, stream_usage=True).stream("count"))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert isinstance(whole, AIMessageChunk)
    assert whole.content == "one two"
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] == 3


def test_async_invoke_continues_a_conversation(make_server: MakeServer) -> None:
    server, _, runner = make_server()
    llm = chat(server.base_url, default_headers={"X-Session-Id": "lc-conversation"})

    async def conversation() -> str:
        first = await llm.ainvoke([HumanMessage("one")])
        history = [HumanMessage("one"), AIMessage(str(first.content)), HumanMessage("two")]
        return str((await llm.ainvoke(history)).content)

    assert asyncio.run(conversation()) == "echo: two"
    assert [p.kind.value for p in runner.plans] == ["NEW", "CONTINUE"]


class Person(pydantic.BaseModel):
    name: str
    age: int


def person(plan: TurnPlan) -> Sequence[Event]:
    """The JSON a structured turn ends with (the schema is checked on the way)."""
    assert plan.json_schema is not None
    assert set(json.loads(plan.json_schema)["properties"]) == {"name", "age"}
    return reply('{"name": "Ada", "age": 36}')(plan)


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_structured_output_parses_into_the_model(make_server: MakeServer, method: str) -> None:
    def script(plan: TurnPlan) -> Sequence[Event]:
        if method == "json_mode":  # any object: LangChain checks the shape itself
            assert plan.json_schema == '{"type":"object"}'
            return reply('{"name": "Ada", "age": 36}')(plan)
        return person(plan)

    server, _, _ = make_server(script)
    structured = chat(server.base_url).with_structured_output(Person, method=method)  # type: ignore[arg-type]
    assert structured.invoke("Who wrote the first program? Answer in JSON.") == Person(
        name="Ada", age=36
    )


def test_stop_sequences_bound_with_bind_cut_the_reply(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("Action: look", "\nObservation: invented"))
    answer = chat(server.base_url).bind(stop=["\nObservation:"]).invoke("go")
    assert answer.content == "Action: look"


def test_reasoning_effort_reaches_the_plan(make_server: MakeServer) -> None:
    server, _, runner = make_server()
    chat(server.base_url, reasoning_effort="high").invoke("think hard")
    assert runner.plans[0].effort is Effort.HIGH


def test_errors_surface_as_openai_exceptions(make_server: MakeServer) -> None:
    server, _, _ = make_server(fail(FailureReason.OVERLOADED, "Overloaded; retry soon."))
    with pytest.raises(openai.InternalServerError) as caught:
        chat(server.base_url).invoke("hi")
    assert caught.value.status_code == 503
