"""The OpenTelemetry internals ragotel uses (``ragotel._core.compat``), checked against the installed SDK.

If a release moves or renames one of them, these fail here, loudly, instead of the app misbehaving.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from ragotel._core.compat import SPAN_KEY, is_unset, metric_readers


def test_span_key_is_where_the_current_span_lives() -> None:
    span = TracerProvider().get_tracer("t").start_span("s")
    ctx = otel_context.set_value(SPAN_KEY, span)
    assert trace.get_current_span(ctx) is span
    assert trace.set_span_in_context(span).get(SPAN_KEY) is span


def test_sdk_providers_are_set_and_the_defaults_are_not() -> None:
    assert not is_unset(TracerProvider())
    assert not is_unset(MeterProvider())
    assert not is_unset(LoggerProvider())
    # A fresh process: before anything is installed, every global provider is a proxy or a no-op.
    script = textwrap.dedent("""
        from opentelemetry import _logs, metrics, trace
        from ragotel._core.compat import is_unset
        print(is_unset(trace.get_tracer_provider()), is_unset(metrics.get_meter_provider()),
              is_unset(_logs.get_logger_provider()), is_unset(trace.NoOpTracerProvider()),
              is_unset(metrics.NoOpMeterProvider()), is_unset(_logs.NoOpLoggerProvider()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True"] * 6


def test_metric_readers_are_those_a_provider_was_built_with_and_those_added_later() -> None:
    built, added = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[built])
    assert metric_readers(provider) == (built,)
    provider.add_metric_reader(added)
    assert set(metric_readers(provider) or ()) == {built, added}
    assert metric_readers(object()) is None
