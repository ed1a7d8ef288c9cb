"""Client tools with instructor in TOOLS mode: it forces a call of one function named
after the model and validates its arguments, against a live server over the real CLI."""

from __future__ import annotations

from collections.abc import Iterator

import instructor
import openai
import pydantic
import pytest

from tests.support.client_tools import client_tools_offered, tools_server
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    with tools_server(
        tmp_path_factory.mktemp("instr-tools"), claude_bin, fake_upstream_server
    ) as s:
        yield s


class Person(pydantic.BaseModel):
    """A person named in the text."""

    name: str
    age: int


def test_tools_mode_extracts_a_model(server: ServerProcess, fake_upstream: FakeAnthropic) -> None:
    client = instructor.from_openai(
        openai.OpenAI(
            base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60
        ),
        mode=instructor.Mode.TOOLS,
    )
    person = client.chat.completions.create(
        model="sonnet",
        response_model=Person,
        max_retries=0,  # one request: the forced call must come the first time
        messages=[{"role": "user", "content": "Instructor: Ada Lovelace was 36."}],
    )
    assert isinstance(person, Person)
    assert isinstance(person.age, int)
    assert client_tools_offered(fake_upstream.message_requests[0]) == ["Person"]
