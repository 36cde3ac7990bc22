"""Samples, processors, readers and writers, synthetic data."""

from omnifuse.data.sample import (
    MODALITIES,
    CorruptSampleError,
    CorruptSamplePolicy,
    DataError,
    Sample,
)

__all__ = ["MODALITIES", "CorruptSampleError", "CorruptSamplePolicy", "DataError", "Sample"]
