"""Run a recipe end to end: read data, build processors and model, train, plot, report."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnifuse.data.audio import AudioProcessor, AudioSettings, load_audio
from omnifuse.data.processors import ImageProcessor, Processor, TextProcessor, build_word_tokenizer
from omnifuse.data.readers import read_samples
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, Sample
from omnifuse.data.video import VideoProcessor
from omnifuse.encoders.config import TowerConfig
from omnifuse.eval.registry import build_evaluator as evaluator_for
from omnifuse.models.factory import build_model
from omnifuse.models.registry import get_spec, spec_of
from omnifuse.train.checkpoint import latest_checkpoint
from omnifuse.train.config import Recipe, dump_recipe
from omnifuse.train.loop import Trainer, TrainResult, seed_everything

logger = logging.getLogger("omnifuse.train")


@dataclass
class RecipeData:
    train: list[Sample]
    val: list[Sample] | None


def load_recipe_data(recipe: Recipe) -> RecipeData:
    data = recipe.data

    def read(spec: str, name: str) -> list[Sample]:
        policy = CorruptSamplePolicy(strict=data.strict, name=name)
        return read_samples(spec, columns=data.columns, label_columns=data.labels or None, policy=policy)

    return RecipeData(read(data.train, "train data"), read(data.val, "val data") if data.val else None)


def model_modalities(recipe: Recipe) -> list[str]:
    """The modalities the recipe's model consumes (its kind's spec says)."""
    return get_spec(recipe.model.type).modalities(recipe.model)


def check_data_has(modalities: list[str], samples: list[Sample], recipe: Recipe) -> None:
    """Every modality of the model must occur in the training data."""
    found = set().union(*(s.inputs for s in samples[:2000]))
    lacking = [m for m in modalities if m not in found]
    if lacking:
        raise ValueError(
            f"the model uses {lacking} but the training data ({recipe.data.train}) has only {sorted(found)}; "
            f"map a column to it under data.columns (now {recipe.data.columns}) or drop it from the model"
        )


def all_texts(samples: list[Sample], modality: str = "text") -> list[str]:
    texts: list[str] = []
    for s in samples:
        value = s.inputs.get(modality)
        texts.extend([value] if isinstance(value, str) else list(value or []))
    return texts


def model_encoders(recipe: Recipe) -> dict[str, TowerConfig]:
    """The recipe model's encoders by modality, for kinds built from encoders (else none)."""
    return getattr(recipe.model, "encoders", None) or {}


def text_tokenizer_name(recipe: Recipe) -> str:
    """The configured tokenizer; `word` under a pretrained text encoder means that encoder's own."""
    name = recipe.processor.text.tokenizer
    text = model_encoders(recipe).get("text")
    if name == "word" and text is not None and text.source == "hf":
        return text.name_or_path
    if name == "word" and text is not None and text.source == "omnifuse":  # the artifact's tokenizer
        return str(Path(text.name_or_path) / "tokenizer")
    return name


def build_processor(recipe: Recipe, train: list[Sample]) -> Processor:
    """One processor per modality the model uses (a word tokenizer is fit on train texts).

    A fusion model started from a DualEncoder artifact keeps that artifact's preprocessing.
    """
    modalities = model_modalities(recipe)
    spec = get_spec(recipe.model.type)
    procs = dict(spec.processors(recipe.model)) if spec.processors else {}
    for m, tower in sorted(
        model_encoders(recipe).items()
    ):  # a tower from an artifact keeps its preprocessing
        if tower.source == "omnifuse" and m != "text" and m not in procs:  # (text: its tokenizer, below)
            procs[m] = Processor.load(tower.name_or_path)[m]
    if "text" in modalities and "text" not in procs:
        cfg = recipe.processor.text
        tokenizer = text_tokenizer_name(recipe)
        if tokenizer == "word":
            texts = all_texts(train) + list(cfg.extra_words)
            procs["text"] = TextProcessor(build_word_tokenizer(texts), max_length=cfg.max_length)
        else:
            procs["text"] = TextProcessor.from_pretrained(tokenizer, max_length=cfg.max_length)
    if "image" in modalities and "image" not in procs:
        procs["image"] = ImageProcessor(recipe.processor.image)
    if "video" in modalities and "video" not in procs:
        procs["video"] = VideoProcessor(recipe.processor.video)
    if "audio" in modalities and "audio" not in procs:
        procs["audio"] = build_audio_processor(recipe.processor.audio, train)
    return Processor(procs)


