"""The recipe: typed configs for data, processors, model, training and evaluation.

A recipe is a YAML file; `load_recipe` validates every key and type before any work is
done, naming the key at fault and the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

import omnifuse.models  # noqa: F401  (registers every built-in model kind)
from omnifuse.data.audio import AudioSettings
from omnifuse.data.processors import ImageSettings
from omnifuse.data.video import VideoSettings
from omnifuse.models.registry import KindConfig, model_configs
from omnifuse.utils.config import ConfigError, from_dict, set_by_path, to_dict


@dataclass
class DataConfig:
    """Where the samples come from and how the training loop reads them."""

    train: str
    """Training data: a JSONL/CSV manifest, a shard directory (with index.json) or an image folder."""
    val: str | None = None
    """Validation data, same kinds; evaluated every `train.eval_every` steps."""
    columns: dict[str, str] = field(default_factory=lambda: {"image": "image", "text": "captions"})
    """Modality -> manifest column."""
    strict: bool = False
    """Fail on the first corrupt or missing sample instead of skipping and counting."""
    cache_decoded: bool = False
    """Keep decoded training samples in memory after their first use (datasets that fit in RAM)."""
    labels: list[str] = field(default_factory=list)
    """Manifest columns copied into each sample's labels (e.g. `answer`); a `label` column and a
    JSONL `labels` object are always copied."""
    allow_missing: bool = False
    """Let samples lack some of the model's modalities (fusion models mask them); else skip nothing
    and require every modality."""
    group_size: int = 1
    """Shuffle blocks of this many consecutive training samples, keeping each in one batch
    (hard-negative pairs such as the shapes world's `minimal_pairs`)."""

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError("data.train is required (a manifest, shard directory or image folder)")
        if self.group_size < 1:
            raise ValueError(f"data.group_size must be >= 1; got {self.group_size}")


@dataclass
class TextProcessorConfig:
    """How texts are tokenized."""

    tokenizer: str = "word"
    """`word`: build a word-level tokenizer from the training texts; else an HF name or local dir."""
    max_length: int = 32
    """Tokens per text, special tokens included; longer texts are truncated."""
    extra_words: list[str] = field(default_factory=list)
    """Words the `word` tokenizer knows besides the training texts' (e.g. the question words of a
    later fine-tuning task, so a tower pre-trained on captions does not map them to [UNK])."""


@dataclass
class ProcessorConfig:
    """Preprocessing per modality; only the modalities the model uses are built."""

    text: TextProcessorConfig = field(default_factory=TextProcessorConfig)
    """Tokenizer and text length."""
    image: ImageSettings = field(default_factory=ImageSettings)
    """Image size, resize, normalisation mean/std and training augmentation (image towers)."""
    video: VideoSettings = field(default_factory=VideoSettings)
    """Frames per clip, TSN sampling, per-frame size/normalisation, pixel cap (video towers)."""
    audio: AudioSettings = field(default_factory=AudioSettings)
    """Sample rate, log-mel (n_mels, n_fft, hop) or raw waveform, max duration, normalisation (audio towers)."""


@dataclass
class EarlyStoppingConfig:
    """Stop when a validation metric stops improving."""

    metric: str | None = None
    """A validation metric name (e.g. `val/text_to_image/R@1`); null disables early stopping."""
    mode: Literal["max", "min"] = "max"
    """Whether a higher (`max`) or lower (`min`) value of `metric` is better."""
    patience: int = 5
    """Evaluations without improvement before stopping."""


@dataclass
class TrainConfig:
    """The training loop: optimizer, schedule, precision, logging, checkpoints, early stopping."""

    batch_size: int = 64
    """Global batch per micro-step (split across processes)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step (effective batch = batch_size * grad_accum)."""
    max_steps: int = 1000
    """Optimizer steps."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """AdamW (decoupled weight decay) or SGD with Nesterov momentum."""
    lr: float = 5e-4
    """Peak learning rate (reached after warmup)."""
    momentum: float = 0.9
    """SGD momentum (Nesterov when > 0)."""
    weight_decay: float = 0.1
    """Weight decay; biases, norms and temperatures are exempt."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW moment decay rates."""
    eps: float = 1e-6
    """AdamW denominator epsilon."""
    warmup_steps: int = 50
    """Linear warmup from 0 to `lr` over this many steps."""
    schedule: Literal["cosine", "constant"] = "cosine"
    """After warmup: cosine decay to `min_lr_ratio * lr` at `max_steps`, or constant."""
    min_lr_ratio: float = 0.0
    """Final learning rate of the cosine schedule, as a fraction of `lr`."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; null: no clipping."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16 autocast (fast on CPUs with AMX/AVX512-BF16 and on recent GPUs)."""
    seed: int = 0
    """Seed of model init, data order and augmentation."""
    deterministic: bool = False
    """Deterministic algorithms, for bitwise-reproducible (and resumable) runs."""
    find_unused_parameters: bool = False
    """Across processes (DDP): allow trainable parameters that some step leaves without a
    gradient (a branch not taken). Frozen parameters (requires_grad false) never take part in the
    gradient sync, so a frozen tower or LM needs nothing here."""
    distributed: Literal["auto", "ddp", "fsdp"] = "auto"
    """With several processes: `ddp` (every process holds the whole model, gradients averaged),
    `fsdp` (FSDP2 `fully_shard`: parameters, gradients and optimizer state sharded across the
    processes, CPU included), or `auto`: FSDP when launched with an FSDP configuration
    (`accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml`), else DDP. The trainer
    shards the model itself because Accelerate on CPU runs an FSDP configuration as DDP."""
    num_workers: int = 0
    """DataLoader worker processes (0: load in the main process)."""
    threads: int | None = None
    """torch intra-op CPU threads; null: torch's default."""
    log_every: int = 10
    """Write a `metrics.jsonl` row (mean loss, lr, samples/s) every this many steps."""
    eval_every: int | None = None
    """Evaluate on `data.val` every this many steps (and at the end); null: at the end only."""
    checkpoint_every: int | None = None
    """Write `checkpoints/step-N/` every this many steps (and at the end); null: at the end only."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep."""
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    """Stop when a validation metric stops improving (off unless `metric` is set)."""
    tensorboard: bool = False
    """Also log scalars to TensorBoard under the run directory."""
    progress: bool = True
    """Show a progress bar (a periodic line when not on a terminal)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "max_steps", "log_every", "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be positive; got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be positive; got {self.lr}")
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"train.{name} must be positive or null; got {value}")


@dataclass
class EvalConfig:
    """Validation metrics settings (each kind's evaluator reads what applies to it)."""

    batch_size: int = 256
    """Samples per evaluation batch."""
    max_items: int = 1000
    """Retrieval is measured on the first `max_items` validation pairs."""
    label_key: str | None = None
    """Sample label used for zero-shot accuracy (e.g. `color_shape`); null skips it."""
    class_names: list[str] | None = None
    """Zero-shot classes; default: the labels found in the validation data."""
    templates: list[str] | None = None
    """Zero-shot prompt templates; saved with the trained model and used by default wherever it is
    evaluated or served. Null: the model's own (omnifuse.models.zero_shot.DEFAULT_TEMPLATES)."""
    only_single_object: bool = False
    """Zero-shot only on samples whose metadata has n_objects == 1 (shapes world)."""
    group_key: str | None = None
    """Classifiers: also report accuracy per value of this sample field (e.g. `qtype`)."""


@dataclass
class Recipe:
    """A whole run: data, preprocessing, model, training and evaluation."""

    data: DataConfig
    """Training (and validation) data."""
    model: KindConfig
    """The config of one registered model kind (the union of `model_configs()`: dual_encoder,
    fusion_classifier, multitask, ...), chosen by `model.type`."""
    name: str = "run"
    """The run's name: its directory is `output_dir/name`."""
    output_dir: str = "runs"
    """Where run directories are created."""
    processor: ProcessorConfig = field(default_factory=ProcessorConfig)
    """Preprocessing per modality (tokenizer, image, video and audio settings)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The training loop: optimizer, schedule, precision, checkpoints, early stopping."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Validation metrics settings."""

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


REQUIRED = ("data", "model")


def parse_override(item: str) -> tuple[str, Any]:
    """`key.path=value` with the value parsed as YAML (`3`, `1e-4`, `true`, `[1, 2]`, `null`)."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value; got '{item}'")
    key, raw = item.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def recipe_from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    data = dict(data or {})
    for item in overrides:
        set_by_path(data, *parse_override(item))
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ConfigError(f"the recipe needs a '{missing[0]}' section")
    model = data["model"]
    if not isinstance(model, dict):
        raise ConfigError(f"'model' must be a mapping; got {model!r}")
    kind = model.get("type", "dual_encoder")
    configs = model_configs()
    if kind not in configs:
        raise ConfigError(f"'model.type' must be one of {', '.join(map(repr, configs))}; got {kind!r}")
    data["model"] = from_dict(configs[kind], model, prefix="model.")
    return from_dict(Recipe, data)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recipe {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of sections (data, model, train, ...)")
    try:
        return recipe_from_dict(data, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def dump_recipe(recipe: Recipe, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(recipe), sort_keys=False))
