"""Zero-shot accuracy on seen and held-out color-shape combinations, reported apart."""

import numpy as np
import pytest

from omnifuse.data.sample import Sample
from omnifuse.eval.evaluator import DualEncoderEvaluator


def test_seen_and_heldout_partition_the_zero_shot_items(tiny_model):
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            inputs={"image": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "text": f"a {label}"},
            labels={"color_shape": label},
            meta={"n_objects": 1, "heldout": i % 3 == 0},
        )
        for i, label in enumerate(["red circle", "blue square", "red square"] * 4)
    ]
    metrics = DualEncoderEvaluator(samples, label_key="color_shape", only_single_object=True, prefix="")(
        tiny_model()
    )
    n, seen, held = (metrics[f"zero_shot/{k}"] for k in ("n", "seen_n", "heldout_n"))
    assert (n, seen, held) == (12, 8, 4)
    mixed = (seen * metrics["zero_shot/seen_top1"] + held * metrics["zero_shot/heldout_top1"]) / n
    assert mixed == pytest.approx(metrics["zero_shot/top1"])
