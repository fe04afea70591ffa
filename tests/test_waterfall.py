"""Waterfall rendering, spans-file loading and the ``ragotel trace`` command."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import ragotel
from ragotel._config.export import WaterfallConsoleExporter
from ragotel.cli import main
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import (
    SpanRecord,
    find_trace_ids,
    latest_trace_id,
    load_spans,
    render_waterfall,
)
from tests.conftest import Recorded

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "00000000000000000000000000000abc"
MS = 1_000_000
T0 = 1_746_091_800_000 * MS  # 2025-05-01 09:30:00 UTC


def rec(
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: float,
    end_ms: float,
    *,
    service: str = "chat-api",
    status: str = "UNSET",
    message: str = "",
    trace_id: str = TRACE,
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id.ljust(16, "0"),
        parent_span_id=parent.ljust(16, "0") if parent else None,
        name=name,
        service_name=service,
        start_ns=T0 + int(start_ms * MS),
        end_ns=T0 + int(end_ms * MS),
        status_code=status,
        status_message=message,
    )


def chat_trace() -> list[SpanRecord]:
    # Deliberately out of order: the file holds spans in export (end) order.
    return [
        rec("c", "b", "embeddings", 20, 60, service="vllm"),
        rec("d", "a", "chat", 200, 800, service="vllm", status="ERROR", message="upstream timeout"),
        rec("b", "a", "rag.retrieve", 10, 130),
        rec("e", "a", "rag.rerank", 130, 190),
        rec("a", None, "POST /chat", 0, 800),
    ]


def rows(output: str) -> list[str]:
    """The span lines: between the column header and the footer."""
    return [line for line in output.splitlines()[2:] if line.endswith("|")]


def span_column(output: str) -> list[str]:
    """The SPAN column (tree prefix, name and markers) of each span line."""
    start = output.splitlines()[1].index("SPAN")
    return [re.sub(r"\s+[\d.]+ ms\s.*$", "", line[start:]) for line in rows(output)]


def bar(line: str) -> str:
    return line[line.index("|") + 1 : -1]


# --------------------------------------------------------------------------- rendering


def test_golden_output() -> None:
    assert render_waterfall(chat_trace(), TRACE, width=90) == "\n".join(
        [
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  2025-05-01 09:30:00.000 UTC  5 spans  800.0 ms  1 error",
            "SERVICE   SPAN              DURATION   SHARE  TIMELINE",
            "chat-api  POST /chat        800.0 ms  100.0%  |██████████████████████████████████████████|",
            "chat-api  ├─ rag.retrieve   120.0 ms   15.0%  |███████                                   |",
            "vllm      │  └─ embeddings   40.0 ms    5.0%  | ███                                      |",
            "chat-api  ├─ rag.rerank      60.0 ms    7.5%  |      ████                                |",
            "vllm      └─ chat [ERROR]   600.0 ms   75.0%  |          ████████████████████████████████|",
            "[ERROR] chat (vllm): upstream timeout",
        ]
    )


def test_children_are_indented_under_parents_in_start_order() -> None:
    names = span_column(render_waterfall(chat_trace(), TRACE))
    assert names == ["POST /chat", "├─ rag.retrieve", "│  └─ embeddings", "├─ rag.rerank", "└─ chat [ERROR]"]


def test_duration_and_share_of_trace_total() -> None:
    spans = [
        rec("a", None, "root", 0, 200),
        rec("b", "a", "half", 100, 150),
        rec("c", "a", "tiny", 150, 150.4),
    ]
    lines = rows(render_waterfall(spans, TRACE))
    assert "200.0 ms  100.0%" in lines[0]
    assert "50.0 ms   25.0%" in lines[1]
    assert "0.4 ms    0.2%" in lines[2]


def test_bars_are_placed_on_the_trace_timeline() -> None:
    spans = [
        rec("a", None, "root", 0, 100),
        rec("b", "a", "second-half", 50, 100),
        rec("c", "a", "zero", 25, 25),
    ]
    root, zero, second_half = (bar(line) for line in rows(render_waterfall(spans, TRACE, width=80)))
    width = len(root)
    assert root == "█" * width
    assert second_half == " " * (width // 2) + "█" * (width - width // 2)
    # A zero-length span still gets one visible cell at its offset.
    assert zero.index("█") == width // 4 and zero.count("█") == 1


@pytest.mark.parametrize("width", [60, 80, 132])
def test_span_lines_fill_the_requested_width(width: int) -> None:
    spans = [
        *chat_trace(),
        rec("f", "d", "a span name that is much too long to fit in the column" * 2, 300, 400),
    ]
    output = render_waterfall(spans, TRACE, width=width)
    assert {len(line) for line in rows(output)} == {width}
    assert "…" in output  # the long name was shortened, not the line wrapped


def test_truncated_names_keep_their_markers() -> None:
    spans = [rec("a", None, "root", 0, 10), rec("b", "a", "x" * 200, 1, 2, status="ERROR")]
    line = rows(render_waterfall(spans, TRACE, width=70))[1]
    assert "…" in line and "[ERROR]" in line


def test_orphans_are_shown_at_the_root_with_a_marker() -> None:
    spans = [
        rec("a", None, "POST /chat", 0, 100),
        rec("b", "a", "retrieve", 10, 20),
        rec("c", "ffff", "late child", 30, 60, service="vllm"),  # parent never exported
        rec("d", "c", "grandchild", 40, 50),
    ]
    output = render_waterfall(spans, TRACE)
    names = span_column(output)
    assert names == ["POST /chat", "└─ retrieve", "late child [orphan]", "└─ grandchild"]
    assert output.splitlines()[-1].startswith("[orphan] parent span not in the file")
    assert "[orphan]" not in render_waterfall(chat_trace(), TRACE)


def test_parent_cycles_do_not_hang_or_drop_spans() -> None:
    spans = [rec("a", "b", "ping", 0, 10), rec("b", "a", "pong", 5, 10), rec("c", "c", "self", 1, 2)]
    # Corrupt data: every span is still shown once, the cycle is broken at its earliest span.
    assert span_column(render_waterfall(spans, TRACE)) == ["self [orphan]", "ping [orphan]", "└─ pong"]


def test_deep_traces_render_without_recursion() -> None:
    depth = 1500  # beyond Python's default recursion limit
    spans = [rec(f"{1:016x}", None, "s1", 0, 5000)] + [
        rec(f"{i:016x}", f"{i - 1:016x}", f"s{i}", i, 5000 - i) for i in range(2, depth + 1)
    ]
    output = render_waterfall(spans, TRACE, width=200)
    assert len(rows(output)) == depth
    assert "[orphan]" not in output


def test_error_spans_are_marked_and_explained() -> None:
    output = render_waterfall(chat_trace(), TRACE)
    marked = [line for line in rows(output) if "[ERROR]" in line]
    assert len(marked) == 1 and " chat [ERROR]" in marked[0]
    assert "[ERROR] chat (vllm): upstream timeout" in output.splitlines()
    assert output.splitlines()[0].endswith("1 error")


def test_only_the_requested_trace_is_rendered_and_unknown_ids_raise() -> None:
    spans = [*chat_trace(), rec("a", None, "other-root", 0, 5000, trace_id=OTHER)]
    output = render_waterfall(spans, TRACE.upper())
    assert "other-root" not in output and "5 spans" in output
    with pytest.raises(LookupError):
        render_waterfall(spans, "f" * 32)


def test_ascii_mode() -> None:
    output = render_waterfall(chat_trace(), TRACE, ascii_only=True)
    assert output.isascii()
    assert "|- rag.retrieve" in output and "`- chat [ERROR]" in output and "#" in output


# --------------------------------------------------------------------------- trace selection


def test_latest_trace_is_the_one_whose_root_ended_last() -> None:
    early = [rec("a", None, "early", 0, 100, trace_id="1" * 32)]
    late_root = [
        rec("a", None, "late", -50, 200, trace_id="2" * 32),
        rec("b", "a", "c", 0, 150, trace_id="2" * 32),
    ]
    in_flight = [rec("b", "ffff", "child only", 0, 300, trace_id="3" * 32)]  # root not exported yet
    assert latest_trace_id(early + late_root + in_flight) == "2" * 32
    assert latest_trace_id(in_flight + early) == "1" * 32
    # With no root anywhere, fall back to the latest ending span.
    assert latest_trace_id([*in_flight, rec("x", "ffff", "older", 0, 10, trace_id="4" * 32)]) == "3" * 32
    assert latest_trace_id([]) is None


def test_find_trace_ids_by_prefix() -> None:
    spans = [*chat_trace(), rec("a", None, "x", 0, 1, trace_id="4bf9" + "0" * 28)]
    assert find_trace_ids(spans, "4BF92F") == [TRACE]
    assert find_trace_ids(spans, "4bf9") == ["4bf9" + "0" * 28, TRACE]
    assert find_trace_ids(spans, "dead") == []


# --------------------------------------------------------------------------- loading


def write_spans(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_load_spans_skips_garbage_and_partial_lines(tmp_path: Path) -> None:
    good = [json.dumps(s.to_json()) for s in chat_trace()]
    bad_timestamp = {**chat_trace()[0].to_json(), "span_id": "9" * 16, "start_ns": True}
    missing_id = {k: v for k, v in chat_trace()[0].to_json().items() if k != "trace_id"}
    path = write_spans(
        tmp_path / "spans.jsonl",
        [
            good[0],
            "",
            "not json at all",
            "[1, 2, 3]",
            json.dumps(bad_timestamp),
            json.dumps(missing_id),
            "\x00\xff garbage",
            *good[1:],
            good[2][: len(good[2]) // 2],  # a line cut off mid-write
        ],
    )
    loaded = load_spans(path)
    assert loaded == chat_trace()


def test_load_spans_keeps_one_copy_of_a_re_exported_span(tmp_path: Path) -> None:
    first = rec("a", None, "root", 0, 10)
    retried = rec("a", None, "root", 0, 12)
    path = write_spans(tmp_path / "s.jsonl", [json.dumps(first.to_json()), json.dumps(retried.to_json())])
    assert load_spans(path) == [retried]


def test_load_spans_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_spans(tmp_path / "nope.jsonl")


def test_record_json_round_trip() -> None:
    span = SpanRecord(
        TRACE, "a" * 16, "b" * 16, "n", "svc", 1, 2, kind="CLIENT", status_code="ERROR", status_message="m",
        attributes={"k": [1, "x", {"y": None}]}, events=("exception",), scope="lib",
    )  # fmt: skip
    assert SpanRecord.from_json(json.loads(json.dumps(span.to_json()))) == span
    upper = {**span.to_json(), "trace_id": TRACE.upper(), "parent_span_id": ""}
    parsed = SpanRecord.from_json(upper)
    assert parsed is not None and parsed.trace_id == TRACE and parsed.parent_span_id is None


# --------------------------------------------------------------------------- ragotel trace


@pytest.fixture
def telemetry_dir(tmp_path: Path) -> Path:
    spans = [*chat_trace(), rec("a", None, "GET /health", -1000, -900, trace_id=OTHER)]
    write_spans(tmp_path / "spans.jsonl", [json.dumps(s.to_json()) for s in spans])
    return tmp_path


def test_trace_command_prints_latest_trace(telemetry_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--dir", str(telemetry_dir), "--width", "90"]) == 0
    out = capsys.readouterr().out
    assert out == render_waterfall(load_spans(telemetry_dir / "spans.jsonl"), TRACE, width=90) + "\n"


def test_trace_command_by_id_and_prefix(telemetry_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", OTHER, "--dir", str(telemetry_dir)]) == 0
    assert "GET /health" in capsys.readouterr().out
    assert main(["trace", "4bf92f", "--dir", str(telemetry_dir)]) == 0
    assert f"trace {TRACE}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "deadbeef"], "trace deadbeef not found"),
        (["trace", "0", "--dir", "{dir}/missing"], "no spans file at"),
    ],
)
def test_trace_command_errors(
    telemetry_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = [a.replace("{dir}", str(telemetry_dir)) for a in argv]
    if "--dir" not in args:
        args += ["--dir", str(telemetry_dir)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_trace_command_ambiguous_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spans = [
        rec("a", None, "x", 0, 1, trace_id="ab" + "1" * 30),
        rec("a", None, "y", 0, 1, trace_id="ab" + "2" * 30),
    ]
    write_spans(tmp_path / "spans.jsonl", [json.dumps(s.to_json()) for s in spans])
    assert main(["trace", "ab", "--dir", str(tmp_path)]) == 1
    assert "ab matches 2 traces" in capsys.readouterr().err


def test_trace_command_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_spans(tmp_path / "spans.jsonl", ["garbage"])
    assert main(["trace", "--dir", str(tmp_path)]) == 1
    assert "no spans in" in capsys.readouterr().err


def test_no_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "receive" in err and "trace" in err


def test_trace_command_renders_what_the_receiver_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with OtlpReceiver(port=0, spans_path=tmp_path / "spans.jsonl") as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": "chat-api"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("POST /chat"):
            with tracer.start_as_current_span("rag.retrieve"):
                pass
            with tracer.start_as_current_span("vllm.generate"):
                pass
        provider.shutdown()
        # Read while the receiver is still running, as a second terminal would.
        assert main(["trace", "--dir", str(tmp_path), "--width", "100"]) == 0

    names = span_column(capsys.readouterr().out)
    assert names == ["POST /chat", "├─ rag.retrieve", "└─ vllm.generate"]


def test_scrapes_are_not_the_latest_trace_and_list_shows_the_rest(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    chat = SpanRecord("a" * 32, "1" * 16, None, "POST /chat", "rag-chat-api", 1_000, 5_000_000,
                      attributes={"url.path": "/chat"})
    scrape = SpanRecord("b" * 32, "2" * 16, None, "GET /metrics", "rag-chat-api", 6_000_000, 7_000_000,
                        attributes={"url.path": "/metrics"})
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(json.dumps(s.to_json()) for s in (chat, scrape)) + "\n")
    assert latest_trace_id([chat, scrape]) == "a" * 32  # the scrape ended later
    assert latest_trace_id([scrape]) == "b" * 32  # but a scrape alone is still shown
    assert main(["trace", "--list", "--dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "a" * 32 in listed and "POST /chat" in listed and "b" * 32 not in listed
    assert main(["trace", "--list", "--all", "--dir", str(tmp_path)]) == 0
    assert "b" * 32 in capsys.readouterr().out


def test_the_header_counts_each_model_call_once() -> None:
    pipe = SpanRecord(TRACE, "1" * 16, None, "invoke_workflow chat", "api", T0, T0 + 10 * MS,
                      attributes={"gen_ai.usage.input_tokens": 150, "gen_ai.usage.output_tokens": 30,
                                  "rag.cost.usd": 0.0003})
    step = SpanRecord(TRACE, "2" * 16, "1" * 16, "chat answer", "api", T0, T0 + 8 * MS,
                      attributes={"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20})
    call = SpanRecord(TRACE, "3" * 16, "2" * 16, "chat tiny-llama", "api", T0, T0 + 7 * MS,
                      attributes={"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
                                  "rag.cost.usd": 0.0002})
    other = SpanRecord(TRACE, "4" * 16, "1" * 16, "chat tiny-llama", "api", T0, T0 + 2 * MS,
                       attributes={"gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 10,
                                   "rag.cost.usd": 0.0001})
    header = render_waterfall([pipe, step, call, other], TRACE).splitlines()[0]
    assert "tokens 150 in / 30 out" in header and "cost $0.000300" in header
    assert "tokens" not in render_waterfall([SpanRecord(TRACE, "9" * 16, None, "x", "s", T0, T0 + MS)],
                                            TRACE).splitlines()[0]


def test_a_step_name_the_span_name_does_not_say_follows_in_parentheses() -> None:
    def step(span_id: str, name: str, kind: str, step_name: str) -> SpanRecord:
        return replace(rec(span_id, "a", name, ord(span_id), ord(span_id) + 1),
                       attributes={"rag.step.kind": kind, "rag.step.name": step_name})

    spans = [
        rec("a", None, "POST /chat", 0, 200),
        step("b", "retrieval dense", "retrieval", "search"),
        step("c", "retrieval search", "retrieval", "search"),  # the name is the span's target already
        step("d", "invoke_workflow chat", "pipeline", "chat"),
        step("e", "chat tiny-llama", "generation", "chat"),  # an HTTP call outside a step: its verb
        step("f", "embeddings", "embedding", "embedding"),  # no name given: only the kind
    ]
    assert span_column(render_waterfall(spans, TRACE, width=120)) == [
        "POST /chat", "├─ retrieval dense (search)", "├─ retrieval search", "├─ invoke_workflow chat",
        "├─ chat tiny-llama", "└─ embeddings",
    ]


def test_the_waterfall_of_real_steps_names_each_step(recorded: Recorded) -> None:
    @ragotel.retrieval(data_source="faiss")
    def lookup(query: str, k: int = 2) -> list[dict[str, object]]:
        return [{"id": "d1", "score": 0.9, "text": "open at eight"}]

    with ragotel.pipeline("chat"):
        with ragotel.retrieval("search", data_source="dense"):
            pass
        lookup("when?")
        with ragotel.embedding():
            pass
    out = io.StringIO()
    WaterfallConsoleExporter(out=out, width=120).export(recorded.spans())
    assert span_column(out.getvalue()) == [
        "invoke_workflow chat", "├─ retrieval dense (search)", "├─ retrieval faiss (lookup)", "└─ embeddings",
    ]
    assert recorded.open_spans() == []


def test_a_long_step_name_is_truncated_before_the_error_marker() -> None:
    failed = replace(rec("b", "a", "retrieval dense", 0, 10, status="ERROR"),
                     attributes={"rag.step.kind": "retrieval", "rag.step.name": "search_" * 20})
    (_, line) = span_column(render_waterfall([rec("a", None, "POST /chat", 0, 10), failed], TRACE, width=100))
    assert line.startswith("└─ retrieval dense (search_search_") and line.endswith("… [ERROR]")
