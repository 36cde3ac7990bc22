"""`omnifuse bench generate`: decode tokens/s of every generative kind, in one run.

For each workload (a generative kind's `decode_workload` hook, plus the bare language model as a
reference row) it times greedy decoding at each batch size, with and without the KV cache, under
each speed configuration:

- `eager-fp32`: PyTorch eager, fp32 weights (the baseline every ratio is against);
- `bf16-autocast`: eager under `torch.autocast("cpu", bfloat16)`;
- `bf16-weights`: a copy of the model cast to bfloat16;
- `int8-dynamic`: `torch.ao` dynamic int8 quantisation of every `nn.Linear` (weights int8,
  activations quantised per batch).

Every call decodes exactly `max_new_tokens` tokens per sequence (`min_new_tokens` is set equal),
so tokens/s compare like with like. A kind joins by adding `decode_workload=...` to its
`register_model_kind` (see :class:`omnifuse.generation.DecodeWorkload`).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from omnifuse.bench.infer import machine_info
from omnifuse.generation import DecodeWorkload, GenerationSettings, ensure_pad_token, hf_generate, left_pad

CONFIGS = ("eager-fp32", "bf16-autocast", "bf16-weights", "int8-dynamic")
DESCRIPTIONS = {
    "eager-fp32": "PyTorch eager, fp32",
    "bf16-autocast": "eager, torch.autocast('cpu', bfloat16)",
    "bf16-weights": "eager, model cast to bfloat16",
    "int8-dynamic": "eager, torch.ao dynamic int8 nn.Linear",
}


def prepare(model: nn.Module, config: str) -> tuple[nn.Module, Callable[[], Any]]:
    """The model for `config` (a copy when it changes weights) and the context to decode in."""
    if config == "eager-fp32":
        return model, nullcontext
    if config == "bf16-autocast":
        return model, lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    if config == "bf16-weights":
        return copy.deepcopy(model).to(torch.bfloat16), nullcontext
    if config == "int8-dynamic":
        with warnings.catch_warnings():  # torch.ao eager quantisation is deprecated in favour of torchao
            warnings.simplefilter("ignore")
            quantized = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8
            )
        return quantized, nullcontext
    raise ValueError(f"unknown decode configuration '{config}'; known: {list(CONFIGS)}")


# ------------------------------------------------------------------ the reference row: the bare LM
def lm_workload(lm: nn.Module | None = None, tokenizer=None, max_new_tokens: int = 32) -> DecodeWorkload:
    """The language model alone (text prompt, no images): the reference every kind is compared to.

    Default: a from-scratch GPT-2 (4 layers, hidden 256) with GPT-2's byte-level tokenizer shape
    faked by a small word vocabulary, so nothing is downloaded.
    """
    if lm is None:
        from transformers import GPT2Config, GPT2LMHeadModel

        lm = GPT2LMHeadModel(
            GPT2Config(n_embd=256, n_layer=4, n_head=4, vocab_size=1024, n_positions=256)
        ).eval()
    vocab = int(lm.config.vocab_size)

    def inputs(batch_size: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(batch_size)
        rows = [torch.randint(3, vocab, (12,), generator=g).tolist() for _ in range(batch_size)]
        ids, mask = left_pad(rows, 0)
        return {"input_ids": ids, "attention_mask": mask}

    def run(model: nn.Module, batch: dict[str, Any], settings: GenerationSettings) -> int:
        tok = tokenizer or _IdTokenizer()
        ensure_pad_token(tok)
        out = hf_generate(model, tok, batch["input_ids"], batch["attention_mask"], settings, eos_token_id=[])
        return out.new_tokens

    size = f"{lm.config.model_type} {getattr(lm.config, 'n_layer', '')}x{getattr(lm.config, 'n_embd', '')}"
    return DecodeWorkload(f"language model only ({size})", lm, inputs, run, max_new_tokens)


class _IdTokenizer:
    """Decodes ids as numbers: enough for timing a bare LM without a tokenizer file."""

    pad_token_id = 0
    eos_token_id = None
    eos_token = None
    pad_token = "<0>"

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return " ".join(str(i) for i in ids)

    def batch_decode(self, rows, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(r) for r in rows]


def kind_workloads(kinds: Sequence[str] | None = None) -> list[DecodeWorkload]:
    """A fresh benchmark-sized workload per registered kind that has a `decode_workload` hook."""
    import omnifuse.models  # noqa: F401 - registers every kind
    from omnifuse.models.registry import MODEL_KINDS

    hooks = {
        n: s.extras["decode_workload"]
        for n, s in sorted(MODEL_KINDS.items())
        if "decode_workload" in s.extras
    }
    if kinds:
        unknown = [k for k in kinds if k not in hooks]
        if unknown:
            raise ValueError(f"no decode workload for kind(s) {unknown}; kinds with one: {sorted(hooks)}")
        hooks = {k: hooks[k] for k in kinds}
    workloads = []
    for hook in hooks.values():
        made = hook(None)
        workloads.extend(made if isinstance(made, list) else [made])
    return workloads


def model_workload(path: str) -> DecodeWorkload:
    """The workload of a trained artifact (its kind's hook applied to it)."""
    from omnifuse.models import load_model
    from omnifuse.models.registry import spec_of

    model = load_model(path)
    spec = spec_of(model)
    if "decode_workload" not in spec.extras:
        raise ValueError(f"{path} holds a {spec.name}, which has no decode workload (not a generative kind)")
    return spec.extras["decode_workload"](model)


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def time_decode(
    workload: DecodeWorkload,
    model: nn.Module,
    context: Callable[[], Any],
    batch_size: int,
    use_cache: bool,
    iters: int,
    budget_s: float,
    warmup: int = 1,
) -> float:
    """Tokens/s of `model` decoding `workload.max_new_tokens` per sequence at `batch_size`."""
    n = workload.max_new_tokens
    settings = GenerationSettings(max_new_tokens=n, min_new_tokens=n, use_cache=use_cache)
    batch = workload.inputs(batch_size)
    with context():
        for _ in range(warmup):
            workload.run(model, batch, settings)
        tokens, elapsed, done = 0, 0.0, 0
        while done < max(1, iters) and (done == 0 or elapsed < budget_s):
            start = time.perf_counter()
            tokens += workload.run(model, batch, settings)
            elapsed += time.perf_counter() - start
            done += 1
    return tokens / elapsed


def bench_generate(
    workloads: Sequence[DecodeWorkload],
    batch_sizes: Sequence[int] = (1, 8),
    configs: Sequence[str] = CONFIGS,
    caches: Sequence[bool] = (True, False),
    iters: int = 3,
    budget_s: float = 10.0,
    warmup: int = 1,
    threads: int | None = None,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Time every (workload, configuration, batch size, cache) cell; ratios against eager fp32."""
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown decode configuration(s) {unknown}; known: {list(CONFIGS)}")
    rows: list[dict[str, Any]] = []
    with _threads(threads), torch.inference_mode():
        for workload in workloads:
            workload.model.eval()
            for config in configs:
                try:
                    model, context = prepare(workload.model, config)
                except Exception as err:  # noqa: BLE001 - a configuration this machine cannot run
                    rows.append({"workload": workload.name, "config": config, "error": str(err)})
                    continue
                for bs in batch_sizes:
                    for cache in caches:
                        tps = time_decode(workload, model, context, bs, cache, iters, budget_s, warmup)
                        rows.append(
                            {
                                "workload": workload.name,
                                "config": config,
                                "batch": bs,
                                "kv_cache": cache,
                                "tokens_per_s": tps,
                            }
                        )
                        if progress:
                            progress(
                                f"{workload.name} | {config} | batch {bs} | cache {cache}: {tps:.1f} tok/s"
                            )
    base = {
        (r["workload"], r["batch"], r["kv_cache"]): r["tokens_per_s"]
        for r in rows
        if r["config"] == "eager-fp32" and "tokens_per_s" in r
    }
    for r in rows:
        key = (r["workload"], r.get("batch"), r.get("kv_cache"))
        if key in base and "tokens_per_s" in r:
            r["vs_eager_fp32"] = r["tokens_per_s"] / base[key]
    fastest = {}
    for r in rows:
        if "tokens_per_s" not in r:
            continue
        key = f"{r['workload']} | batch {r['batch']} | cache {r['kv_cache']}"
        if key not in fastest or r["tokens_per_s"] > fastest[key]["tokens_per_s"]:
            fastest[key] = {
                "config": r["config"],
                "tokens_per_s": r["tokens_per_s"],
                "vs_eager_fp32": r.get("vs_eager_fp32"),
            }
    return {
        "rows": rows,
        "fastest": fastest,
        "configs": {c: DESCRIPTIONS[c] for c in configs},
        "machine": machine_info(torch.get_num_threads() if not threads else threads),
    }
