"""Settings resolved once, configure() never raising, no collector as a normal state, logging next to the
console. Each case runs ``configure()`` in a fresh interpreter (one global provider per process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ragotel.cli.receiver import OtlpReceiver
from tests.test_configure import read_jsonl, run_python

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}


def run_script(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Like ``run_python``, returning the finished process (stdout, stderr, exit status) itself."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_", "K8S_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ragotel:")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- 1. resolved once; the OTLP exporter spec's precedence --------------------------------------------


def test_signal_specific_endpoint_wins_over_the_generic_one(tmp_path: Path) -> None:
    with (OtlpReceiver(port=0, spans_path=tmp_path / "generic-spans.jsonl", logs_path=tmp_path / "logs.jsonl")
          as generic,
          OtlpReceiver(port=0, spans_path=tmp_path / "traces.jsonl") as traces):
        out = run_python(
            """
            import json, logging, ragotel
            t = ragotel.configure(service_name="x", endpoint="http://127.0.0.1:9")
            with ragotel.retrieval("search"):
                logging.getLogger("app").warning("in the span")
            t.force_flush()
            t.shutdown()
            print(json.dumps({"ok": True}))
            """,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": generic.endpoint,
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces.endpoint + "/v1/traces",
                 "OTEL_METRICS_EXPORTER": "none"},
        )
    assert out == {"ok": True}
    assert [s["name"] for s in read_jsonl(tmp_path / "traces.jsonl")] == ["retrieval search"]
    assert read_jsonl(tmp_path / "generic-spans.jsonl") == []
    assert [r["body"] for r in read_jsonl(tmp_path / "logs.jsonl")] == ["in the span"]


def test_signal_specific_protocol_wins() -> None:
    out = run_python(
        """
        import json, ragotel
        t = ragotel.configure(service_name="x")
        tp = t.tracer_provider._active_span_processor._span_processors
        traces = [type(p.span_exporter.inner).__module__ for p in tp if hasattr(p, "span_exporter")]
        readers = t.meter_provider._metric_readers
        metrics = [type(r._exporter.inner).__module__ for r in readers if hasattr(r, "_exporter")]
        print(json.dumps({"traces": traces, "metrics": metrics}))
        t.shutdown()
        """,
        env={"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
             "OTEL_LOGS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert out == {"traces": ["opentelemetry.exporter.otlp.proto.grpc.trace_exporter"],
                   "metrics": ["opentelemetry.exporter.otlp.proto.http.metric_exporter"]}


def test_the_settings_table_covers_every_argument_and_resolves_without_raising() -> None:
    import inspect

    import ragotel
    from ragotel._core import settings

    params = set(inspect.signature(ragotel.configure).parameters)
    assert params == set(settings.BY_ARG)
    resolved = settings.resolve(environ={"RAGOTEL_METRIC_VALUE_LIMIT": "abc", "RAGOTEL_DETAILED_METRICS": "yes",
                                         "OTEL_EXPORTER_PROMETHEUS_PORT": "70000"},
                                args={"metric_value_limit": 7})
    assert resolved["metric_value_limit"] == 7  # unusable environment value: the argument
    assert resolved["detailed_metrics"] is True
    assert resolved["prometheus_port"] == -1  # off
    assert [p.setting for p in resolved.problems] == ["OTEL_EXPORTER_PROMETHEUS_PORT", "RAGOTEL_METRIC_VALUE_LIMIT"]


# --- 1. configure() never raises into the app ----------------------------------------------------------

# The rest must work: a span reaches the in-memory exporter and a metric the in-memory reader.
_APP = """
    import json, ragotel
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    t = ragotel.configure(service_name="x", span_processors=[SimpleSpanProcessor(spans)],
                          metric_readers=[reader]{args})
    with ragotel.retrieval("search") as step:
        step.record(documents=[{{"id": "a", "score": 0.5}}])
    names = [m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics]
    print(json.dumps({{"spans": [s.name for s in spans.get_finished_spans()],
                      "step_metric": "rag.step.duration" in names, "prometheus": t.prometheus_port}}))
    t.shutdown()
    """

@pytest.mark.parametrize(
    ("env", "args", "needle"),
    [
        ({"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": "abc"}, "",
         "OTEL_EXPORTER_PROMETHEUS_PORT='abc'"),
        ({"RAGOTEL_PRICES_FILE": "/nonexistent/prices.toml"}, "", "RAGOTEL_PRICES_FILE='/nonexistent/prices.toml'"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"}, "", "OTEL_EXPORTER_OTLP_PROTOCOL='bogus'"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "", "OTEL_TRACES_EXPORTER='zipkin'"),
        ({}, ", prometheus_port='nine'", "prometheus_port='nine'"),
    ],
    ids=["port-abc", "price-file-missing", "protocol-bogus", "exporter-zipkin", "port-argument"],
)
def test_a_bad_setting_is_one_warning_and_the_rest_works(env: dict[str, str], args: str, needle: str) -> None:
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none"}
    proc = run_script(textwrap.dedent(_APP.format(args=args)), {**base, **env})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["spans"] == ["retrieval search"] and out["step_metric"] is True, out
    assert out["prometheus"] is None
    found = [w for w in warnings_in(proc.stderr) if needle in w]
    assert len(found) == 1, proc.stderr
    assert len([w for w in warnings_in(proc.stderr) if "cannot be used" in w or "needs the" in w]) == 1, proc.stderr


def test_an_invalid_price_file_and_a_busy_port_warn_and_stay_off(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."m"]\ninput_per_million = "cheap"\n')
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_script(_APP.format(args=f", prometheus_port={port}"),
                          {**QUIET, "RAGOTEL_PRICES_FILE": str(prices)})
    assert proc.returncode == 0, proc.stderr
    lines = warnings_in(proc.stderr)
    assert len([w for w in lines if f"RAGOTEL_PRICES_FILE='{prices}'" in w and "cost is not recorded" in w]) == 1
    assert len([w for w in lines if f"prometheus_port={port}" in w and "stays off" in w]) == 1, proc.stderr
    assert '"spans": ["retrieval search"]' in proc.stdout


def test_a_second_configure_with_other_arguments_says_what_was_ignored() -> None:
    proc = run_script(
        """
        import ragotel
        first = ragotel.configure(service_name="a")
        again = ragotel.configure(service_name="a")
        other = ragotel.configure(service_name="b", detailed_metrics=True)
        print(first is again is other)
        """,
        QUIET,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    (line,) = [w for w in warnings_in(proc.stderr) if "already called" in w]
    assert "service_name='b' (kept 'a')" in line and "detailed_metrics=True" in line


@pytest.mark.parametrize(
    ("opt_in", "latest", "unknown"),
    [
        ("http,database/dup,gen_ai_latest_experimental", True, None),
        ("http/dup, GEN_AI_LATEST_EXPERIMENTAL,gen_ai_latest_experimantal", True, "gen_ai_latest_experimantal"),
        ("genai_latest_experimental,messaging", False, "genai_latest_experimental"),
    ],
    ids=["other-categories-pass", "typo-beside-the-opt-in", "typo-alone"],
)
def test_semconv_opt_in_warns_once_for_an_unknown_genai_value_only(opt_in: str, latest: bool,
                                                                  unknown: str | None) -> None:
    """Other conventions' categories share the list and are not ragotel's to judge; a GenAI-looking value
    ragotel does not know is left out with one WARNING, and the rest of the list still counts."""
    proc = run_script(
        """
        import ragotel
        from ragotel._core import runtime
        ragotel.configure(service_name="a")
        ragotel.configure(service_name="a")
        print(runtime.current.genai_latest)
        """,
        {**QUIET, "OTEL_SEMCONV_STABILITY_OPT_IN": opt_in},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(latest)
    lines = warnings_in(proc.stderr)
    if unknown is None:
        assert lines == [], proc.stderr
    else:
        (line,) = lines
        said = line.split(f"OTEL_SEMCONV_STABILITY_OPT_IN={opt_in!r}", 1)[1]
        assert f"unknown GenAI opt-in {unknown} ignored" in said
        assert "http" not in said and "messaging" not in said  # other categories are not called unknown
        assert f"the {'latest' if latest else 'default'} GenAI conventions are used" in line


# --- 2. no collector is a normal development state ------------------------------------------------------


def test_no_collector_one_warning_and_a_short_script_exits_at_once() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    proc = run_script(
        """
        import logging, ragotel
        ragotel.configure(service_name="script")
        with ragotel.retrieval("search"):
            logging.getLogger("app").warning("inside")
        """,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 3.0, (elapsed, proc.stderr)
    assert "Traceback" not in proc.stderr and "Transient error" not in proc.stderr, proc.stderr
    (warning,) = warnings_in(proc.stderr)
    assert f"http://127.0.0.1:{port}/v1/" in warning
    assert "ragotel receive" in warning and "OTEL_EXPORTER_OTLP_ENDPOINT" in warning


def test_a_collector_that_answers_still_gets_everything_at_exit(tmp_path: Path) -> None:
    with OtlpReceiver(port=0, spans_path=tmp_path / "spans.jsonl") as rx:
        proc = run_script(
            """
            import ragotel
            ragotel.configure(service_name="script")
            for i in range(3):
                with ragotel.retrieval(f"search{i}"):
                    pass
            """,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_METRICS_EXPORTER": "none",
             "OTEL_LOGS_EXPORTER": "none"},
        )
    assert proc.returncode == 0, proc.stderr
    assert warnings_in(proc.stderr) == []
    assert sorted(s["name"] for s in read_jsonl(tmp_path / "spans.jsonl")) == [
        "retrieval search0", "retrieval search1", "retrieval search2"]


@pytest.mark.parametrize("how", [{"OTEL_TRACES_EXPORTER": "console"}, {"RAGOTEL_TEST_CONSOLE_ARG": "1"}],
                         ids=["env", "argument"])
def test_console_mode_prints_each_trace_as_a_waterfall(how: dict[str, str]) -> None:
    arg = ", console=True" if how.pop("RAGOTEL_TEST_CONSOLE_ARG", "") else ""
    proc = run_script(
        f"""
        import ragotel
        ragotel.configure(service_name="dev-api"{arg})
        with ragotel.pipeline("chat"):
            with ragotel.retrieval(data_source="faiss"):
                pass
        print("after")
        """,
        {**how, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("trace ") and "2 spans" in lines[0], proc.stdout
    assert lines[1].split() == ["SERVICE", "SPAN", "DURATION", "SHARE", "TIMELINE"]
    assert lines[2].startswith("dev-api") and "invoke_workflow chat" in lines[2]
    assert "└─ retrieval faiss" in lines[3]
    assert '"trace_id"' not in proc.stdout  # not the SDK's JSON
    assert lines[-1] == "after"
    # Nothing was sent over OTLP, so nothing failed (the argument form) or only otlp metrics/logs did.
    if arg:
        assert warnings_in(proc.stderr) == []


# --- 6. logging: the SDK's handler, basicConfig before or after ---------------------------------------

_LOGGING = """
    import json, logging, ragotel
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    {before}
    t = ragotel.configure(service_name="x")
    exported = InMemoryLogRecordExporter()
    t.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exported))
    {after}
    with ragotel.retrieval("search"):
        logging.getLogger("app").info("searched %d", 3)
    handlers = [type(h).__mro__[1].__name__ for h in logging.getLogger().handlers]
    print(json.dumps({{"exported": [r.log_record.body for r in exported.get_finished_logs()],
                      "handlers": sorted(handlers)}}))
    """
_BASIC = 'logging.basicConfig(level=logging.INFO, format="%(levelname)s trace=%(trace_id)s %(message)s")'


@pytest.mark.parametrize("where", ["before", "after"])
def test_basic_config_before_or_after_configure_gives_console_output(where: str) -> None:
    code = _LOGGING.format(before=_BASIC if where == "before" else "", after=_BASIC if where == "after" else "")
    proc = run_script(code, QUIET)
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["exported"] == ["searched 3"]
    assert "LoggingHandler" in out["handlers"] and "Handler" in out["handlers"]  # the SDK's, and a StreamHandler
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.endswith("searched 3")]
    level, trace_field, _ = line.split(" ", 2)
    assert level == "INFO" and len(trace_field) == len("trace=") + 32


def test_without_basic_config_warnings_still_reach_stderr_and_info_is_exported_only() -> None:
    proc = run_script(
        """
        import logging, ragotel
        t = ragotel.configure(service_name="x")
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("app").warning("disk almost full")
        logging.getLogger("app").info("routine")
        """,
        QUIET,
    )
    assert proc.returncode == 0, proc.stderr
    assert "disk almost full" in proc.stderr and "routine" not in proc.stderr
