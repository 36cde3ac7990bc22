"""The server's routers, registered by a decorator; the app includes every registered router.

How to add an endpoint (e.g. `/v1/caption`): write a module `omnifuse/serve/routers/<name>.py`
with a function that takes the shared `ServeState` and returns a FastAPI `APIRouter`, decorate
it, and import the module in `omnifuse/serve/routers/__init__.py`:

    @register_router("caption", requires=("generate_text",))
    def build(state: ServeState) -> APIRouter:
        router = APIRouter(tags=["model"])

        @router.post("/v1/caption")
        async def caption(request: Request): ...

        return router

`requires` names capabilities of the model's spec (`omnifuse.models.registry.CAPABILITIES`):
every route of the router first checks that the model is loaded (503 otherwise) and that it
offers at least one of them (400 naming what it offers otherwise). Routes are mounted whatever
the model, because the model loads in the background after the app is built, and so the OpenAPI
schema is the same for every model. `auth=False` leaves a router public (health, metrics, the
page); every other route needs the API key when the server has one.

This module imports only FastAPI's router type; the routers import it, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import APIRouter

    from omnifuse.serve.state import ServeState


@dataclass(frozen=True)
class ServeRouter:
    """One group of endpoints: a name, a builder, the capabilities it needs, whether it is public."""

    name: str
    build: Callable[[ServeState], APIRouter]
    """`build(state)` -> an APIRouter whose handlers use `state` (predictor, batcher, cache, ...)."""
    requires: tuple[str, ...] = ()
    """The model must offer at least one of these capabilities; empty: no model needed."""
    auth: bool = True
    """False: public (no API key), e.g. health checks and the page."""


ROUTERS: dict[str, ServeRouter] = {}


def register_router(
    name: str, *, requires: tuple[str, ...] | str = (), auth: bool = True
) -> Callable[[Callable[[ServeState], APIRouter]], Callable[[ServeState], APIRouter]]:
    """Decorator on a router builder `build(state) -> APIRouter`: the app includes it."""
    needs = (requires,) if isinstance(requires, str) else tuple(requires)

    def decorate(build: Callable[[ServeState], APIRouter]) -> Callable[[ServeState], APIRouter]:
        if name in ROUTERS and ROUTERS[name].build is not build:
            raise ValueError(f"a router named '{name}' is already registered")
        ROUTERS[name] = ServeRouter(name, build, needs, auth)
        return build

    return decorate