def build_audio_processor(
    settings: AudioSettings, train: list[Sample], max_clips: int = 64
) -> AudioProcessor:
    """An audio processor; log-mel mean/std left null in the recipe are fitted on training clips."""
    proc = AudioProcessor(dataclasses.replace(settings))  # a copy: the recipe stays as written
    if settings.features == "log_mel" and (settings.mean is None or settings.std is None):
        clips = []
        for s in train:
            if len(clips) >= max_clips:
                break
            if "audio" in s.inputs:
                try:
                    clips.append(load_audio(s.inputs["audio"], s.source))
                except CorruptSampleError:
                    continue  # the training loop's policy reports it
        if clips:
            proc.fit_normalization(clips, max_clips)
    return proc


def build_evaluator(recipe: Recipe, val: list[Sample] | None, model):
    """The validation evaluator that the model's kind names in its spec (None without val data)."""
    if not val:
        return None
    return evaluator_for(spec_of(model).evaluator, recipe.eval, val, model)


def run_recipe(
    recipe: Recipe, resume: bool = False, resample: Callable[[list[Sample]], list[Sample]] | None = None
) -> TrainResult:
    """Train the recipe's model. `resample` maps the training samples to the ones the loop sees
    (ensembles: a bootstrap or weighted resample); the preprocessing and the model (its class
    names) are still built from all of them, so every member of an ensemble matches."""
    from omnifuse.eval.plots import plot_curves

    run_dir = recipe.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(recipe.train.seed, recipe.train.deterministic)  # before the model's random init
    latest = latest_checkpoint(run_dir / "checkpoints") if resume else None
    spec = get_spec(recipe.model.type)
    prepare = spec.extras.get("prepare")
    # A resumed run reuses the saved preprocessing (tokenizer included), never a rebuilt one.
    saved = Processor.load(latest / "model") if latest else None
    if prepare is not None:  # the kind reads its data and builds its preprocessing itself
        prepared = prepare(recipe, saved)
        data, processor = RecipeData(prepared.train, prepared.val), prepared.processor
    else:
        data = load_recipe_data(recipe)
        check_data_has(model_modalities(recipe), data.train, recipe)
        processor = saved
        if processor is None:
            processor = build_processor(recipe, data.train)
            adapt = spec.extras.get("adapt_processor") if spec is not None else None
            if adapt is not None:  # e.g. masking text for MLM
                processor = adapt(processor, recipe.model)
    model = build_model(recipe.model, processor, data.train)
    if recipe.eval.templates and spec.can("zero_shot"):  # saved with the model: its default prompts
        model.zero_shot_templates = list(recipe.eval.templates)
    dump_recipe(recipe, run_dir / "config.yaml")
    evaluator = build_evaluator(recipe, data.val, model)
    trainer = Trainer(
        model,
        resample(data.train) if resample is not None else data.train,
        recipe.data,
        recipe.train,
        run_dir,
        evaluator=evaluator,
        targets=spec.targets(model) if spec.targets else None,
    )
    result = trainer.fit(resume=resume)
    if trainer.accelerator.is_main_process:
        plot_curves(result.metrics, run_dir / "plots")
        if evaluator is not None:  # per-class reports, confusion matrices: what its kind details
            evaluator.write_details(trainer.main_model, run_dir / "plots")
    return result


def summarize(result: TrainResult) -> dict[str, float]:
    """The last evaluation's metrics (or the last training row)."""
    evals = [r for r in result.metrics if any(k.startswith("val/") for k in r)]
    row = (evals or result.metrics or [{}])[-1]
    return {k: v for k, v in row.items() if isinstance(v, int | float)}


def write_run_report(run_dir: Path, title: str, result: TrainResult) -> Path:
    from omnifuse.eval.report import ImageSection, TableSection, write_report

    sections = [TableSection("Final metrics", [summarize(result)])]
    for png in sorted((run_dir / "plots").glob("*.png")):
        sections.append(ImageSection(png.stem, png))
    return write_report(run_dir / "report.html", title, sections)
