"""FusionClassifier and MultiTaskModel: losses, missing modalities, artifacts, build-time errors."""

import pytest
import torch

from omnifuse.data.processors import ImageProcessor, Processor, TextProcessor, build_word_tokenizer
from omnifuse.encoders.factory import TowerConfig, build_encoder
from omnifuse.fusion import build_fusion
from omnifuse.models.factory import load_model
from omnifuse.models.fusion_classifier import FusionClassifier
from omnifuse.models.multitask import MultiTaskModel, TaskSpec

TEXTS = ["is the red circle left of the blue square?", "what color is the star?", "how many objects?"]


def _processor():
    return Processor(
        {"text": TextProcessor(build_word_tokenizer(TEXTS), max_length=12), "image": ImageProcessor(size=16)}
    )


def _encoders(processor, text_hidden=16, image_hidden=24):
    text = build_encoder(
        TowerConfig(arch="bert", overrides={"hidden_size": text_hidden, "intermediate_size": 32}),
        "text",
        {"vocab_size": processor["text"].vocab_size, "pad_token_id": 0},
    )
    image = build_encoder(
        TowerConfig(
            arch="vit", overrides={"hidden_size": image_hidden, "intermediate_size": 32, "patch_size": 8}
        ),
        "image",
        {"image_size": 16},
    )
    return {"text": text, "image": image}


def _batch(processor, labels=None):
    images = [torch.full((16, 16, 3), 60 * i, dtype=torch.uint8).numpy() for i in range(3)]
    batch = processor({"text": TEXTS, "image": images})
    if labels is not None:
        batch["labels"] = torch.tensor(labels)
    return batch


@pytest.mark.parametrize("strategy", ["concat", "gated", "late", "cross_attention", "single_stream"])
def test_classifier_trains_and_round_trips(strategy, tmp_path):
    torch.manual_seed(0)
    processor = _processor()
    encoders = _encoders(processor)
    dims = {m: e.hidden_size for m, e in encoders.items()}
    kwargs = {"num_outputs": 3} if strategy == "late" else {}
    fusion = build_fusion(strategy, dims, **kwargs)
    model = FusionClassifier(encoders, fusion, class_names=["no", "yes", "2"], processor=processor)
    out = model(_batch(processor, [0, 1, 2]))
    assert out.logits.shape == (3, 3) and out.loss.ndim == 0
    out.loss.backward()
    assert model.head is None if strategy == "late" else model.head[-1].weight.grad is not None
    model.eval()
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, FusionClassifier) and loaded.class_names == ["no", "yes", "2"]
    batch = _batch(processor)
    torch.testing.assert_close(loaded(batch).logits, model(batch).logits)


def test_missing_modality_is_masked_not_used(tmp_path):
    torch.manual_seed(0)
    processor = _processor()
    encoders = _encoders(processor)
    fusion = build_fusion("gated", {m: e.hidden_size for m, e in encoders.items()})
    model = FusionClassifier(encoders, fusion, class_names=["a", "b"], processor=processor).eval()
    batch = _batch(processor)
    batch["image_present"] = torch.tensor([True, False, True])
    garbage = dict(batch, image=torch.randn_like(batch["image"]) * 100)
    probs = model.predict_proba(batch)
    torch.testing.assert_close(model.predict_proba(garbage)[1], probs[1])  # row 1 ignores its image
    text_only = {k: v for k, v in batch.items() if not k.startswith("image")}
    assert model.predict_proba(text_only).shape == (3, 2)  # a modality absent for the whole batch


def test_class_weights_multilabel_and_regression():
    processor = _processor()
    encoders = _encoders(processor)
    dims = {m: e.hidden_size for m, e in encoders.items()}
    weighted = FusionClassifier(
        encoders,
        build_fusion("concat", dims),
        class_names=["a", "b"],
        class_weights=[1.0, 5.0],
        processor=processor,
    )
    assert weighted(_batch(processor, [0, 1, -100])).loss.isfinite()
    multi = FusionClassifier(
        _encoders(processor), build_fusion("concat", dims), task="multi_label", class_names=["a", "b", "c"],
        processor=processor,
    )  # fmt: skip
    batch = _batch(processor)
    batch["labels"] = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1]])
    assert multi(batch).loss.isfinite() and multi.predict_proba(batch).max() <= 1
    reg = FusionClassifier(
        _encoders(processor), build_fusion("concat", dims), task="regression", processor=processor
    )
    batch["labels"] = torch.tensor([1.0, float("nan"), 3.0])  # NaN: no label, skipped
    assert reg(batch).logits.shape == (3, 1) and reg(batch).loss.isfinite()


