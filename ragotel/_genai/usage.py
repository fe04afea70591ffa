"""One model call's token usage, the same way for steps and HTTP calls: span attributes and metric records.

``gen_ai.client.token.usage`` gets one record per token type the provider reported: ``input`` and
``output`` (the conventions' two), and, when above zero, ``cache_read``, ``cache_write`` and
``reasoning``. Those three are parts of ``input`` and ``output`` (the conventions count cached tokens in
the input and reasoning tokens in the output), so a total sums ``input`` and ``output`` only.
"""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._genai.protocol import Usage
from ragotel.semconv import TokenType


def span_attributes(usage: Usage, out: dict[str, AttributeValue]) -> None:
    """Add the ``gen_ai.usage.*`` attributes of ``usage`` to ``out`` (the cache-write key as the chosen conventions
    spell it)."""
    if usage.input is not None:
        out[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input
    if usage.output is not None:
        out[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output
    if usage.cache_read is not None:
        out[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read
    if usage.cache_write is not None:
        # Renamed by the latest conventions; the default keeps the released name.
        latest = runtime.current.genai_latest
        out[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS if latest else sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = (
            usage.cache_write)
    if usage.reasoning is not None:
        out[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning
    if runtime.current.openinference:
        out.update(openinference_tokens(usage.input, usage.output))


_INPUT, _OUTPUT = TokenType.INPUT.value, TokenType.OUTPUT.value
_PARTS = (TokenType.CACHE_READ.value, TokenType.CACHE_WRITE.value, TokenType.REASONING.value)


def token_records(usage: Usage) -> list[tuple[int, str]]:
    """``(tokens, gen_ai.token.type)`` for each record of ``gen_ai.client.token.usage``."""
    records: list[tuple[int, str]] = []
    if usage.input is not None:
        records.append((usage.input, _INPUT))
    if usage.output is not None:
        records.append((usage.output, _OUTPUT))
    if usage.cache_read or usage.cache_write or usage.reasoning:
        for tokens, kind in zip(usage[2:], _PARTS, strict=True):
            if tokens:
                records.append((tokens, kind))
    return records


def openinference_tokens(input_tokens: int | None, output_tokens: int | None) -> dict[str, AttributeValue]:
    """OpenInference's token counts (``RAGOTEL_OPENINFERENCE``)."""
    attrs: dict[str, AttributeValue] = {}
    if input_tokens is not None:
        attrs[sc.OI_TOKEN_COUNT_PROMPT] = input_tokens
    if output_tokens is not None:
        attrs[sc.OI_TOKEN_COUNT_COMPLETION] = output_tokens
    if input_tokens is not None and output_tokens is not None:
        attrs[sc.OI_TOKEN_COUNT_TOTAL] = input_tokens + output_tokens
    return attrs
