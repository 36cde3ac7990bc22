"""Run a recipe end to end: read data, build processors and model, train, plot, report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omnifuse.data.processors import ImageProcessor, Processor, TextProcessor, build_word_tokenizer
from omnifuse.data.readers import read_samples
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.eval.evaluator import DualEncoderEvaluator
from omnifuse.models.factory import build_model
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
        return read_samples(spec, columns=data.columns, policy=policy)

    return RecipeData(read(data.train, "train data"), read(data.val, "val data") if data.val else None)


def all_texts(samples: list[Sample], modality: str = "text") -> list[str]:
    texts: list[str] = []
    for s in samples:
        value = s.inputs.get(modality)
        texts.extend([value] if isinstance(value, str) else list(value or []))
    return texts


def build_processor(recipe: Recipe, train: list[Sample]) -> Processor:
    """One processor per modality the model's towers use (a word tokenizer is fit on train texts)."""
    modalities = sorted(recipe.model.towers) or ["image", "text"]
    procs = {}
    if "text" in modalities:
        cfg = recipe.processor.text
        if cfg.tokenizer == "word":
            tokenizer = build_word_tokenizer(all_texts(train))
            procs["text"] = TextProcessor(tokenizer, max_length=cfg.max_length)
        else:
            procs["text"] = TextProcessor.from_pretrained(cfg.tokenizer, max_length=cfg.max_length)
    if "image" in modalities:
        procs["image"] = ImageProcessor(recipe.processor.image)
    return Processor(procs)


def build_evaluator(recipe: Recipe, val: list[Sample] | None, model) -> DualEncoderEvaluator | None:
    if not val:
        return None
    ev = recipe.eval
    return DualEncoderEvaluator(
        val,
        pair=tuple(sorted(model.modalities, key=lambda m: m != "text")[:2]),
        batch_size=ev.batch_size,
        max_items=ev.max_items,
        label_key=ev.label_key,
        class_names=ev.class_names,
        templates=ev.templates,
        only_single_object=ev.only_single_object,
    )


def run_recipe(recipe: Recipe, resume: bool = False) -> TrainResult:
    from omnifuse.eval.plots import plot_curves

    run_dir = recipe.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(recipe.train.seed, recipe.train.deterministic)  # before the model's random init
    data = load_recipe_data(recipe)
    latest = latest_checkpoint(run_dir / "checkpoints") if resume else None
    # A resumed run reuses the saved preprocessing (tokenizer included), never a rebuilt one.
    processor = Processor.load(latest / "model") if latest else build_processor(recipe, data.train)
    model = build_model(recipe.model, processor)
    dump_recipe(recipe, run_dir / "config.yaml")
    trainer = Trainer(
        model,
        data.train,
        recipe.train,
        run_dir,
        evaluator=build_evaluator(recipe, data.val, model),
        strict=recipe.data.strict,
        group_size=recipe.data.group_size,
        cache_decoded=recipe.data.cache_decoded,
    )
    result = trainer.fit(resume=resume)
    if trainer.accelerator.is_main_process:
        plot_curves(result.metrics, run_dir / "plots")
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