def test_build_errors_say_what_to_fix():
    processor = _processor()
    encoders = _encoders(processor, text_hidden=16, image_hidden=24)
    wrong = build_fusion("concat", {"text": 16, "image": 32})
    with pytest.raises(ValueError, match="hidden sizes do not match.*image: encoder 24 vs fusion 32"):
        FusionClassifier(encoders, wrong, class_names=["a", "b"])
    tokens = build_fusion("cross_attention", {"text": 16, "image": 24})
    with pytest.raises(ValueError, match="needs token sequences|attends over token sequences"):
        FusionClassifier(encoders, tokens, class_names=["a", "b"], inputs="pooled")
    with pytest.raises(ValueError, match="at least 2 class names"):
        FusionClassifier(encoders, build_fusion("concat", {"text": 16, "image": 24}), class_names=["a"])


@pytest.mark.parametrize("sharing,weighting", [("hard", "fixed"), ("hard", "uncertainty"), ("soft", "fixed")])
def test_multitask(sharing, weighting, tmp_path):
    torch.manual_seed(0)
    processor = _processor()
    encoders = _encoders(processor)
    fusion = build_fusion("concat_mlp", {m: e.hidden_size for m, e in encoders.items()}, hidden_dim=16)
    tasks = {
        "answer": TaskSpec("single_label", ["no", "yes"], "answer"),
        "count": TaskSpec("regression", None, "n"),
    }
    model = MultiTaskModel(
        encoders, fusion, tasks, sharing=sharing, loss_weighting=weighting, head_hidden=8, processor=processor
    )
    batch = _batch(processor)
    batch["labels/answer"] = torch.tensor([0, 1, 1])
    batch["labels/count"] = torch.tensor([1.0, 2.0, 3.0])
    out = model(batch)
    assert set(out.task_losses) == {"answer", "count"} and out.loss.isfinite()
    out.loss.backward()
    if weighting == "uncertainty":
        assert model.log_vars.grad is not None
    if sharing == "soft":
        assert (
            len(model.trunks) == 2 and float(model.soft_sharing_penalty().detach()) == 0.0
        )  # identical at init
    model.eval()
    model.save_pretrained(tmp_path / "mt")
    loaded = load_model(tmp_path / "mt")
    assert isinstance(loaded, MultiTaskModel) and loaded.sharing == sharing
    for task, probs in loaded.predict_proba(batch).items():
        torch.testing.assert_close(probs, model.predict_proba(batch)[task])


def test_classifier_takes_audio_and_video_inputs(tmp_path):
    """A spoken question + an image (and a video clip) through one fusion classifier."""
    import numpy as np

    from omnifuse.data.audio import AudioProcessor
    from omnifuse.data.processors import ImageSettings
    from omnifuse.data.video import VideoProcessor, VideoSettings

    torch.manual_seed(0)
    tiny = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1}
    processor = Processor(
        {
            "audio": AudioProcessor(sample_rate=8000, n_mels=16, max_seconds=1.6),
            "image": ImageProcessor(size=16),
            "video": VideoProcessor(VideoSettings(num_frames=3, image=ImageSettings(size=16))),
        }
    )
    from omnifuse.models.data_overrides import data_overrides

    towers = {
        "audio": TowerConfig(arch="ast", pooling="mean", overrides=tiny),
        "image": TowerConfig(arch="vit", overrides={**tiny, "patch_size": 8}),
        "video": TowerConfig(arch="frame_vit", overrides={**tiny, "patch_size": 8}),
    }
    encoders = {m: build_encoder(t, m, data_overrides(processor, m)) for m, t in towers.items()}
    fusion = build_fusion("cross_attention", {m: e.hidden_size for m, e in encoders.items()}, query="audio")
    model = FusionClassifier(encoders, fusion, class_names=["no", "yes"], processor=processor)
    rng = np.random.default_rng(0)
    batch = processor(
        {
            "audio": [(rng.standard_normal(8000).astype(np.float32) * 0.1, 8000) for _ in range(2)],
            "image": [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2)],
            "video": [rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8) for _ in range(2)],
        }
    )
    out = model({**batch, "labels": torch.tensor([0, 1])})
    assert out.logits.shape == (2, 2) and out.loss.isfinite()
    out.loss.backward()
    model.eval().save_pretrained(tmp_path / "m")
    torch.testing.assert_close(load_model(tmp_path / "m").predict_proba(batch), model.predict_proba(batch))
