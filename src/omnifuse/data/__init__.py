"""Samples, processors, readers and writers, synthetic data."""

from omnifuse.data.audio import AudioProcessor, AudioSettings  # registers 'audio'
from omnifuse.data.decode import decode_value, load_image, register_decoder
from omnifuse.data.loader import Collator, EpochBatchSampler, SampleDataset, eval_loader
from omnifuse.data.masked_text import MaskedTextProcessor  # registers 'masked_text'
from omnifuse.data.processors import (
    ImageProcessor,
    ImageSettings,
    Processor,
    TextProcessor,
    build_word_tokenizer,
)
from omnifuse.data.readers import inspect_dataset, read_image_folder, read_manifest, read_samples
from omnifuse.data.sample import (
    MODALITIES,
    CorruptSampleError,
    CorruptSamplePolicy,
    DataError,
    Sample,
)
from omnifuse.data.shards import ShardChecksumError, pack_shards, read_shards, verify_shards
from omnifuse.data.video import VideoClip, VideoProcessor, VideoSettings, load_video  # registers 'video'

__all__ = [
    "AudioProcessor",
    "AudioSettings",
    "MODALITIES",
    "Collator",
    "CorruptSampleError",
    "CorruptSamplePolicy",
    "DataError",
    "EpochBatchSampler",
    "ImageProcessor",
    "ImageSettings",
    "MaskedTextProcessor",
    "Processor",
    "Sample",
    "SampleDataset",
    "ShardChecksumError",
    "TextProcessor",
    "VideoClip",
    "VideoProcessor",
    "VideoSettings",
    "build_word_tokenizer",
    "decode_value",
    "eval_loader",
    "inspect_dataset",
    "load_image",
    "load_video",
    "pack_shards",
    "read_image_folder",
    "read_manifest",
    "read_samples",
    "read_shards",
    "register_decoder",
    "verify_shards",
]
