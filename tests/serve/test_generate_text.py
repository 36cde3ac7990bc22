"""`/v1/caption` and `/v1/answer`: JSON, server-sent-event streaming, limits and bad input."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from omnifuse import runtime
from omnifuse.serve import ServeConfig, create_app
from omnifuse.serve.config import Limits


@pytest.fixture(scope="module")
def client(captioner_dir):
    limits = Limits(max_new_tokens=200)
    app = create_app(
        ServeConfig(model_dir="unused", limits=limits), predictor=runtime.load(str(captioner_dir))
    )  # a str path, as the CLI gives
    with TestClient(app) as c:
        yield c


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_caption_and_answer_json(client, image_bytes):
    resp = client.post(
        "/v1/caption", json={"images": [b64(image_bytes(10)), b64(image_bytes(200))], "max_new_tokens": 5}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["results"]) == 2 and body["tokens"] > 0
    assert all(r["finish_reason"] in ("eos", "length", "stop") for r in body["results"])
    resp = client.post(
        "/v1/answer", json={"image": b64(image_bytes()), "question": "what color is the circle?"}
    )
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["results"]) == 1
    beam = client.post(
        "/v1/caption",
        json={"images": [b64(image_bytes())], "strategy": "beam", "num_beams": 2, "max_new_tokens": 3},
    )
    assert beam.status_code == 200, beam.text


def test_streaming_sends_tokens_then_the_result(client, image_bytes):
    payload = {"images": [b64(image_bytes(30))], "max_new_tokens": 6, "stream": True}
    with client.stream("POST", "/v1/caption", json=payload) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        got = events(resp.read().decode())
    kinds = [k for k, _ in got]
    assert kinds[-1] == "done" and set(kinds[:-1]) <= {"token"} and len(kinds) >= 2
    pieces = "".join(d["text"] for k, d in got if k == "token")
    assert pieces.strip() == got[-1][1]["results"][0]["text"]
    plain = client.post("/v1/caption", json={**payload, "stream": False}).json()
    assert plain["results"][0]["text"] == got[-1][1]["results"][0]["text"]


@pytest.mark.parametrize(
    "path, payload, status, message",
    [
        ("/v1/caption", {"images": ["x"], "max_new_tokens": 201}, 422, "above the server's limit of 200"),
        ("/v1/caption", {"images": ["IMG"], "max_new_tokens": 150}, 422, "context"),
        ("/v1/caption", {"images": ["IMG"], "max_new_tokens": 150, "stream": True}, 422, "context"),
        ("/v1/caption", {"images": []}, 400, "no images"),
        ("/v1/caption", {"images": ["IMG", "IMG"], "stream": True}, 400, "one image"),
        ("/v1/caption", {"images": ["not base64!"]}, 400, "base64"),
        ("/v1/caption", {"images": ["IMG"], "strategy": "nucleus"}, 422, "strategy"),
        ("/v1/caption", {"images": ["IMG"], "prompt": "hi"}, 422, "prompt"),
        ("/v1/answer", {"image": "IMG", "question": ""}, 422, "question"),
        ("/v1/answer", {"image": "IMG"}, 422, "question"),
    ],
)
def test_bad_input_is_4xx(client, image_bytes, path, payload, status, message):
    payload = json.loads(json.dumps(payload).replace('"IMG"', json.dumps(b64(image_bytes()))))
    resp = client.post(path, json=payload)
    assert resp.status_code == status, resp.text
    assert message in resp.text


def test_a_model_that_cannot_generate_text_gets_400(serve_model_dir, image_bytes):
    app = create_app(ServeConfig(model_dir="unused"), predictor=runtime.load(serve_model_dir))
    with TestClient(app) as c:
        resp = c.post("/v1/caption", json={"images": [b64(image_bytes())]})
    assert resp.status_code == 400 and "generate_text" in resp.text
