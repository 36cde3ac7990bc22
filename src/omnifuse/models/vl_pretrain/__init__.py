"""`vl_pretrain`: vision-language pre-training (contrastive + matching with hard negatives + MLM on the image)."""

from omnifuse.models.vl_pretrain import build as _build  # noqa: F401  (registers the kind)
from omnifuse.models.vl_pretrain.config import VLPretrainConfig
from omnifuse.models.vl_pretrain.model import VLPretrain, VLPretrainOutput, mine_hard_negatives

__all__ = ["VLPretrain", "VLPretrainConfig", "VLPretrainOutput", "mine_hard_negatives"]
