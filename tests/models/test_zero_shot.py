"""Zero-shot classifier: class embeddings are the normalised mean over templates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omnifuse.models import ZeroShotClassifier


def test_class_embeddings_average_templates(tiny_model, tiny_batch):
    model = tiny_model()
    templates = ["a {}", "there is a {}"]
    zs = ZeroShotClassifier(model, ["red circle", "blue square"], templates)
    with torch.no_grad():
        for c, name in enumerate(["red circle", "blue square"]):
            prompts = model.processor["text"]([t.format(name) for t in templates])
            expected = F.normalize(model.encode("text", prompts).mean(0), dim=-1)
            assert torch.allclose(zs.class_embeddings[c], expected, atol=1e-6)
        images = tiny_batch(model)
        probs = zs.predict("image", images)
    assert probs.shape == (3, 2)
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)


def test_bad_templates_and_classes(tiny_model):
    model = tiny_model()
    with pytest.raises(ValueError, match="placeholder"):
        ZeroShotClassifier(model, ["red circle"], ["no placeholder"])
    with pytest.raises(ValueError, match="at least one class"):
        ZeroShotClassifier(model, [], ["a {}"])


def test_templates_travel_with_the_model(tiny_model, tmp_path):
    """Saved in config.json; the default of the classifier, the runtime and the server alike."""
    from omnifuse import runtime
    from omnifuse.models import DualEncoder
    from omnifuse.models.zero_shot import DEFAULT_TEMPLATES

    model = tiny_model()
    assert ZeroShotClassifier(model, ["red circle"]).templates == list(DEFAULT_TEMPLATES)
    model.zero_shot_templates = ["a shape: {}", "{} here"]
    model.save_pretrained(tmp_path / "m")
    loaded = DualEncoder.from_pretrained(tmp_path / "m")
    assert loaded.zero_shot_templates == ["a shape: {}", "{} here"]
    assert ZeroShotClassifier(loaded, ["red circle"]).templates == ["a shape: {}", "{} here"]
    predictor = runtime.load(tmp_path / "m")
    assert predictor.zero_shot_templates == ["a shape: {}", "{} here"]
    assert abs(predictor.logit_scale - float(model.scale())) < 1e-4
    images = [torch.zeros(20, 24, 3, dtype=torch.uint8).numpy()]
    default = predictor.classify({"image": images}, labels=["red circle", "blue square"])
    explicit = predictor.classify(
        {"image": images}, labels=["red circle", "blue square"], templates=["a shape: {}", "{} here"]
    )
    assert [(s.label, round(s.score, 6)) for s in default[0]] == [
        (s.label, round(s.score, 6)) for s in explicit[0]
    ]
