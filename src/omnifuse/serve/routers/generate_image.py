"""`POST /v1/generate/image`: images from a text prompt (models whose spec can `generate_image`).

JSON in; out either JSON with one base64 PNG per image (`format: base64`) or one PNG grid
(`format: png`). Limits, each a 4xx: `n` above `limits.max_images` (413), a guidance scale
above `limits.max_guidance_scale` (422), sampling past `limits.max_generate_s` (408). One
generation runs at a time (it uses every thread); others wait their turn.
"""

from __future__ import annotations

import asyncio
import base64
import io

from fastapi import APIRouter, Request
from fastapi.responses import Response

from omnifuse.serve import schemas as s
from omnifuse.serve.errors import RequestError
from omnifuse.serve.inputs import _json
from omnifuse.serve.limits import check_texts
from omnifuse.serve.routers.registry import register_router
from omnifuse.serve.state import ServeState


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@register_router("generate_image", requires=("generate_image",))
def build(state: ServeState) -> APIRouter:
    router = APIRouter(tags=["model"])
    limits = state.config.limits
    lock = asyncio.Lock()

    @router.post(
        "/v1/generate/image",
        response_model=s.GenerateImageResponse,
        responses={**s.ERROR_RESPONSES, 200: {"content": {"image/png": {}}}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": s.GenerateImageRequest.model_json_schema()}},
            }
        },
    )
    async def generate_image(request: Request):
        """Draw `n` images for `prompt` (sampling controls, guidance and seed as in the CLI)."""
        from omnifuse.generation import GenerationError, GenerationSettings
        from omnifuse.models.text_to_image import GenerationTimeout, image_grid

        body = await _json(request, s.GenerateImageRequest)
        check_texts([body.prompt], limits, "prompt")
        if body.n > limits.max_images:
            raise RequestError(
                413, f"n={body.n} is above the limit of {limits.max_images} images per request"
            )
        if body.guidance_scale > limits.max_guidance_scale:
            raise RequestError(
                422,
                f"guidance_scale={body.guidance_scale:g} is above the limit of {limits.max_guidance_scale:g}",
            )
        try:
            settings = GenerationSettings(
                strategy="sample",
                temperature=body.temperature,
                top_k=body.top_k,
                top_p=body.top_p,
                seed=body.seed,
            )
            async with lock:
                out = await asyncio.to_thread(
                    state.predictor.generate_images,
                    [body.prompt],
                    n=body.n,
                    settings=settings,
                    guidance_scale=body.guidance_scale,
                    max_time=limits.max_generate_s,
                )
        except GenerationTimeout as err:
            raise RequestError(408, str(err)) from None
        except GenerationError as err:
            raise RequestError(422, str(err)) from None
        if body.format == "png":
            return Response(_png(image_grid(out.images, columns=min(body.n, 4))), media_type="image/png")
        w, h = out.images[0].size
        images = [base64.b64encode(_png(im)).decode("ascii") for im in out.images]
        return s.GenerateImageResponse(prompt=body.prompt, images=images, width=w, height=h, seed=body.seed)

    return router
