"""Old location of the model configs, kept only for `omnifuse/bench/serve.py` (which builds
its benchmark model from it); delete it once that imports `DualEncoderConfig`. The configs live in each kind's folder."""

from omnifuse.models.dual_encoder.config import DualEncoderConfig as ModelConfig  # noqa: F401
