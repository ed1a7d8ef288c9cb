"""The model list speaks Anthropic's Models API to Anthropic clients (those that send
`anthropic-version`), page by page, and stays OpenAI's for everyone else."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from proxy_core import ModelCatalog
from tests.support.server import LiveServer, live_fake_server

IDS = [entry.id for entry in ModelCatalog().list()]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with live_fake_server() as (live, _):
        yield live


def test_the_anthropic_sdk_lists_every_model_page_by_page_and_retrieves_one(
    server: LiveServer,
) -> None:
    ids = IDS
    client = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0)
    first = client.models.list(limit=3)
    listed = [model.id for model in client.models.list(limit=3)]  # follows the pages
    one = client.models.retrieve("sonnet")
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused") as oai:
        openai_ids = [model.id for model in oai.models.list()]
    assert [model.id for model in first.data] == ids[:3]
    assert first.has_more is (len(ids) > 3)
    assert listed == ids
    assert (one.id, one.type) == ("sonnet", "model")
    assert openai_ids == ids  # OpenAI clients still get OpenAI's shape


def test_a_page_before_an_id_and_an_unknown_anchor(server: LiveServer) -> None:
    ids = IDS
    headers = {"anthropic-version": "2023-06-01"}
    before = httpx.get(
        server.base_url + "/v1/models",
        params={"before_id": ids[3], "limit": 2},
        headers=headers,
    ).json()
    unknown = httpx.get(
        server.base_url + "/v1/models", params={"after_id": "nope"}, headers=headers
    )
    assert [model["id"] for model in before["data"]] == ids[1:3]
    assert (before["has_more"], before["first_id"], before["last_id"]) == (True, ids[1], ids[2])
    assert unknown.status_code == 400
    assert "after_id" in unknown.json()["error"]["message"]
