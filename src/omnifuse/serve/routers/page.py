"""The browser page at `/` and its static files (it calls the JSON API like any client)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from omnifuse.serve.routers.registry import register_router
from omnifuse.serve.state import ServeState

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@register_router("page", auth=False)
def build(state: ServeState) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html")

    router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return router
