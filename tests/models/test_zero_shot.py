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
