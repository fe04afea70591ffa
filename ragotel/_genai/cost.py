"""Token cost: a price table per model, turned into the ``rag.cost.usd`` counter.

Two ways to price a model:

* **API price** — USD per million input and output tokens; prompt-cache reads and writes at their own
  price when the table gives one (else at the input price)::

      cost = (input_tokens - cache_read - cache_write) / 1e6 * input_per_million
             + cache_read / 1e6 * cached_input_per_million + cache_write / 1e6 * cache_write_per_million
             + output_tokens / 1e6 * output_per_million

* **Self-hosted** — what the GPU costs per hour and how many output tokens per second one GPU
  sustains at your usual load (measure it with ``ragotel bench``)::

      cost = output_tokens / (tokens_per_second * 3600) * gpu_hour_usd

  Prompt tokens add no separate term: their prefill time is already inside the measured throughput.

Both terms add up when both are given. Load a table from code or from a JSON/TOML file::

    ragotel.configure(prices={"tiny-llama": ModelPrice(gpu_hour_usd=2.5, tokens_per_second=900)})
    ragotel.configure(prices="prices.toml")   # or RAGOTEL_PRICES_FILE=prices.toml

    # prices.toml
    [models."gpt-4o-mini"]
    input_per_million = 0.15
    cached_input_per_million = 0.075
    output_per_million = 0.60
    [models."meta-llama/Llama-3.1-8B-Instruct"]
    gpu_hour_usd = 2.5
    tokens_per_second = 1200

A ``"*"`` entry prices every model not listed. Models with no price record no cost.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import settings
from ragotel._core.instruments import Instruments
from ragotel._core.safe import report_internal_error
from ragotel._genai.protocol import Usage


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Price of one model. Leave out what does not apply."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0
    gpu_hour_usd: float = 0.0
    tokens_per_second: float = 0.0
    cached_input_per_million: float | None = None
    """Input tokens read from the prompt cache; ``None``: priced as input."""
    cache_write_per_million: float | None = None
    """Input tokens written to the prompt cache; ``None``: priced as input."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.default is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{field.name} must be a number >= 0, got {value!r}")
        if self.gpu_hour_usd and not self.tokens_per_second:
            raise ValueError("gpu_hour_usd needs tokens_per_second (the GPU's output-token capacity)")

    def cost(self, input_tokens: int, output_tokens: int, *, cache_read: int = 0, cache_write: int = 0) -> float:
        """USD for one call; ``input_tokens`` includes the cached ones, as the conventions count them."""
        cached = self.cached_input_per_million
        written = self.cache_write_per_million
        usd = (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1e6
        if cached is not None and cache_read:
            usd += cache_read * (cached - self.input_per_million) / 1e6
        if written is not None and cache_write:
            usd += cache_write * (written - self.input_per_million) / 1e6
        if self.gpu_hour_usd:
            usd += output_tokens / (self.tokens_per_second * 3600.0) * self.gpu_hour_usd
        return max(usd, 0.0)


class PriceTable:
    """Prices by model name, with ``"*"`` as the fallback."""

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = dict(prices or {})

    def __len__(self) -> int:
        return len(self._prices)

    def price(self, model: str | None) -> ModelPrice | None:
        if model is not None and model in self._prices:
            return self._prices[model]
        return self._prices.get("*")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PriceTable:
        """From ``{"models": {name: {field: value}}}`` or directly ``{name: {field: value}}``."""
        models = data.get("models", data)
        if not isinstance(models, Mapping):
            raise ValueError("price table: 'models' must be a table of model name -> prices")
        table: dict[str, ModelPrice] = {}
        for name, entry in models.items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"price table: entry for {name!r} must be a table")
            unknown = set(entry) - {f.name for f in fields(ModelPrice)}
            if unknown:
                raise ValueError(f"price table: unknown fields for {name!r}: {sorted(unknown)}")
            table[str(name)] = ModelPrice(**entry)
        return cls(table)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PriceTable:
        """Load a ``.toml`` or ``.json`` price table."""
        file = Path(path)
        raw = file.read_bytes()
        data = tomllib.loads(raw.decode()) if file.suffix == ".toml" else json.loads(raw)
        return cls.from_mapping(data)


PriceSource = PriceTable | Mapping[str, ModelPrice] | str | os.PathLike[str] | None

_table = PriceTable()


def set_prices(prices: PriceSource) -> PriceTable:
    """Install the price table used for every call from now on; returns it.

    ``None`` loads ``RAGOTEL_PRICES_FILE`` when set, else clears the table.
    """
    global _table
    if prices is None:
        path = settings.resolve(only=("prices",)).values["prices"]
        _table = PriceTable.from_file(path) if path else PriceTable()
    elif isinstance(prices, PriceTable):
        _table = prices
    elif isinstance(prices, Mapping):
        _table = PriceTable(prices)
    else:
        _table = PriceTable.from_file(prices)
    return _table


def record(ins: Instruments, attributes: Mapping[str, AttributeValue], usage: Usage) -> float | None:
    """Add the cost of one call to ``rag.cost.usd`` (of ``ins``), labelled by model; returns it in USD, ``None``
    when the model has no price. Never raises."""
    if not _table._prices:  # no table (the default): no lookup on every model call
        return None
    try:
        model = attributes.get(sc.GEN_AI_REQUEST_MODEL)
        price = _table.price(model if isinstance(model, str) else None)
        if price is None:
            return None
        usd = price.cost(usage.input or 0, usage.output or 0, cache_read=usage.cache_read or 0,
                         cache_write=usage.cache_write or 0)
        if usd > 0:
            labels = {k: v for k, v in attributes.items() if k in _COST_LABELS}
            ins.cost.add(usd, labels)
        return usd
    except Exception as exc:
        report_internal_error("recording cost", exc)
        return None


_COST_LABELS = frozenset({sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_OPERATION_NAME})
