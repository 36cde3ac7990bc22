"""The multi-task kind: several prediction tasks over shared (or L2-tied) encoders + fusion."""

from omnifuse.models.heads import TaskSpec
from omnifuse.models.multitask.config import MultiTaskConfig
from omnifuse.models.multitask.model import MultiTaskModel, MultiTaskOutput
from omnifuse.models.multitask.tasks import label_batch_key

__all__ = ["MultiTaskConfig", "MultiTaskModel", "MultiTaskOutput", "TaskSpec", "label_batch_key"]
