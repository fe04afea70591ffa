"""The documentation's pictures (docsgen/pictures.py): well-formed SVG, current with their committed inputs, and
drawn from real output: the waterfall text is what ``ragotel trace`` prints for the quickstart's last trace, each
bar is its row's ratio."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from docsgen import pictures
from docsgen.pictures import (
    BENCHMARKS,
    CHAR_W,
    PAD,
    WATERFALL_SVG,
    WATERFALL_TXT,
    WIDTH,
    Waterfall,
    load_benchmark,
    parse_waterfall,
)
from ragotel.cli import main as cli_main
from ragotel.cli.waterfall import SpanRecord, latest_trace_id, load_spans, render_waterfall

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


def _svg(path: Path) -> ET.Element:
    return ET.fromstring(path.read_text(encoding="utf-8"))


def _structure(waterfall: Waterfall) -> list[tuple[str, str, str, str]]:
    """What a run of the same code draws alike every time: who made each span, its place in the tree, its name."""
    return [(row.service, row.prefix, row.title, row.markers) for row in waterfall.rows]


def _untimed_header(header: str) -> str:
    """The header without what changes from run to run: the trace id, when it started and how long it took."""
    return re.sub(r"^trace [0-9a-f]+  \S+ \S+ UTC  (\d+ spans?)  [\d.]+ ms", r"trace ID  TIME  \1  TOTAL", header)


# --------------------------------------------------------------------------- every picture


def test_every_picture_is_well_formed_svg() -> None:
    files = pictures.outputs()
    assert WATERFALL_SVG in files
    assert {BENCHMARKS / f"{json_file.stem}.svg" for json_file in BENCHMARKS.glob("*.json")} <= set(files)
    for path, content in files.items():
        root = ET.fromstring(content)
        assert root.tag == f"{SVG}svg", path
        width, height = float(root.attrib["width"]), float(root.attrib["height"])
        assert root.attrib["viewBox"] == f"0 0 {root.attrib['width']} {root.attrib['height']}", path
        assert 0 < width <= 1200 and 0 < height <= 1200, path  # fits a docs page
        assert root.find(f"{SVG}title") is not None, path  # what a screen reader says


def test_committed_pictures_are_current_and_regenerate_byte_identically() -> None:
    first, second = pictures.outputs(), pictures.outputs()
    assert first == second
    stale = [path.relative_to(ROOT).as_posix() for path, content in first.items()
             if not path.exists() or path.read_bytes() != content.encode("utf-8")]
    assert not stale, f"out of date (run: python -m docsgen.pictures): {stale}"
    orphans = [svg.name for svg in BENCHMARKS.glob("*.svg") if svg not in first]
    assert not orphans, f"charts without a results file: {orphans}"


# --------------------------------------------------------------------------- the waterfall


def _terminal_lines(root: ET.Element) -> list[str]:
    return ["".join(text.itertext()) for text in root.iter(f"{SVG}text") if text.get("class") == "t"]


def test_the_waterfall_picture_holds_every_line_of_the_text() -> None:
    lines = WATERFALL_TXT.read_text(encoding="utf-8").rstrip("\n").split("\n")
    shown = _terminal_lines(_svg(WATERFALL_SVG))
    assert shown == [f"$ {pictures.TRACE_COMMAND}", *lines]
    waterfall = parse_waterfall(WATERFALL_TXT.read_text(encoding="utf-8"))
    span_lines = lines[2:2 + len(waterfall.rows)]
    assert span_lines and all(line in shown for line in span_lines)


def test_the_waterfall_picture_puts_each_run_at_its_column() -> None:
    """A fixed character width, kept whatever the font: every run starts at PAD + column × CHAR_W, the runs of a
    line follow on without gaps, and a bar's run is stretched to exactly its columns."""
    for text in _svg(WATERFALL_SVG).iter(f"{SVG}text"):
        if text.get("class") != "t":
            continue
        assert text.get("{http://www.w3.org/XML/1998/namespace}space") == "preserve"
        column = 0
        for run in text.iter(f"{SVG}tspan"):
            assert float(run.attrib["x"]) == pytest.approx(PAD + column * CHAR_W, abs=0.006)
            if "textLength" in run.attrib:
                assert float(run.attrib["textLength"]) == pytest.approx(len(run.text or "") * CHAR_W, abs=0.006)
            column += len(run.text or "")


def _bar_classes(root: ET.Element) -> list[str | None]:
    """The class of each bar's run (the only runs stretched to their columns)."""
    return [run.get("class") for run in root.iter(f"{SVG}tspan") if "textLength" in run.attrib]


def test_the_waterfall_bars_are_coloured_by_step() -> None:
    rows = parse_waterfall(WATERFALL_TXT.read_text(encoding="utf-8")).rows
    assert _bar_classes(_svg(WATERFALL_SVG)) == [pictures.BAR_CLASSES.get(row.operation, "b") for row in rows]


