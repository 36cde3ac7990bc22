"""Audio and video towers export to ONNX with the same parity check as text and image."""

import json

import pytest
import torch

from omnifuse.data.audio import AudioProcessor
from omnifuse.data.processors import ImageSettings, Processor, TextProcessor, build_word_tokenizer
from omnifuse.data.video import VideoProcessor, VideoSettings
from omnifuse.deploy.export import ExportOptions, export_onnx
from omnifuse.models.dual_encoder import DualEncoderConfig
from omnifuse.models.factory import build_model
from omnifuse.utils.config import from_dict

TINY = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1}


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_audio_and_video_towers_export_with_parity(modality, tmp_path):
    torch.manual_seed(0)
    text = TextProcessor(build_word_tokenizer(["a red circle moves up", "a blue square"]), max_length=12)
    if modality == "audio":
        proc = AudioProcessor(sample_rate=8000, n_mels=16, max_seconds=1.6)
        tower = {"arch": "ast", "pooling": "mean", "overrides": TINY}
    else:
        proc = VideoProcessor(VideoSettings(num_frames=3, image=ImageSettings(size=16)))
        tower = {"arch": "frame_vit", "temporal": "transformer", "overrides": {**TINY, "patch_size": 8}}
    processor = Processor({"text": text, modality: proc})
    cfg = from_dict(
        DualEncoderConfig,
        {"embed_dim": 8, "encoders": {"text": {"arch": "bert", "overrides": TINY}, modality: tower}},
    )
    model = build_model(cfg, processor).eval()
    report = export_onnx(model, tmp_path / "out", ExportOptions())
    graphs = {p["graph"]: p for p in report.parity}
    assert set(graphs) == {"text", modality}
    assert graphs[modality]["passed"] and graphs[modality]["mean_cosine"] >= 0.9999
    assert graphs[modality]["max_abs_diff"] <= 1e-4
    saved = json.loads((tmp_path / "out" / "onnx" / "export_report.json").read_text())
    assert any(p["graph"] == modality for p in saved["parity"])
