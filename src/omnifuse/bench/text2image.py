"""`omnifuse bench text2image`: train a DALL-E-style pipeline on the shapes world, judge what it draws.

In one run, from scratch on synthetic scenes of one or two shapes:

1. an image tokenizer (VQ-VAE) on the training renders: reconstruction PSNR and codebook usage;
2. a text-to-image prior over its codes, trained on two caption forms per scene (the canonical
   caption, "a large red circle at the top left", and a relation caption, "a red circle left of
   a blue square"), with the text dropped 10% of the time for classifier-free guidance;
3. two small CLIPs (DualEncoders), each on its own scenes and seed: the *reranker* sorts the N
   candidates of a prompt; the *scorer*, which never ranks anything, gives the CLIP score and
   the image features of the FID;
4. an *attribute judge*: a small CNN trained here on real renders (every colour-shape
   combination, one to three objects) to read the colour and shape in each of the 3 x 3 cells.

Prompts come from test scenes the prior never saw: one-object canonical captions and
two-object relation captions, with scenes holding a colour-shape combination that was held out
of the prior's training reported apart. Rows: the real test renders (the judge's ceiling), the
first sample (N = 1), the CLIP-reranked top-1 of N, and the shuffled-prompt twin (the N = 1
images judged against another prompt of the same group: chance). The FID is computed on the
scorer CLIP's image embeddings, real test renders against generated images; it is not
comparable with Inception FID.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from omnifuse.data.synth.vocab import COLORS, GRID, SHAPES

logger = logging.getLogger("omnifuse.bench")

GROUPS = ("one", "one_heldout", "two", "two_heldout")


@dataclass
class Text2ImageBenchConfig:
    n_scenes: int = 4000
    """Synthetic scenes (80% train; prompts come from the test split)."""
    image_size: int = 32
    grid: int = 8
    """Token grid of the image tokenizer (image_size / grid must be a power of two)."""
    codebook_size: int = 256
    tokenizer_hidden: int = 32
    """Channels of the tokenizer's first conv stage."""
    tokenizer_steps: int = 600
    prior_steps: int = 1500
    prior_hidden: int = 128
    prior_layers: int = 4
    clip_steps: int = 300
    judge_scenes: int = 4000
    judge_steps: int = 600
    prompts_per_group: int = 16
    """Prompts per group (one object, one held-out, two objects, two held-out)."""
    n: int = 16
    """Candidates per prompt for the reranked row."""
    guidance: float = 3.0
    temperature: float = 1.0
    top_k: int = 0
    batch_size: int = 32
    seed: int = 0
    threads: int | None = None
    progress: bool = False


