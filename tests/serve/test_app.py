"""The HTTP API in-process (TestClient): endpoints, cache, metrics, auth, URL allow-list."""

from __future__ import annotations

import base64
import http.server
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from omnifuse import runtime
from omnifuse.serve import Limits, ServeConfig, create_app
from omnifuse.serve.index import VectorIndex

KEY = "test-key-0123456789"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def predictor(serve_model_dir):
    return runtime.load(serve_model_dir)


@pytest.fixture
def client(predictor, shapes_index):
    app = create_app(
        ServeConfig(model_dir="unused"), predictor=predictor, index=VectorIndex.load(shapes_index)
    )
    with TestClient(app) as c:
        yield c


def test_readyz_is_503_until_the_model_is_loaded(serve_model_dir):
    app = create_app(ServeConfig(model_dir=str(serve_model_dir)))
    c = TestClient(app)  # no lifespan: nothing loaded yet
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 503 and "loading" in r.json()["error"]
    assert c.post("/v1/embed", json={"texts": ["a"]}).status_code == 503
    with TestClient(app) as c:  # lifespan loads it in the background
        for _ in range(100):
            if c.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert c.get("/readyz").json()["modalities"] == ["image", "text"]


def test_embed_json_and_multipart_match_the_runtime(client, predictor, image_bytes):
    texts = ["a small red circle at the top left", "there is a cyan hexagon"]
    img = image_bytes(120)
    r = client.post("/v1/embed", json={"texts": texts, "images": [b64(img)]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dim"] == 8 and body["fingerprint"] == predictor.fingerprint
    np.testing.assert_allclose(body["text"], predictor.embed("text", texts), atol=1e-5)
    np.testing.assert_allclose(body["image"], predictor.embed("image", [img]), atol=1e-5)
    r = client.post("/v1/embed", files=[("image", ("x.png", img, "image/png"))], data={"text": texts[:1]})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["image"], body["image"], atol=1e-6)
    metrics = client.get("/metrics").text
    assert 'omnifuse_cache_hits_total{modality="image"} 1.0' in metrics  # the second request hit
    assert 'omnifuse_requests_total{method="POST",route="/v1/embed",status="200"} 2.0' in metrics
    assert "omnifuse_batch_size_bucket" in metrics and "omnifuse_queue_depth" in metrics


def test_classify_zero_shot_matches_the_runtime(client, predictor, image_bytes):
    labels = ["red circle", "blue square", "green star"]
    img = image_bytes(200)
    r = client.post("/v1/classify", json={"images": [b64(img)], "labels": labels, "top_k": 2})
    assert r.status_code == 200, r.text
    got = r.json()["results"][0]
    want = predictor.classify({"image": [img]}, labels=labels, top_k=2)[0]
    assert [x["label"] for x in got] == [x.label for x in want]
    np.testing.assert_allclose([x["score"] for x in got], [x.score for x in want], atol=1e-5)
    form = client.post(
        "/v1/classify", files=[("image", ("x.png", img, "image/png"))], data={"labels": ", ".join(labels)}
    )
    assert form.status_code == 200 and len(form.json()["results"][0]) == 3
    assert client.post("/v1/classify", json={"images": [b64(img)]}).status_code == 422  # no labels, no head
    r = client.post("/v1/classify", json={"images": [b64(img)], "texts": ["a"], "labels": labels})
    assert r.status_code == 400 and "one modality" in r.json()["error"]


def test_search_returns_index_items_and_thumbnails(client, shapes_index):
    index = VectorIndex.load(shapes_index)
    first = index.items[0]
    query = index.image_path(first["id"]).read_bytes()
    r = client.post("/v1/search", files=[("image", ("q.png", query, "image/png"))], data={"k": "3"})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert (
        len(hits) == 3 and hits[0]["id"] == first["id"] and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    )
    assert "image" not in hits[0]["metadata"] and hits[0]["metadata"]["text"]  # no server paths
    assert hits[0]["metadata"]["source"].startswith("test.jsonl:")
    thumb = client.get(hits[0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")
    r = client.post("/v1/search", json={"text": first["metadata"]["text"], "k": 5})
    assert r.status_code == 200 and len(r.json()["results"]) == 5
    assert client.get("/v1/items/..%2F..%2Fetc%2Fpasswd/thumbnail").status_code == 404
    assert client.get("/v1/items/nope/thumbnail").status_code == 404
    r = client.post("/v1/search", json={"text": "a", "image": b64(query)})
    assert r.status_code == 400 and "exactly one query" in r.json()["error"]


def test_api_key_guards_v1_routes_only(predictor, image_bytes):
    app = create_app(ServeConfig(model_dir="unused", api_key=KEY), predictor=predictor)
    with TestClient(app) as c:
        assert c.post("/v1/embed", json={"texts": ["a"]}).status_code == 401
        assert (
            c.post("/v1/embed", json={"texts": ["a"]}, headers={"X-API-Key": "wrong-key-xxxxxx"}).status_code
            == 401
        )
        assert c.post("/v1/embed", json={"texts": ["a"]}, headers={"X-API-Key": KEY}).status_code == 200
        assert (
            c.post("/v1/embed", json={"texts": ["a"]}, headers={"Authorization": f"Bearer {KEY}"}).status_code
            == 200
        )
        for path in ("/healthz", "/readyz", "/metrics", "/", "/static/app.js"):
            assert c.get(path).status_code == 200, path


def test_image_urls_only_under_an_allowed_prefix(predictor, image_bytes, tmp_path):
    (tmp_path / "img.png").write_bytes(image_bytes(50))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        closed = create_app(ServeConfig(model_dir="unused"), predictor=predictor)
        with TestClient(closed) as c:
            r = c.post("/v1/embed", json={"image_urls": [f"{base}/img.png"]})
            assert r.status_code == 400 and "--allow-url-prefix" in r.json()["error"]
        opened = create_app(
            ServeConfig(model_dir="unused", limits=Limits(allow_url_prefixes=(f"{base}/",))),
            predictor=predictor,
        )
        with TestClient(opened) as c:
            r = c.post("/v1/embed", json={"image_urls": [f"{base}/img.png"]})
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(
                r.json()["image"], predictor.embed("image", [image_bytes(50)]), atol=1e-5
            )
            assert c.post("/v1/embed", json={"image_urls": ["http://10.0.0.1/x.png"]}).status_code == 400
            assert c.post("/v1/embed", json={"image_urls": [f"{base}/missing.png"]}).status_code == 400
    finally:
        httpd.shutdown()


def test_openapi_schema_lists_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    for path in ("/v1/embed", "/v1/classify", "/v1/search", "/healthz", "/readyz", "/metrics"):
        assert path in schema["paths"], path
    content = schema["paths"]["/v1/embed"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}


class HeadPredictor:
    """A stand-in classifier with a trained head (the server only uses the Predictor interface)."""

    model_type, modalities, fingerprint, class_names = (
        "fusion_classifier",
        ["image", "text"],
        "stub",
        ["cat", "dog"],
    )

    def classify(self, inputs, labels=None, templates=None, top_k=None):
        from omnifuse.runtime import LabelScore

        assert set(inputs) == {"image", "text"} and labels is None
        return [[LabelScore("dog", 0.7), LabelScore("cat", 0.3)] for _ in inputs["text"]]


def test_classify_with_a_trained_head_batches_pairs(image_bytes):
    with TestClient(create_app(ServeConfig(model_dir="unused"), predictor=HeadPredictor())) as c:
        img = b64(image_bytes())
        r = c.post("/v1/classify", json={"texts": ["x", "y"], "images": [img, img], "top_k": 1})
        assert r.status_code == 200, r.text
        assert r.json() == {"modality": "image+text", "results": [[{"label": "dog", "score": 0.7}]] * 2}
        r = c.post("/v1/classify", json={"texts": ["x"], "images": [img, img]})
        assert r.status_code == 400 and "as many texts as images" in r.json()["error"]
        r = c.post("/v1/embed", json={"texts": ["x"]})
        assert r.status_code == 400 and "dual encoder" in r.json()["error"]
