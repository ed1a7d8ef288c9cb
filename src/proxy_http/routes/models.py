"""The model list: `GET /v1/models` and `GET /v1/models/{id}`.

OpenAI's shape by default; Anthropic's (`type: "model"`, `display_name`, `created_at`,
and the list's `has_more` / `first_id` / `last_id` pages) for a request that carries the
`anthropic-version` header, as every Anthropic SDK sends and no OpenAI client does.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.types import ControllerRouterHandler

from proxy_core import ChatService, ModelEntry, model_not_found
from proxy_http.routing import error_specs
from proxy_http.wire import AnthropicModel, AnthropicModelList, Model, ModelList, iso_time

# Model ids have no creation date of their own; a fixed one keeps responses stable.
MODEL_CREATED = 1_735_689_600

_VERSION = HeaderParameter(
    name="anthropic-version",
    required=False,
    description="Present (any value): the answer takes the Anthropic Models API's shape.",
)


def _openai(entry: ModelEntry) -> Model:
    return Model(id=entry.id, created=MODEL_CREATED)


def _anthropic(entry: ModelEntry) -> AnthropicModel:
    return AnthropicModel(id=entry.id, display_name=entry.id, created_at=iso_time(MODEL_CREATED))


def _page(
    entries: list[ModelEntry], limit: int, after_id: str | None, before_id: str | None
) -> AnthropicModelList:
    """One page of the list as Anthropic pages it: `limit` entries after `after_id`
    (or the last `limit` before `before_id`), in catalog order."""
    ids = [entry.id for entry in entries]
    start, end = 0, len(entries)
    for name, anchor in (("after_id", after_id), ("before_id", before_id)):
        if anchor is not None and anchor not in ids:
            raise ValidationException(f"{name}: no model '{anchor[:100]}' in the list.")
    if after_id is not None:
        start = ids.index(after_id) + 1
    if before_id is not None:
        end = ids.index(before_id)
        start = max(start, end - limit)
    page = entries[start : min(end, start + limit)]
    return AnthropicModelList(
        data=[_anthropic(entry) for entry in page],
        has_more=start + len(page) < end or (before_id is not None and start > 0),
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
    )


@get(
    "/v1/models",
    summary="List models",
    description=(
        "OpenAI's list; with an `anthropic-version` header, the Anthropic Models API's "
        "page (`limit`, `after_id`, `before_id` apply then)."
    ),
    responses={
        200: ResponseSpec(data_container=ModelList, description="The models."),
        **error_specs(400),
    },
)
async def list_models(
    service: NamedDependency[ChatService],
    anthropic_version: Annotated[str | None, _VERSION] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Page size.")] = 20,
    after_id: Annotated[str | None, QueryParameter(description="Page after this id.")] = None,
    before_id: Annotated[str | None, QueryParameter(description="Page before this id.")] = None,
) -> Response[Any]:
    entries = service.catalog.list()
    if anthropic_version is not None:
        return Response(_page(entries, limit, after_id, before_id))
    return Response(ModelList(data=[_openai(entry) for entry in entries]))


@get("/v1/models/{model_id:str}", summary="Retrieve a model", responses=error_specs(404))
async def get_model(
    model_id: FromPath[str],
    service: NamedDependency[ChatService],
    anthropic_version: Annotated[str | None, _VERSION] = None,
) -> Response[Any]:
    entry = service.catalog.get(model_id)
    if entry is None:
        raise model_not_found(model_id)
    if anthropic_version is not None:
        return Response(_anthropic(entry))
    return Response(_openai(entry))


ROUTES: tuple[ControllerRouterHandler, ...] = (list_models, get_model)
