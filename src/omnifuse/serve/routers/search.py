"""`POST /v1/search` over the loaded vector index, and `GET /v1/items/{id}/thumbnail`."""

from __future__ import annotations

import io
from pathlib import Path

import fastapi
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from omnifuse.serve import schemas as s
from omnifuse.serve.errors import RequestError
from omnifuse.serve.inputs import parse_request
from omnifuse.serve.limits import open_image
from omnifuse.serve.routers.embed import images_of
from omnifuse.serve.routers.registry import register_router
from omnifuse.serve.state import ServeState

THUMBNAIL_MAX = 512


@register_router("search", requires="embed")
def build(state: ServeState) -> APIRouter:
    router = APIRouter(tags=["model"])
    limits = state.config.limits

    @router.post(
        "/v1/search",
        response_model=s.SearchResponse,
        responses=s.ERROR_RESPONSES,
        openapi_extra=s.request_body(s.SearchRequest, s.SEARCH_FORM),
    )
    async def search(request: Request):
        """The k nearest index items to one text or image query."""
        if state.index is None:
            raise RequestError(404, "no index is loaded; start the server with --index DIR")
        parsed = await parse_request(request, s.SearchRequest, limits, set(s.SEARCH_FORM))
        if parsed.n_items != 1:
            raise RequestError(400, f"search takes exactly one query (text or image), got {parsed.n_items}")
        if parsed.k > limits.max_k:
            raise RequestError(413, f"k={parsed.k} is over the limit of {limits.max_k}")
        if parsed.texts:
            state.check_modality("text")
            modality, query = "text", await state.embed(request, "text", parsed.texts, parsed.texts)
        else:
            state.check_modality("image")
            contents, images = await images_of(parsed, limits)
            modality, query = "image", await state.embed(request, "image", images, contents)
        (hits,) = await run_in_threadpool(state.index.search, query, parsed.k)
        results = []
        for hit in hits:
            meta = dict(hit.metadata)
            image = meta.pop("image", None)  # a server path: replaced by the thumbnail URL
            if isinstance(image, str):
                meta["image_name"] = Path(image).name
            thumb = f"/v1/items/{hit.id}/thumbnail" if image else None
            results.append(s.SearchHitOut(id=hit.id, score=hit.score, metadata=meta, thumbnail=thumb))
        return s.SearchResponse(modality=modality, results=results)

    @router.get(
        "/v1/items/{item_id}/thumbnail",
        response_class=Response,
        responses={**s.ERROR_RESPONSES, 200: {"content": {"image/png": {}}}},
    )
    async def thumbnail(item_id: str, size: int = fastapi.Query(128, ge=8, le=THUMBNAIL_MAX)):
        """A PNG thumbnail of an index item's image (only files registered in the index)."""
        path = state.index.image_path(item_id) if state.index is not None else None
        if path is None:
            raise RequestError(404, f"no image for item {item_id[:100]!r}")

        def render() -> bytes:
            img = open_image(path.read_bytes(), limits, f"item {item_id}")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            return buf.getvalue()

        return Response(
            await run_in_threadpool(render),
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    return router
