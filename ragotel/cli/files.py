"""Where ``ragotel receive`` writes what it receives, and ``ragotel trace`` reads it."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DIR = Path("var/telemetry")
SPANS_FILENAME = "spans.jsonl"
LOGS_FILENAME = "logs.jsonl"
METRICS_FILENAME = "metrics.jsonl"
