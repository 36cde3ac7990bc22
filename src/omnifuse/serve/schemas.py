"""Request and response bodies (pydantic), which also make the OpenAPI schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedRequest(_Strict):
    texts: list[str] = Field(default_factory=list, description="texts to embed")
    images: list[str] = Field(default_factory=list, description="base64-encoded images (PNG, JPEG, WEBP)")
    image_urls: list[str] = Field(
        default_factory=list, description="image URLs; only under a prefix allowed with --allow-url-prefix"
    )
    audios: list[str] = Field(default_factory=list, description="base64-encoded audio (wav, flac, ogg)")
    videos: list[str] = Field(
        default_factory=list, description="base64-encoded videos (mp4 and other containers)"
    )


class ClassifyRequest(EmbedRequest):
    labels: list[str] = Field(default_factory=list, description="zero-shot labels (dual encoders)")
    templates: list[str] | None = Field(default=None, description="prompt templates with a '{}' placeholder")
    top_k: int | None = Field(default=None, ge=1, description="keep the k best labels per item")


class DecodingFields(_Strict):
    """Sampling controls shared by the text-generation endpoints (as in `omnifuse generate`)."""

    max_new_tokens: int = Field(default=32, ge=1, description="at most the server's limit (4xx above it)")
    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    num_beams: int = Field(default=4, ge=1, le=16)
    temperature: float = Field(default=1.0, gt=0, le=100)
    top_k: int = Field(default=0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    stream: bool = Field(default=False, description="server-sent events, one per decoded piece (one image)")


class CaptionRequest(DecodingFields):
    images: list[str] = Field(default_factory=list, description="base64-encoded images (PNG, JPEG, WEBP)")
    image_urls: list[str] = Field(default_factory=list, description="image URLs (allow-listed prefixes only)")


class AnswerRequest(DecodingFields):
    max_new_tokens: int = Field(default=8, ge=1, description="at most the server's limit (4xx above it)")
    image: str = Field(description="a base64-encoded image")
    question: str = Field(min_length=1, description="a question about the image")


class GeneratedText(BaseModel):
    text: str
    finish_reason: str = Field(description="eos, stop or length")


class GenerateTextResponse(BaseModel):
    results: list[GeneratedText]
    tokens: int = Field(description="new tokens generated, all results together")


class SearchRequest(_Strict):
    text: str | None = Field(default=None, description="a text query")
    image: str | None = Field(default=None, description="a base64-encoded image query")
    image_url: str | None = Field(default=None, description="an image URL query (allow-listed prefixes only)")
    k: int = Field(default=10, ge=1, description="number of results")


class GenerateImageRequest(_Strict):
    prompt: str = Field(min_length=1, description="what to draw")
    n: int = Field(default=4, ge=1, description="images to generate (at most the server's max_images)")
    guidance_scale: float = Field(
        default=1.0, ge=0, description="classifier-free guidance (1: off; at most the server's limit)"
    )
    temperature: float = Field(default=1.0, gt=0, le=10)
    top_k: int = Field(default=0, ge=0, description="sample among the k likeliest codes (0: all)")
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, description="the same seed gives the same images")
    format: str = Field(
        default="base64",
        pattern="^(base64|png)$",
        description="base64: JSON with one PNG per image; png: one grid",
    )


class GenerateImageResponse(BaseModel):
    prompt: str
    images: list[str] = Field(description="base64-encoded PNGs")
    width: int
    height: int
    seed: int | None = None


class EmbedResponse(BaseModel):
    dim: int
    fingerprint: str
    text: list[list[float]] = Field(default_factory=list, description="one embedding per input text")
    image: list[list[float]] = Field(default_factory=list, description="one embedding per input image")
    audio: list[list[float]] = Field(default_factory=list, description="one embedding per input audio clip")
    video: list[list[float]] = Field(default_factory=list, description="one embedding per input video")


class LabelScoreOut(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    modality: str
    results: list[list[LabelScoreOut]] = Field(description="per item, labels sorted by score")


class SearchHitOut(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any]
    thumbnail: str | None = Field(default=None, description="URL of the item's thumbnail, if it has an image")


class SearchResponse(BaseModel):
    modality: str
    results: list[SearchHitOut]


class ErrorResponse(BaseModel):
    error: str


def multipart_schema(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"type": "object", "properties": fields}


def request_body(model: type[BaseModel], form_fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """OpenAPI requestBody taking JSON (the pydantic model) or a multipart form."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema()},
                "multipart/form-data": {"schema": multipart_schema(form_fields)},
            },
        }
    }


TEXT_FIELD = {"type": "array", "items": {"type": "string"}}
FILE_FIELD = {"type": "array", "items": {"type": "string", "format": "binary"}}
EMBED_FORM = {"text": TEXT_FIELD, "image": FILE_FIELD, "audio": FILE_FIELD, "video": FILE_FIELD}
CLASSIFY_FORM = {**EMBED_FORM, "labels": TEXT_FIELD, "top_k": {"type": "integer", "minimum": 1}}
SEARCH_FORM = {
    "text": {"type": "string"},
    "image": {"type": "string", "format": "binary"},
    "k": {"type": "integer", "minimum": 1},
}
ERROR_RESPONSES = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in {
        400: "bad input",
        401: "missing or invalid API key",
        404: "not found",
        408: "took longer than the server's time limit",
        413: "over a size limit",
        415: "unsupported content type or image format",
        422: "invalid fields",
        429: "queue full",
        503: "not ready, overloaded or shutting down",
    }.items()
}