def test_the_committed_waterfall_is_laid_out_as_render_waterfall_lays_it_out() -> None:
    text = WATERFALL_TXT.read_text(encoding="utf-8")
    waterfall = parse_waterfall(text)
    assert waterfall.span_count == len(waterfall.rows) >= 4
    span_lines = text.split("\n")[2:2 + len(waterfall.rows)]
    assert {len(line) for line in span_lines} == {WIDTH}  # recorded at --width 100
    assert len({row.bar_width for row in waterfall.rows}) == 1
    root = waterfall.rows[0]
    assert (root.depth, root.share) == (0, 100.0)
    assert all(row.depth >= 1 for row in waterfall.rows[1:])
    for row in waterfall.rows:
        # share = duration ÷ trace, each printed to 0.1: equal within what the rounding of both allows
        slack = 100 * 0.1 / waterfall.total_ms + 0.1
        assert row.share == pytest.approx(100 * row.duration_ms / waterfall.total_ms, abs=slack), row
        assert row.bar_end - row.bar_start == pytest.approx(row.share * row.bar_width / 100, abs=2), row


def test_a_line_render_waterfall_would_not_write_is_refused() -> None:
    text = WATERFALL_TXT.read_text(encoding="utf-8")
    with pytest.raises(ValueError):
        parse_waterfall(text.replace(" ms  ", " s  ", 1))  # the header's total
    with pytest.raises(ValueError):
        parse_waterfall(text.replace("|█", "|=", 1))  # a bar
    with pytest.raises(ValueError):
        parse_waterfall(text + "edited by hand\n")


@pytest.mark.parametrize("ascii_only", [False, True], ids=["unicode", "ascii"])
def test_parse_waterfall_reads_what_render_waterfall_writes(ascii_only: bool) -> None:
    """Errors, orphans, a deep tree, a name cut short and markup characters, in both glyph sets: every row read
    back as drawn, and the terminal picture holds every line."""
    trace_id, ms = "ab" * 16, 1_000_000
    spans = [
        SpanRecord(trace_id, "01" * 8, None, "POST /chat <&>", "chat-api", 0, 100 * ms, kind="SERVER"),
        SpanRecord(trace_id, "02" * 8, "01" * 8, "retrieval faiss", "chat-api", 1 * ms, 20 * ms,
                   attributes={"rag.step.name": "search", "rag.step.kind": "retrieval"}),
        SpanRecord(trace_id, "03" * 8, "02" * 8, "embeddings all-MiniLM-L6-v2", "chat-api", 2 * ms, 5 * ms),
        SpanRecord(trace_id, "04" * 8, "01" * 8, "chat " + "very-long-model-name-" * 4, "vllm", 25 * ms, 99 * ms,
                   status_code="ERROR", status_message="upstream timeout"),
        SpanRecord(trace_id, "05" * 8, "ff" * 8, "execute_tool lookup", "tools", 30 * ms, 31 * ms),
    ]
    text = render_waterfall(spans, trace_id, width=WIDTH, ascii_only=ascii_only)
    waterfall = parse_waterfall(text)
    assert waterfall.span_count == len(waterfall.rows) == 5
    assert [row.depth for row in waterfall.rows] == [0, 1, 2, 1, 0]
    assert [row.service for row in waterfall.rows] == ["chat-api", "chat-api", "chat-api", "vllm", "tools"]
    assert [row.title for row in waterfall.rows][:3] == ["POST /chat <&>", "retrieval faiss (search)",
                                                         "embeddings all-MiniLM-L6-v2"]
    assert [row.markers for row in waterfall.rows] == ["", "", "", "[ERROR]", "[orphan]"]
    assert waterfall.rows[3].title.endswith("~" if ascii_only else "…")
    assert len(waterfall.notes) == 2
    root = ET.fromstring(pictures.terminal_svg(text, title="t", command="ragotel trace"))
    assert _terminal_lines(root)[1:] == text.split("\n")
    # an HTTP span's bar in the default colour, a step's in its kind's, a failed span's red
    assert _bar_classes(root) == ["b", "b-retrieval", "b-embeddings", "b-error", "b-tool"]


