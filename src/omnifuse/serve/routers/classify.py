"""`POST /v1/classify`: zero-shot over the request's labels, or the model's trained head.

With `labels`, a model that can `zero_shot` embeds the items and one prompt per label and
template, and scores them (CLIP, `omnifuse.runtime.base.zero_shot_probs`). Without labels, a
model that can `classify` runs its head over one item per index of every modality sent.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from omnifuse.runtime.base import zero_shot_probs
from omnifuse.serve import schemas as s
from omnifuse.serve.errors import RequestError
from omnifuse.serve.inputs import ParsedRequest, load_media, parse_request
from omnifuse.serve.limits import check_texts
from omnifuse.serve.routers.embed import images_of
from omnifuse.serve.routers.registry import register_router
from omnifuse.serve.state import ServeState


def _one_placeholder(template: str) -> bool:
    """Whether `template.format(label)` fills exactly one bare `{}` and nothing else (a client's
    `{0}`, `{x}`, `{:>9999999}` or lone `{` would otherwise fail, or grow, inside the server)."""
    try:
        fields = [
            (name, spec, conv)
            for _, name, spec, conv in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError:  # a lone '{' or '}'
        return False
    return fields == [("", "", None)]


def _head_task(predictor, modalities: tuple[str, ...], items: list[dict[str, Any]]) -> list[Any]:
    """Batched task: items are dicts modality -> value; one ranked label list per item."""
    return predictor.classify({m: [item[m] for item in items] for m in modalities})


@register_router("classify", requires=("zero_shot", "classify"))
def build(state: ServeState) -> APIRouter:
    router = APIRouter(tags=["model"])
    config, limits = state.config, state.config.limits
    state.add_task("classify", _head_task)

    async def zero_shot(request: Request, parsed: ParsedRequest, modalities: list[str]) -> s.ClassifyResponse:
        if not state.can("zero_shot") or "text" not in state.predictor.modalities:
            raise RequestError(
                400,
                f"zero-shot labels need a model that can 'zero_shot' with a text tower (a dual encoder); "
                f"this {state.predictor.model_type} offers: {', '.join(sorted(state.capabilities))}",
            )
        if len(modalities) != 1:
            raise RequestError(
                400,
                "zero-shot classifies one modality at a time: send texts, images, audio or videos, not a mix",
            )
        labels = check_texts(parsed.labels, limits, "labels")
        templates = parsed.templates or state.predictor.zero_shot_templates
        bad = [t for t in templates if not _one_placeholder(t)]
        if not templates or bad:
            raise RequestError(
                422,
                "every template needs a '{}' placeholder for the label, exactly one, and no other "
                f"braces (write '{{{{' for a literal brace); got {bad[0][:100]!r}"
                if bad
                else "every template needs a '{}' placeholder for the label",
            )
        if len(labels) > limits.max_labels:
            raise RequestError(413, f"too many labels: {len(labels)}; the limit is {limits.max_labels}")
        prompts = [t.format(label) for label in labels for t in templates]
        if len(prompts) > config.queue_size:
            raise RequestError(
                413, f"labels x templates = {len(prompts)} prompts; the limit is {config.queue_size}"
            )
        check_texts(prompts, limits, "prompts")
        (modality,) = modalities
        if modality == "image":
            contents, values = await images_of(parsed, limits)
        elif modality in parsed.media:
            contents, values = await load_media(parsed, modality, limits)
        else:
            contents = values = parsed.texts
        items = await state.embed(request, modality, values, contents)  # (N, E)
        prompt_emb = await state.embed(request, "text", prompts, prompts)  # (C * T, E)
        probs = zero_shot_probs(items, prompt_emb, len(labels), state.predictor.logit_scale)  # (N, C)
        k = min(parsed.top_k or len(labels), len(labels))
        order = np.argsort(-probs, axis=1)[:, :k]
        results = [
            [s.LabelScoreOut(label=labels[j], score=float(row[j])) for j in idx]
            for row, idx in zip(probs, order)
        ]
        return s.ClassifyResponse(modality=modality, results=results)

    async def head(request: Request, parsed: ParsedRequest) -> s.ClassifyResponse:
        predictor = state.predictor
        if not state.can("classify") or not predictor.class_names:
            raise RequestError(
                422, "zero-shot classification needs 'labels' (this model has no trained head)"
            )
        inputs: dict[str, list[Any]] = {}
        if parsed.texts:
            inputs["text"] = parsed.texts
        if parsed.images or parsed.image_urls:
            inputs["image"] = (await images_of(parsed, limits))[1]
        if len({len(v) for v in inputs.values()}) != 1:
            raise RequestError(400, "a fusion classifier needs as many texts as images (one pair per item)")
        n = len(next(iter(inputs.values())))
        items = [{m: v[i] for m, v in inputs.items()} for i in range(n)]
        scored = await state.submit(request, ("classify", tuple(sorted(inputs))), items)
        k = parsed.top_k or len(predictor.class_names)
        results = [[s.LabelScoreOut(label=x.label, score=x.score) for x in row[:k]] for row in scored]
        return s.ClassifyResponse(modality="+".join(sorted(inputs)), results=results)

    @router.post(
        "/v1/classify",
        response_model=s.ClassifyResponse,
        responses=s.ERROR_RESPONSES,
        openapi_extra=s.request_body(s.ClassifyRequest, s.CLASSIFY_FORM),
    )
    async def classify(request: Request):
        """Zero-shot over the given labels (dual encoder), or the trained head (classifier)."""
        parsed = await parse_request(request, s.ClassifyRequest, limits, set(s.CLASSIFY_FORM))
        modalities = [
            m for m, has in (("image", parsed.images or parsed.image_urls), ("text", parsed.texts)) if has
        ] + sorted(parsed.media)
        for m in modalities:
            state.check_modality(m)
        if parsed.labels:
            return await zero_shot(request, parsed, modalities)
        return await head(request, parsed)

    return router
