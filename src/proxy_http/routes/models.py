"""The model list: `GET /v1/models` and `GET /v1/models/{id}` (OpenAI's shape)."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from proxy_core import ChatService, model_not_found
from proxy_http.routing import error_specs
from proxy_http.wire import Model, ModelList

# Model ids have no creation date of their own; a fixed one keeps responses stable.
MODEL_CREATED = 1_735_689_600


@get("/v1/models", summary="List models")
async def list_models(service: NamedDependency[ChatService]) -> ModelList:
    return ModelList(
        data=[Model(id=entry.id, created=MODEL_CREATED) for entry in service.catalog.list()]
    )


@get("/v1/models/{model_id:str}", summary="Retrieve a model", responses=error_specs(404))
async def get_model(model_id: FromPath[str], service: NamedDependency[ChatService]) -> Model:
    entry = service.catalog.get(model_id)
    if entry is None:
        raise model_not_found(model_id)
    return Model(id=entry.id, created=MODEL_CREATED)


ROUTES: tuple[ControllerRouterHandler, ...] = (list_models, get_model)