@pytest.fixture(scope="module")
def quickstart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The telemetry directory of a real run of examples/quickstart.py (its receiver writes under var/telemetry)."""
    scratch = tmp_path_factory.mktemp("quickstart")
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=scratch, env=env, check=True,
                   capture_output=True, timeout=120)
    return scratch / "var" / "telemetry"


def test_the_committed_waterfall_is_what_the_cli_draws_for_the_quickstart(
        quickstart_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Spans of a fresh quickstart run, drawn by the real CLI functions: the same spans, services, tree and names
    as the committed text (timings differ from run to run), and ``ragotel trace`` prints exactly that drawing."""
    spans = load_spans(quickstart_dir / "spans.jsonl")
    trace_id = latest_trace_id(spans)
    assert trace_id is not None
    drawn = render_waterfall(spans, trace_id, width=WIDTH)
    assert cli_main(["trace", "--dir", str(quickstart_dir), "--width", str(WIDTH)]) == 0
    assert capsys.readouterr().out.split("\n\n", 1)[0].rstrip("\n") == drawn

    fresh, committed = parse_waterfall(drawn), parse_waterfall(WATERFALL_TXT.read_text(encoding="utf-8"))
    assert _structure(fresh) == _structure(committed)
    assert _untimed_header(fresh.header) == _untimed_header(committed.header)
    assert fresh.columns.split() == committed.columns.split()
    assert {row.bar_width for row in fresh.rows} == {row.bar_width for row in committed.rows}


def test_record_waterfall_gives_the_committed_structure() -> None:
    """``python -m docsgen.pictures --record-waterfall``'s recording, end to end (quickstart, then ``ragotel trace``
    in processes of their own), made here without writing the committed file."""
    recorded = parse_waterfall(pictures.record_waterfall())
    committed = parse_waterfall(WATERFALL_TXT.read_text(encoding="utf-8"))
    assert _structure(recorded) == _structure(committed)
    assert _untimed_header(recorded.header) == _untimed_header(committed.header)


# --------------------------------------------------------------------------- the benchmark charts


def _results() -> list[Path]:
    found = sorted(BENCHMARKS.glob("*.json"))
    assert BENCHMARKS / "integrations.json" in found
    return found


@pytest.mark.parametrize("results", _results(), ids=lambda path: path.stem)
def test_a_chart_has_a_bar_per_row_as_long_as_its_ratio(results: Path) -> None:
    result = load_benchmark(results)
    root = _svg(results.with_suffix(".svg"))
    bars = [rect for rect in root.iter(f"{SVG}rect") if "bar" in rect.get("class", "").split()]
    assert len(bars) == len(result.rows) == len(json.loads(results.read_text(encoding="utf-8"))["rows"])
    widths = [float(bar.attrib["width"]) for bar in bars]
    scale = sum(widths) / sum(row.ratio for row in result.rows)  # px per 1×
    for bar, width, row in zip(bars, widths, result.rows, strict=True):
        assert width == pytest.approx(row.ratio * scale, abs=0.01), row.scenario
        assert row.scenario in "".join(bar.itertext())
        assert ("over" in bar.attrib["class"]) == (row.ratio > result.target), row.scenario
    x0 = {float(bar.attrib["x"]) for bar in bars}
    assert len(x0) == 1  # one axis origin: bars start at 0×
    lines = {line.get("class"): float(line.attrib["x1"]) for line in root.iter(f"{SVG}line")}
    assert lines["target"] == pytest.approx(x0.pop() + result.target * scale, abs=0.01)
    labels = "".join(root.itertext())
    assert f"target ≤ {result.target:g}×" in labels
    assert result.python in labels and result.machine in labels
    assert all(f"{row.ratio:.2f}×" in labels for row in result.rows)


@pytest.mark.parametrize("results", _results(), ids=lambda path: path.stem)
def test_a_results_file_says_how_it_was_measured(results: Path) -> None:
    document = json.loads(results.read_text(encoding="utf-8"))
    assert document["benchmark"] == results.stem
    assert document["rounds"] >= 1 and document["method"] and document["machine"] and document["python"]
    for row in document["rows"]:
        assert row["ratio"] == pytest.approx(row["ragotel"] / row["by_hand"], rel=1e-3), row


def test_the_overhead_chart_draws_its_target(tmp_path: Path) -> None:
    """overhead.py's results (sync and async rows, target 1.15×) chart the same way; a ratio under 1× is a bar."""
    rows = [{"scenario": f"{mode} {name}", "plain": 400, "by_hand": 2000, "ragotel": 2000 * ratio, "ratio": ratio}
            for mode in ("sync", "async") for name, ratio in (("retrieval-3", 1.08), ("pipeline (3 steps)", 0.97),
                                                              ("generation", 1.2))]
    path = tmp_path / "overhead.json"
    path.write_text(json.dumps({"benchmark": "overhead", "python": "3.11.7", "machine": "x86_64, 2 CPUs",
                                "rounds": 9, "method": "m", "target": 1.15, "rows": rows}), encoding="utf-8")
    root = ET.fromstring(pictures.bar_chart_svg(load_benchmark(path)))
    bars = [rect for rect in root.iter(f"{SVG}rect") if "bar" in rect.get("class", "").split()]
    assert [("over" in bar.attrib["class"]) for bar in bars] == [False, False, True] * 2
    assert "target ≤ 1.15×" in "".join(root.itertext())
    assert "Step overhead" in "".join(root.itertext())
