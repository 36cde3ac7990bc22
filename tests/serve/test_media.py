"""Audio (and video) through /v1/embed and /v1/classify, with size/duration limits and 4xx on bad files."""

import base64
import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from omnifuse import runtime
from omnifuse.data.audio import AudioProcessor
from omnifuse.data.processors import Processor, TextProcessor, build_word_tokenizer
from omnifuse.models.dual_encoder import DualEncoderConfig
from omnifuse.models.factory import build_model
from omnifuse.serve.app import create_app
from omnifuse.serve.config import Limits, ServeConfig
from omnifuse.utils.config import from_dict

TINY = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1}


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    torch.manual_seed(0)
    text = TextProcessor(build_word_tokenizer(["a red circle", "a blue square"]), max_length=12)
    processor = Processor(
        {"text": text, "audio": AudioProcessor(sample_rate=8000, n_mels=16, max_seconds=1.6)}
    )
    cfg = from_dict(
        DualEncoderConfig,
        {
            "embed_dim": 8,
            "encoders": {
                "text": {"arch": "bert", "overrides": TINY},
                "audio": {"arch": "ast", "overrides": TINY},
            },
        },
    )
    model_dir = tmp_path_factory.mktemp("audio-model")
    build_model(cfg, processor).eval().save_pretrained(model_dir)
    predictor = runtime.load(model_dir)
    app = create_app(
        ServeConfig(model_dir="unused", limits=Limits(max_media_seconds=2.0)), predictor=predictor
    )
    with TestClient(app) as c:
        yield c


def test_embed_and_zero_shot_audio(client):
    clip = base64.b64encode(wav_bytes(1.0)).decode()
    r = client.post("/v1/embed", json={"audios": [clip, clip], "texts": ["a red circle"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["audio"]) == 2 and len(body["audio"][0]) == body["dim"] == 8
    np.testing.assert_allclose(body["audio"][0], body["audio"][1], atol=1e-6)
    r = client.post("/v1/embed", files={"audio": ("a.wav", wav_bytes(0.5), "audio/wav")})
    assert r.status_code == 200 and len(r.json()["audio"]) == 1
    r = client.post("/v1/classify", json={"audios": [clip], "labels": ["red circle", "blue square"]})
    assert r.status_code == 200 and r.json()["modality"] == "audio"
    assert abs(sum(x["score"] for x in r.json()["results"][0]) - 1) < 1e-4


@pytest.mark.parametrize(
    "payload, status, message",
    [
        ({"audios": [base64.b64encode(b"not audio at all").decode()]}, 400, "cannot decode audio"),
        ({"audios": [""]}, 400, "empty file"),
        ({"audios": [base64.b64encode(wav_bytes(3.0)).decode()]}, 413, "the limit is 2 s"),
        ({"videos": [base64.b64encode(b"x" * 10).decode()]}, 400, "cannot embed video"),
    ],
)
def test_bad_media_is_4xx_and_server_stays_up(client, payload, status, message):
    r = client.post("/v1/embed", json=payload)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert client.get("/healthz").status_code == 200


def test_embed_video(tmp_path):
    from omnifuse.data.processors import ImageSettings
    from omnifuse.data.synth.motion import write_mp4
    from omnifuse.data.video import VideoProcessor, VideoSettings

    torch.manual_seed(0)
    text = TextProcessor(build_word_tokenizer(["a red circle moves up"]), max_length=12)
    video = VideoProcessor(VideoSettings(num_frames=3, image=ImageSettings(size=16)))
    tower = {"arch": "frame_vit", "overrides": {**TINY, "patch_size": 8}}
    cfg = from_dict(
        DualEncoderConfig,
        {"embed_dim": 8, "encoders": {"text": {"arch": "bert", "overrides": TINY}, "video": tower}},
    )
    build_model(cfg, Processor({"text": text, "video": video})).eval().save_pretrained(tmp_path / "m")
    frames = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    write_mp4(frames, tmp_path / "clip.mp4")
    app = create_app(ServeConfig(model_dir="unused"), predictor=runtime.load(tmp_path / "m"))
    with TestClient(app) as c:
        r = c.post(
            "/v1/embed", files={"video": ("clip.mp4", (tmp_path / "clip.mp4").read_bytes(), "video/mp4")}
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["video"]) == 1 and r.json()["dim"] == 8
        assert c.post("/v1/embed", json={"audios": [base64.b64encode(b"RIFF").decode()]}).status_code == 400
