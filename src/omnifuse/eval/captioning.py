"""Image-to-text metrics and the captioner's evaluator, each figure beside blind baselines.

- BLEU-4 (Papineni et al. 2002), CIDEr-D (Vedantam et al. 2015, arXiv:1411.5726) and ROUGE-L
  (Lin 2004): pycocoevalcap's own scorers, on text tokenised like its PTB tokenizer
  (lower case, punctuation tokens dropped) but without Java.
- VQA accuracy: normalised exact match, and the standard soft accuracy
  min(#references equal to the answer / 3, 1), averaged over the leave-one-out subsets of the
  references (Antol et al. 2015; the VQA evaluation code's normalisation of answers).
- Object hallucination on the shapes world: the share of "color shape" mentions in generated
  captions that name no object of the scene (CHAIR-i style, Rohrbach et al. 2018), and the
  share of captions with at least one (CHAIR-s).

Blind baselines: the same model with every image blanked (the processor's mean image, all
zeros after normalisation), and with the images shuffled across the batch (each prompt sees
another sample's image).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from omnifuse._optional import require
from omnifuse.data.decode import load_images
from omnifuse.data.sample import Sample
from omnifuse.data.synth.vocab import COLORS, SHAPES
from omnifuse.eval.base import Evaluator
from omnifuse.eval.registry import register_evaluator

# ---------------------------------------------------------------------------- caption metrics
#: Tokens the PTB tokenizer step of pycocoevalcap removes.
PTB_PUNCTUATIONS = {
    "''",
    "'",
    "``",
    "`",
    "-LRB-",
    "-RRB-",
    "-LCB-",
    "-RCB-",
    ".",
    "?",
    "!",
    ",",
    ":",
    "-",
    "--",
    "...",
    ";",
}
_TOKEN = re.compile(r"\.\.\.|--|``|''|[A-Za-z0-9]+(?:'[a-z]+)?|[^\sA-Za-z0-9]")


def ptb_tokenize(text: str) -> str:
    """Lower-cased tokens joined by spaces, punctuation dropped (pycocoevalcap's PTB step, no Java)."""
    return " ".join(t for t in _TOKEN.findall(text.lower()) if t not in PTB_PUNCTUATIONS)


def caption_scores(references: Sequence[Sequence[str]], candidates: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU-1..4, CIDEr-D and ROUGE-L of `candidates[i]` against `references[i]`."""
    require("pycocoevalcap", "caption", "caption metrics")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(references) != len(candidates):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference sets")
    if not candidates:
        raise ValueError("no captions to score")
    gts = {i: [ptb_tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [ptb_tokenize(c)] for i, c in enumerate(candidates)}
    if any(not refs for refs in gts.values()):
        raise ValueError("every candidate needs at least one reference")
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    return {
        "bleu1": float(bleu[0]),
        "bleu4": float(bleu[3]),
        "cider": float(cider),
        "rouge_l": float(rouge),
    }


# ---------------------------------------------------------------------------- VQA accuracy
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """VQA-style: lower case, punctuation removed, number words as digits, articles dropped."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(_NUMBERS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """Exact match for one reference; the standard soft accuracy for several.

    Soft accuracy: mean over each reference left out of min(#other references equal to the
    prediction / 3, 1) (the official VQA evaluation's formula).
    """
    pred = normalize_answer(prediction)
    refs = [normalize_answer(r) for r in references]
    if not refs:
        raise ValueError("no reference answers")
    if len(refs) == 1:
        return float(pred == refs[0])
    scores = []
    for i in range(len(refs)):
        others = refs[:i] + refs[i + 1 :]
        scores.append(min(1.0, sum(r == pred for r in others) / 3.0))
    return sum(scores) / len(scores)


# ---------------------------------------------------------------------------- hallucination
_COLOR_SHAPE = re.compile(
    r"\b(" + "|".join(COLORS) + r")\s+(" + "|".join(SHAPES) + r")s?\b",
)


def mentions(caption: str) -> list[str]:
    """ "color shape" mentions in a caption ("two red circles" -> ["red circle"])."""
    return [f"{c} {s}" for c, s in _COLOR_SHAPE.findall(caption.lower())]


def hallucination(captions: Sequence[str], scene_objects: Sequence[Iterable[str]]) -> dict[str, float]:
    """Share of mentions naming no object in the scene, and share of captions with any; also
    the share per scene size (`hallucination_2_objects`: in scenes of two objects), since
    telling which color goes with which shape only matters from two objects up."""
    total = wrong = bad_captions = 0
    by_size: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # objects -> [wrong, mentions]
    for caption, objects in zip(captions, scene_objects, strict=True):
        objects = list(objects)
        present = set(objects)
        found = mentions(caption)
        missing = [m for m in found if m not in present]
        total += len(found)
        wrong += len(missing)
        bad_captions += bool(missing)
        by_size[len(objects)][0] += len(missing)
        by_size[len(objects)][1] += len(found)
    return {
        "hallucination": wrong / total if total else 0.0,
        "hallucination_captions": bad_captions / max(1, len(captions)),
        "mentions_per_caption": total / max(1, len(captions)),
        **{f"hallucination_{n}_objects": w / t for n, (w, t) in sorted(by_size.items()) if t},
    }


# ---------------------------------------------------------------------------- the evaluator
def _task(sample: Sample) -> str:
    task = sample.meta.get("task")
    if task:
        return str(task)
    text = sample.inputs.get("text", "")
    return "caption" if "<image>" not in (text if isinstance(text, str) else text[0]) else "sequence"


def _plain_caption(text: str) -> str:
    """A training text's caption without its prompt and chunk end (user manifests' references)."""
    text = text.replace("<|endofchunk|>", " ").replace("<image>", " ")
    return re.sub(r"^\s*caption:\s*", "", text.strip(), flags=re.IGNORECASE).strip()


@register_evaluator("captioner")
class CaptionerEvaluator(Evaluator):
    """Captions, answers and few-shot sequences of validation samples, generated greedily.

    Samples are grouped by their `task` column (`caption`, `answer`, `fewshot`; a row without
    one whose text has no `<image>` is a caption whose reference is its own text). Metrics:

    - caption: bleu4, cider, rouge_l, hallucination; cider with blank and shuffled images;
    - answer: accuracy (normalised exact match / soft accuracy), per question type, and blind;
    - fewshot: accuracy with the in-context examples and without them (0-shot).
    """

    prefix = "val/"

    def __init__(
        self,
        samples: Sequence[Sample],
        batch_size: int = 32,
        max_items: int = 200,
        baselines: bool = True,
        max_new_tokens: int = 40,
    ):
        groups: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            groups[_task(s)].append(s)
        # evenly spaced items, so that a small budget still covers many scenes (a scene's
        # questions are consecutive rows)
        self.groups = {
            k: v[:: max(1, len(v) // max_items)][:max_items]
            for k, v in groups.items()
            if k in ("caption", "answer", "fewshot")
        }
        if not self.groups:
            raise ValueError("no caption, answer or few-shot samples to evaluate")
        self.batch_size, self.baselines, self.max_new_tokens = batch_size, baselines, max_new_tokens

    @classmethod
    def from_config(
        cls, config: Any, samples: Sequence[Sample], model: torch.nn.Module, prefix: str = "val/"
    ):
        ev = cls(samples, getattr(config, "batch_size", 32), getattr(config, "max_items", 200))
        ev.prefix = prefix
        return ev

    # -- helpers ----------------------------------------------------------------------------
    def _pixels(self, model, samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        values = [load_images(s.inputs["image"], s.source) for s in samples]
        batch = model.processor["image"]([v if isinstance(v, list) else [v] for v in values])
        return batch["image"], batch["image_count"]  # (B, N, 3, H, W), (B,)

    def _generate(
        self, model, samples, prompts, variant: str = "", max_new_tokens: int | None = None
    ) -> list[str]:
        from omnifuse.generation import GenerationSettings

        settings = GenerationSettings(max_new_tokens=max_new_tokens or self.max_new_tokens)
        out: list[str] = []
        for at in range(0, len(samples), self.batch_size):
            chunk = samples[at : at + self.batch_size]
            pixels, counts = self._pixels(model, chunk)
            if variant == "blank":
                pixels = torch.zeros_like(pixels)
            elif variant == "shuffled" and len(chunk) > 1:
                pixels, counts = pixels.roll(1, dims=0), counts.roll(1, dims=0)
            out += model.generate(
                pixel_values=pixels,
                image_count=counts,
                prompt=prompts[at : at + self.batch_size],
                settings=settings,
            ).texts
        return out

    # -- tasks ------------------------------------------------------------------------------
    def _captions(self, model, samples) -> tuple[dict[str, float], dict[str, Any]]:
        prompts = [model.config.caption_prompt] * len(samples)
        refs = [s.meta.get("references") or [_plain_caption(s.inputs["text"])] for s in samples]
        objects = [s.meta.get("objects") for s in samples]
        texts = self._generate(model, samples, prompts)
        metrics = {f"caption/{k}": v for k, v in caption_scores(refs, texts).items()}
        if all(o is not None for o in objects):
            metrics.update({f"caption/{k}": v for k, v in hallucination(texts, objects).items()})
        details = {
            "captions": [
                {"generated": t, "references": r} for t, r in zip(texts[:20], refs[:20], strict=False)
            ]
        }
        if self.baselines:
            for variant in ("blank", "shuffled"):
                if variant == "shuffled" and len(samples) < 2:
                    continue
                blind = self._generate(model, samples, prompts, variant)
                scores = caption_scores(refs, blind)
                metrics[f"caption/cider_{variant}"] = scores["cider"]
                metrics[f"caption/bleu4_{variant}"] = scores["bleu4"]
                if all(o is not None for o in objects):
                    metrics[f"caption/hallucination_{variant}"] = hallucination(blind, objects)[
                        "hallucination"
                    ]
        return metrics, details

    def _answers(self, model, samples) -> dict[str, float]:
        prompts = [model.config.question_prompt.format(question=s.meta["question"]) for s in samples]
        refs = [s.meta.get("answers") or [s.meta["answer"]] for s in samples]
        qtypes = [str(s.meta.get("qtype", "all")) for s in samples]
        metrics: dict[str, float] = {}
        variants = ("", "blank") if self.baselines else ("",)
        for variant in variants:
            preds = self._generate(model, samples, prompts, variant, max_new_tokens=8)
            acc = [vqa_accuracy(p, r) for p, r in zip(preds, refs, strict=True)]
            tag = f"_{variant}" if variant else ""
            metrics[f"answer/accuracy{tag}"] = sum(acc) / len(acc)
            by_type: dict[str, list[float]] = defaultdict(list)
            for q, a in zip(qtypes, acc, strict=True):
                by_type[q].append(a)
            for q, values in sorted(by_type.items()):
                metrics[f"answer/accuracy{tag}_{q}"] = sum(values) / len(values)
        return metrics

    def _fewshot(self, model, samples) -> dict[str, float]:
        from omnifuse.data.synth.captions import END_OF_CHUNK

        metrics: dict[str, float] = {}
        answers = [s.meta["answer"] for s in samples]
        with_shots, zero = [], []
        for s in samples:
            chunks = s.inputs["text"].split(END_OF_CHUNK)[:-1]  # one per image
            query = chunks[-1].rsplit(" ", 1)[0]  # "<image>Output:" without its answer
            with_shots.append("".join(c + END_OF_CHUNK for c in chunks[:-1]) + query)
            zero.append(query)
        preds = self._generate(model, samples, with_shots, max_new_tokens=4)
        metrics["fewshot/accuracy"] = sum(
            vqa_accuracy(p, [a]) for p, a in zip(preds, answers, strict=True)
        ) / len(samples)
        last_only = [Sample(inputs={"image": [s.inputs["image"][-1]], "text": ""}, meta={}) for s in samples]
        preds0 = self._generate(model, last_only, zero, max_new_tokens=4)
        metrics["fewshot/accuracy_0shot"] = sum(
            vqa_accuracy(p, [a]) for p, a in zip(preds0, answers, strict=True)
        ) / len(samples)
        return metrics

    def evaluate(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, Any]]:
        was = model.training
        model.eval()
        metrics: dict[str, float] = {}
        details: dict[str, Any] = {}
        try:
            if "caption" in self.groups:
                m, d = self._captions(model, self.groups["caption"])
                metrics.update(m)
                details.update(d)
            if "answer" in self.groups:
                metrics.update(self._answers(model, self.groups["answer"]))
            if "fewshot" in self.groups:
                metrics.update(self._fewshot(model, self.groups["fewshot"]))
        finally:
            model.train(was)
        return metrics, details

    def score(self, metrics: dict[str, float]) -> float:
        """Higher is better: CIDEr-D, else answer accuracy, else few-shot accuracy."""
        for key in ("caption/cider", "answer/accuracy", "fewshot/accuracy"):
            for k in (self.prefix + key, key):
                if k in metrics:
                    return float(metrics[k])
        return 0.0
