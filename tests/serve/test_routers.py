"""The server's routers: registered with the capability they need, each usable alone, and a new
router added through the registry is gated by the model's capabilities."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from omnifuse.serve import ServeConfig, create_app
from omnifuse.serve.app import include_routers, install_error_handlers
from omnifuse.serve.routers import ROUTERS, ServeRouter
from omnifuse.serve.state import ServeState


class TextEmbedder:
    """A stand-in dual encoder over text only: the embedding of a text is one-hot on its length."""

    model_type, modalities, fingerprint, class_names = "dual_encoder", ["text"], "stub", None

    def embed(self, modality, items):
        out = np.zeros((len(items), 4), np.float32)
        out[np.arange(len(items)), [len(t) % 4 for t in items]] = 1.0
        return out


def test_builtin_routers_are_registered_with_what_they_need():
    assert {"ops", "page", "embed", "classify", "search"} <= set(ROUTERS)
    assert ROUTERS["embed"].requires == ("embed",) and ROUTERS["search"].requires == ("embed",)
    assert set(ROUTERS["classify"].requires) == {"zero_shot", "classify"}
    assert not ROUTERS["ops"].requires and not ROUTERS["ops"].auth and not ROUTERS["page"].auth


def test_one_router_mounted_alone_on_a_bare_app():
    state = ServeState(ServeConfig(model_dir="unused"), predictor=TextEmbedder())
    state.ready.set()
    app = FastAPI()
    install_error_handlers(app)
    include_routers(app, state, [ROUTERS["embed"]])
    state.batcher.start()
    try:
        with TestClient(app) as client:
            r = client.post("/v1/embed", json={"texts": ["ab", "abc"]})
            assert r.status_code == 200, r.text
            assert r.json()["text"] == [[0, 0, 1, 0], [0, 0, 0, 1]] and r.json()["dim"] == 4
            assert client.post("/v1/search", json={"text": "a"}).status_code == 404  # not mounted
            r = client.post("/v1/embed", json={"images": ["AAAA"]})
            assert r.status_code == 400 and "cannot embed image" in r.json()["error"]
    finally:
        state.batcher.close(5)


def _caption_router() -> ServeRouter:
    def build(state: ServeState) -> APIRouter:
        router = APIRouter()

        @router.post("/v1/caption")
        async def caption() -> dict[str, str]:
            return {"caption": "never reached by a dual encoder"}

        return router

    return ServeRouter("caption", build, requires=("generate_text",))


def test_a_router_the_model_cannot_serve_answers_400_naming_what_it_offers():
    routers = [ROUTERS["ops"], ROUTERS["embed"], _caption_router()]
    config = ServeConfig(model_dir="unused", api_key="k" * 20)
    with TestClient(create_app(config, predictor=TextEmbedder(), routers=routers)) as client:
        assert client.post("/v1/caption").status_code == 401  # the API key comes first
        r = client.post("/v1/caption", headers={"X-API-Key": "k" * 20})
        assert r.status_code == 400
        message = r.json()["error"]
        assert "'generate_text'" in message and "dual_encoder" in message
        assert "embed" in message and "zero_shot" in message  # what this model offers
        assert client.get("/readyz").status_code == 200
        assert "/v1/caption" in client.get("/openapi.json").json()["paths"]
