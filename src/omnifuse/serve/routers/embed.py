"""`POST /v1/embed`: embeddings of texts, images, audio and videos (JSON or multipart)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from omnifuse.serve import schemas as s
from omnifuse.serve.config import Limits
from omnifuse.serve.inputs import ParsedRequest, load_images, load_media, parse_request
from omnifuse.serve.routers.registry import register_router
from omnifuse.serve.state import ServeState


async def images_of(parsed: ParsedRequest, limits: Limits) -> tuple[list[bytes], list[Any]]:
    """The request's images (uploads, base64 and allowed URLs) decoded: (encoded bytes, images)."""
    loaded = await load_images(parsed, limits)
    return [b for b, _ in loaded], [img for _, img in loaded]


@register_router("embed", requires="embed")
def build(state: ServeState) -> APIRouter:
    router = APIRouter(tags=["model"])
    limits = state.config.limits

    @router.post(
        "/v1/embed",
        response_model=s.EmbedResponse,
        responses=s.ERROR_RESPONSES,
        openapi_extra=s.request_body(s.EmbedRequest, s.EMBED_FORM),
    )
    async def embed(request: Request):
        """Embed texts and/or images (JSON with base64 images, or a multipart upload)."""
        parsed = await parse_request(request, s.EmbedRequest, limits, set(s.EMBED_FORM))
        out = s.EmbedResponse(dim=0, fingerprint=state.predictor.fingerprint)
        if parsed.texts:
            state.check_modality("text")
            out.text = (await state.embed(request, "text", parsed.texts, parsed.texts)).tolist()
        if parsed.images or parsed.image_urls:
            state.check_modality("image")
            contents, images = await images_of(parsed, limits)
            out.image = (await state.embed(request, "image", images, contents)).tolist()
        for modality in sorted(parsed.media):
            state.check_modality(modality)
            contents, clips = await load_media(parsed, modality, limits)
            setattr(out, modality, (await state.embed(request, modality, clips, contents)).tolist())
        out.dim = len((out.text or out.image or out.audio or out.video)[0])
        return out

    return router
