"""The Gato-style generalist kind: one transformer that acts, captions and answers."""

from omnifuse.models.generalist.config import GeneralistConfig, SourceConfig
from omnifuse.models.generalist.model import Generalist, GeneralistOutput, UntrainedTaskError

__all__ = ["Generalist", "GeneralistConfig", "GeneralistOutput", "SourceConfig", "UntrainedTaskError"]
