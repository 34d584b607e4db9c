"""The OTLP mapping configuration: which span or resource attributes become which event fields.

A small YAML file (``inferwatch run otlp --config otlp.yaml``); every key is optional and the
defaults below fit spans of the GenAI semantic conventions (``gen_ai.*``), OpenLLMetry and
OpenInference (``llm.*``). Attribute lists are tried in order, span attributes first, then the
resource's; the first one present wins. Example::

    segment:                 # segment key -> attributes (replaces the default table)
      service: [service.name]
      environment: [deployment.environment.name, deployment.environment]
      tenant: [app.tenant]
    model: [inferwatch.model, gen_ai.request.model, gen_ai.response.model, llm.model_name]
    model_version: [inferwatch.model_version, gen_ai.response.model]
    default_version: unknown
    max_text_chars: 100000
    redact: {llm_text: hash}  # the SDK's redaction options (inferwatch.sdk.redaction)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inferwatch.contract import limits as L
from inferwatch.otlp.errors import ConfigError

AttrList = Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(min_length=1, max_length=32)]

DEFAULT_SEGMENT: dict[str, list[str]] = {
    "service": ["service.name"],
    "environment": ["deployment.environment.name", "deployment.environment"],
    "provider": ["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"],
}


class OtlpMapping(BaseModel):
    """How spans become ``prediction.v1`` events (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: dict[str, AttrList] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_SEGMENT.items()},
                                         max_length=L.MAX_SEGMENT)
    model: AttrList = Field(default_factory=lambda: [
        "inferwatch.model", "gen_ai.request.model", "gen_ai.response.model", "llm.model_name"])
    model_version: AttrList = Field(default_factory=lambda: ["inferwatch.model_version", "gen_ai.response.model"])
    default_version: str = Field("unknown", min_length=1, max_length=L.VERSION_MAX, pattern=L.NAME_PATTERN)
    prediction_id: AttrList = Field(default_factory=lambda: ["inferwatch.prediction_id"])
    token_logprobs: AttrList = Field(default_factory=lambda: [
        "inferwatch.llm.token_logprobs", "gen_ai.response.token_logprobs", "llm.token_logprobs"])
    finish_reason: AttrList = Field(default_factory=lambda: [
        "gen_ai.response.finish_reasons", "gen_ai.completion.0.finish_reason", "llm.response.finish_reason",
        "llm.output_messages.0.message.finish_reason"])
    capture_text: bool = Field(True, description="Read prompt and completion texts (False: neither is read).")
    max_text_chars: int = Field(100_000, ge=0, le=L.LLM_TEXT_MAX,
                                description="Longer prompts/completions are cut (completion_chars keeps the length).")
    redact: dict[str, Any] | None = Field(None, description="The SDK's redaction options, e.g. {llm_text: hash}.")

    @field_validator("segment")
    @classmethod
    def _segment_keys(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        import re

        for k in v:
            if not (1 <= len(k) <= L.NAME_MAX) or not re.fullmatch(L.NAME_FULLMATCH, k):
                raise ValueError(f"segment key {k!r} is not a name ({L.NAME_ALPHABET}, 1..{L.NAME_MAX} characters)")
        return v


def load_mapping(path: Path | str | None) -> OtlpMapping:
    """The mapping in the YAML file at ``path``, or the defaults for ``None``; :class:`ConfigError` names
    the file and the offending key."""
    if path is None:
        return OtlpMapping()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the OTLP mapping: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the OTLP mapping must be a mapping of options")
    try:
        return OtlpMapping.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise ConfigError(f"{path}: {where}: {first.get('msg')}") from None
