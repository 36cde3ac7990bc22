"""Operations: liveness, readiness (with what the model is) and Prometheus metrics.

None of them touches the model, so they answer while the queue is full.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from omnifuse.serve import schemas as s
from omnifuse.serve.errors import RequestError
from omnifuse.serve.routers.registry import register_router
from omnifuse.serve.state import ServeState


@register_router("ops", auth=False)
def build(state: ServeState) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"model": s.ErrorResponse}})
    async def readyz():
        if state.load_error:
            raise RequestError(503, "the model failed to load")
        if not state.ready.is_set():
            raise RequestError(503, "the model is still loading")
        return {
            "status": "ready",
            "model_type": state.predictor.model_type,
            "fingerprint": state.predictor.fingerprint,
            "modalities": state.predictor.modalities,
            "index_items": len(state.index) if state.index else 0,
        }

    @router.get("/metrics", response_class=Response)
    async def metrics():
        body, ctype = state.metrics.render()
        return Response(body, media_type=ctype)

    return router