# ------------------------------------------------------------------------------ data
def make_data(out: Path, cfg: Text2ImageBenchConfig) -> dict[str, Any]:
    """Shapes-world scenes with 1-2 objects; manifests keep two caption forms per scene."""
    from omnifuse.data.synth import SynthConfig, generate

    data = out / "data"
    if not (data / "summary.json").exists():
        summary = generate(
            SynthConfig(n=cfg.n_scenes, seed=cfg.seed, image_size=cfg.image_size, max_objects=2),
            data,
            progress=cfg.progress,
        )
        (data / "summary.json").write_text(json.dumps(asdict(summary), default=str))
    for split in ("train", "val", "test"):
        rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines()]
        with open(data / f"{split}_t2i.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps({**r, "captions": r["captions"][:2]}) + "\n")
    return json.loads((data / "summary.json").read_text())


def read(data: Path, split: str):
    from omnifuse.data.readers import read_samples

    return read_samples(str(data / f"{split}_t2i.jsonl"), columns={"image": "image", "text": "captions"})


# ------------------------------------------------------------------------------ training
def train(
    model: nn.Module,
    samples,
    steps: int,
    lr: float,
    run_dir: Path,
    cfg: Text2ImageBenchConfig,
    evaluator=None,
):
    from omnifuse.train.config import DataConfig, TrainConfig
    from omnifuse.train.loop import Trainer

    tc = TrainConfig(
        batch_size=cfg.batch_size,
        max_steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 20),
        weight_decay=0.01,
        log_every=max(1, steps // 10),
        seed=cfg.seed,
        threads=cfg.threads,
        progress=cfg.progress,
        min_lr_ratio=0.1,
    )
    loading = DataConfig(train="train_t2i.jsonl", cache_decoded=True)  # the samples come read already
    trainer = Trainer(model, samples, loading, tc, run_dir, evaluator=evaluator)
    start = time.perf_counter()
    trainer.fit()
    return trainer.unwrapped.eval(), time.perf_counter() - start


def train_tokenizer(data: Path, out: Path, cfg: Text2ImageBenchConfig):
    from omnifuse.data.processors import ImageProcessor, ImageSettings, Processor
    from omnifuse.models.image_tokenizer import ImageTokenizer, ImageTokenizerConfig
    from omnifuse.models.image_tokenizer.build import ImageTokenizerEvaluator

    torch.manual_seed(cfg.seed)
    settings = ImageSettings(size=cfg.image_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = ImageTokenizer(
        ImageTokenizerConfig(
            grid=cfg.grid, codebook_size=cfg.codebook_size, hidden=cfg.tokenizer_hidden, codebook_dim=32
        ),
        Processor({"image": ImageProcessor(settings)}),
    )
    val = read(data, "val")
    artifact = out / "tokenizer" / "artifact"
    if (artifact / "model.safetensors").exists():  # a rerun in the same directory reuses it
        model, seconds = ImageTokenizer.from_pretrained(artifact), float("nan")
    else:
        model, seconds = train(model, read(data, "train"), cfg.tokenizer_steps, 2e-3, out / "tokenizer", cfg)
        model.save_pretrained(artifact)
    metrics = ImageTokenizerEvaluator(val, max_items=500)(model)
    return model, {**metrics, "train_s": seconds}


def train_prior(data: Path, out: Path, tokenizer, cfg: Text2ImageBenchConfig):
    from omnifuse.data.processors import Processor, TextProcessor, build_word_tokenizer
    from omnifuse.data.synth.text import vocabulary
    from omnifuse.models.text_to_image import TextToImage, TextToImageConfig
    from omnifuse.models.text_to_image.build import TextToImageEvaluator

    torch.manual_seed(cfg.seed)
    train_samples = read(data, "train")
    text = TextProcessor(build_word_tokenizer(vocabulary()), max_length=24)
    pcfg = TextToImageConfig(
        image_tokenizer=str(out / "tokenizer" / "artifact"),
        hidden=cfg.prior_hidden,
        layers=cfg.prior_layers,
        heads=4,
        dropout=0.0,
    )
    model = TextToImage(pcfg, tokenizer, Processor({"text": text}))
    model, seconds = train(model, train_samples, cfg.prior_steps, 1e-3, out / "prior", cfg)
    metrics = TextToImageEvaluator(read(data, "val"), max_items=300)(model)
    model.save_pretrained(out / "prior" / "artifact")
    return model, {**metrics, "train_s": seconds}


def train_clip(data: Path, out: Path, name: str, seed: int, train_file: str, cfg: Text2ImageBenchConfig):
    from omnifuse.demos.clip import demo_recipe_dict
    from omnifuse.models import load_model
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    recipe = demo_recipe_dict(data, out, cfg.clip_steps)
    recipe["name"] = name
    recipe["data"].update(train=str(data / train_file), val=str(data / "val.jsonl"), group_size=1)
    recipe["data"]["columns"] = {"image": "image", "text": "captions"}
    recipe["processor"]["image"]["size"] = cfg.image_size
    recipe["model"]["encoders"]["image"]["overrides"]["patch_size"] = 8
    recipe["train"].update(
        batch_size=cfg.batch_size,
        seed=seed,
        threads=cfg.threads,
        progress=cfg.progress,
        checkpoint_every=None,
        eval_every=None,
    )
    recipe["eval"] = {"max_items": 300}
    start = time.perf_counter()
    run_recipe(recipe_from_dict(recipe))
    return load_model(out / name / "best").eval(), time.perf_counter() - start


# ------------------------------------------------------------------------------ the judge
class AttributeJudge(nn.Module):
    """Reads each of the 3 x 3 cells: its colour (or empty) and its shape (or empty)."""

    def __init__(self, width: int = 48):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(GRID),
            nn.Conv2d(2 * width, 2 * width, 1), nn.ReLU(),
        )  # fmt: skip
        self.color = nn.Conv2d(2 * width, len(COLORS) + 1, 1)
        self.shape = nn.Conv2d(2 * width, len(SHAPES) + 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)  # (B, C, 3, 3)
        return self.color(h), self.shape(h)  # (B, 9, 3, 3), (B, 7, 3, 3)

    @torch.no_grad()
    def read(self, images: list[Image.Image]) -> list[list[tuple[str, str, int, int]]]:
        """Per image: the objects seen, (colour, shape, row, col), a cell being an object when
        the judge reads both a colour and a shape there."""
        color, shape = self(to_tensor(images))
        c, s = color.argmax(1), shape.argmax(1)  # (B, 3, 3)
        out = []
        for b in range(len(images)):
            objs = []
            for r in range(GRID):
                for k in range(GRID):
                    if c[b, r, k] > 0 and s[b, r, k] > 0:
                        objs.append((COLORS[c[b, r, k] - 1], SHAPES[s[b, r, k] - 1], r, k))
            out.append(objs)
        return out


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) - 0.5  # (B, 3, H, W)


def train_judge(cfg: Text2ImageBenchConfig) -> tuple[AttributeJudge, dict[str, float]]:
    """On real renders drawn here (every combination, 1-3 objects); accuracy on fresh renders."""
    from omnifuse.data.synth import SynthConfig, render_image, sample_scene

    synth = SynthConfig(n=1, image_size=cfg.image_size, max_objects=3, holdout=[])
    rng = np.random.default_rng(cfg.seed + 7)

    def batch(n: int):
        scenes = [sample_scene(rng, synth) for _ in range(n)]
        color = torch.zeros(n, GRID, GRID, dtype=torch.long)
        shape = torch.zeros(n, GRID, GRID, dtype=torch.long)
        for i, sc in enumerate(scenes):
            for o in sc.objects:
                color[i, o.row, o.col] = COLORS.index(o.color) + 1
                shape[i, o.row, o.col] = SHAPES.index(o.shape) + 1
        return to_tensor([render_image(sc) for sc in scenes]), color, shape

    torch.manual_seed(cfg.seed)
    judge = AttributeJudge()
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=0.01)
    pool = [batch(cfg.batch_size) for _ in range(max(1, cfg.judge_scenes // cfg.batch_size))]
    start = time.perf_counter()
    for step in range(cfg.judge_steps):
        x, c, s = pool[step % len(pool)]
        pc, ps = judge(x)
        loss = nn.functional.cross_entropy(pc, c) + nn.functional.cross_entropy(ps, s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    judge.eval()
    x, c, s = batch(500)
    with torch.no_grad():
        pc, ps = judge(x)
    exact = ((pc.argmax(1) == c) & (ps.argmax(1) == s)).flatten(1).all(1).float().mean()
    return judge, {"scene_exact": float(exact), "train_s": time.perf_counter() - start}


# ------------------------------------------------------------------------------ prompts and scoring
def pick_prompts(data: Path, cfg: Text2ImageBenchConfig) -> dict[str, list[dict[str, Any]]]:
    """Test scenes per group, each with its prompt and what the prompt asks for."""
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    groups: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for r in rows:
        n_obj = r["n_objects"]
        group = ("one" if n_obj == 1 else "two") + ("_heldout" if r["heldout"] else "")
        prompt = r["captions"][0] if n_obj == 1 else r["captions"][1]
        if len(groups[group]) < cfg.prompts_per_group:
            groups[group].append({"prompt": prompt, "objects": r["objects"], "image": str(data / r["image"])})
    return groups


def parse_relation(prompt: str, objects: list[dict[str, Any]]):
    """(a, relation, b) named by a two-object relation caption, objects as dicts; None if unparsed."""
    from omnifuse.data.synth.text import RELATION_PHRASES

    combos = {f"{o['color']} {o['shape']}": o for o in objects}
    for relation, phrases in RELATION_PHRASES.items():
        for phrase in phrases:
            for a_name, a in combos.items():
                for b_name, b in combos.items():
                    if a_name != b_name and f"{a_name} {phrase} a {b_name}" in prompt:
                        return a, relation, b
    return None


def judge_prompt(seen: list[tuple[str, str, int, int]], item: dict[str, Any]) -> dict[str, float]:
    """What of the prompt's request the judged image holds."""
    from omnifuse.data.synth.scene import SceneObject, relation_holds

    objects = item["objects"]
    if len(objects) == 1:
        o = objects[0]
        return {
            "color": float(any(c == o["color"] for c, _, _, _ in seen)),
            "shape": float(any(s == o["shape"] for _, s, _, _ in seen)),
            "position": float(any((r, k) == (o["row"], o["col"]) for _, _, r, k in seen)),
            "color_shape": float(any((c, s) == (o["color"], o["shape"]) for c, s, _, _ in seen)),
            "all": float(
                any((c, s, r, k) == (o["color"], o["shape"], o["row"], o["col"]) for c, s, r, k in seen)
            ),
        }
    parsed = parse_relation(item["prompt"], objects)
    a, relation, b = parsed if parsed else (objects[0], None, objects[1])
    found_a = [x for x in seen if (x[0], x[1]) == (a["color"], a["shape"])]
    found_b = [x for x in seen if (x[0], x[1]) == (b["color"], b["shape"])]
    both = bool(found_a and found_b)
    rel = False
    if both and relation is not None:

        def obj(x):
            return SceneObject(x[1], x[0], "small", x[2], x[3], 0, 0)

        rel = any(relation_holds(obj(p), obj(q), relation) for p in found_a for q in found_b)
    return {"both_objects": float(both), "relation": float(rel)}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


# ------------------------------------------------------------------------------ the benchmark
def bench_text2image(out_dir: str | Path, cfg: Text2ImageBenchConfig | None = None) -> dict[str, Any]:
    from omnifuse.bench.infer import machine_info
    from omnifuse.generation import GenerationSettings
    from omnifuse.models.text_to_image import clip_scores, image_grid

    cfg = cfg or Text2ImageBenchConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    make_data(out, cfg)
    data = out / "data"
    timings["data_s"] = time.perf_counter() - started

    tokenizer, tok_metrics = train_tokenizer(data, out, cfg)
    logger.info("tokenizer: %s", tok_metrics)
    prior, prior_metrics = train_prior(data, out, tokenizer, cfg)
    logger.info("prior: %s", prior_metrics)
    # Two CLIPs on the training scenes: the reranker on the prior's two caption forms, the scorer
    # with another seed on all six caption forms; they share no weights and no batches.
    reranker, timings["reranker_s"] = train_clip(
        data, out, "clip_rerank", cfg.seed + 1, "train_t2i.jsonl", cfg
    )
    scorer, timings["scorer_s"] = train_clip(data, out, "clip_score", cfg.seed + 2, "train.jsonl", cfg)
    judge, judge_metrics = train_judge(cfg)
    logger.info("judge: %s", judge_metrics)

    groups = pick_prompts(data, cfg)
    settings = GenerationSettings(
        strategy="sample", temperature=cfg.temperature, top_k=cfg.top_k, seed=cfg.seed
    )
    rows: list[dict[str, Any]] = []
    grid_rows: list[Image.Image] = []
    features: dict[str, list[np.ndarray]] = {"real": [], "n1": [], "rerank": []}
    gen_start = time.perf_counter()
    for group, items in groups.items():
        if not items:
            continue
        prompts = [it["prompt"] for it in items]
        real = [Image.open(it["image"]).convert("RGB") for it in items]
        gen = prior.generate(prompts, n=cfg.n, settings=settings, guidance_scale=cfg.guidance, batch_size=128)
        first = gen.images[:: cfg.n]  # N = 1: each prompt's first sample, before any ranking
        scores = clip_scores(reranker, gen.prompts, gen.images).view(len(items), cfg.n)
        best = [gen.images[i * cfg.n + int(scores[i].argmax())] for i in range(len(items))]
        rng = np.random.default_rng(cfg.seed)
        shuffled = [items[j] for j in np.roll(rng.permutation(len(items)), 1)] if len(items) > 1 else items
        for name, images, targets in (
            ("real renders", real, items),
            ("N = 1", first, items),
            (f"reranked top-1 of {cfg.n}", best, items),
            ("shuffled prompts (chance)", first, shuffled),
        ):
            seen = judge.read(images)
            judged = mean_scores([judge_prompt(s, t) for s, t in zip(seen, targets)])
            clip = float(clip_scores(scorer, [t["prompt"] for t in targets], images).mean())
            rows.append({"group": group, "row": name, **judged, "clip_score": clip, "prompts": len(items)})
        features["real"].append(embed_images(scorer, real))
        features["n1"].append(embed_images(scorer, first))
        features["rerank"].append(embed_images(scorer, best))
        for i in range(min(2, len(items))):  # the real render, then candidates best-first by the reranker
            order = torch.argsort(scores[i], descending=True)[:8].tolist()
            grid_rows.extend([real[i], *(gen.images[i * cfg.n + j] for j in order)])
    timings["generate_s"] = time.perf_counter() - gen_start
    real_f = np.concatenate(features["real"])
    fid = {
        "N = 1": frechet_distance(real_f, np.concatenate(features["n1"])),
        f"reranked top-1 of {cfg.n}": frechet_distance(real_f, np.concatenate(features["rerank"])),
    }
    grid_path = out / "grid.png"
    grid = image_grid(grid_rows, columns=1 + min(cfg.n, 8))
    grid.resize((grid.width * 3, grid.height * 3), Image.NEAREST).save(grid_path)
    timings["total_s"] = time.perf_counter() - started
    result = {
        "config": asdict(cfg),
        "machine": machine_info(torch.get_num_threads()),
        "tokenizer": tok_metrics,
        "prior": prior_metrics,
        "judge": judge_metrics,
        "rows": rows,
        "fid": fid,
        "timings": timings,
        "grid": str(grid_path),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


@torch.no_grad()
def embed_images(clip: nn.Module, images: list[Image.Image]) -> np.ndarray:
    batch = clip.processor({"image": images})
    return clip.encode("image", batch).numpy()


def format_table(result: dict[str, Any]) -> str:
    """Markdown tables: the judged attributes per group and row, then FID and the tokenizer."""
    lines = []
    one = [r for r in result["rows"] if r["group"].startswith("one")]
    two = [r for r in result["rows"] if r["group"].startswith("two")]
    if one:
        lines += [
            "| prompts | row | colour | shape | position | colour+shape | all three | CLIP score |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in one:
            lines.append(
                f"| {r['group'].replace('_', ' ')} ({r['prompts']}) | {r['row']} | {r['color']:.2f} | {r['shape']:.2f} "
                f"| {r['position']:.2f} | {r['color_shape']:.2f} | {r['all']:.2f} | {r['clip_score']:.3f} |"
            )
        lines.append("")
    if two:
        lines += ["| prompts | row | both objects | relation | CLIP score |", "|---|---|---|---|---|"]
        for r in two:
            lines.append(
                f"| {r['group'].replace('_', ' ')} ({r['prompts']}) | {r['row']} | {r['both_objects']:.2f} "
                f"| {r['relation']:.2f} | {r['clip_score']:.3f} |"
            )
        lines.append("")
    lines.append("| FID (scorer-CLIP image features, not Inception) | value |")
    lines.append("|---|---|")
    lines += [f"| {k} | {v:.4f} |" for k, v in result["fid"].items()]
    tok = result["tokenizer"]
    lines.append("")
    lines.append(
        f"tokenizer: PSNR {tok['val/psnr']:.1f} dB, MSE {tok['val/mse']:.5f}, perplexity {tok['val/perplexity']:.1f}, "
        f"codes used {tok['val/code_usage']:.2f}; prior val image loss {result['prior']['val/image_loss']:.3f} "
        f"(null prompt {result['prior']['val/image_loss_null']:.3f}); judge exact-scene accuracy on real renders "
        f"{result['judge']['scene_exact']:.3f}"
    )
    t = result["timings"]
    lines.append(
        f"wall time {t['total_s'] / 60:.1f} min ({', '.join(f'{k} {v:.0f}s' for k, v in t.items())})"
    )
    return "\n".join(lines)
