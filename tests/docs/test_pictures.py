"""The documentation's pictures (docsgen/pictures.py): well-formed SVG, current with their committed inputs, and
drawn from real output: each terminal picture's text is what ``ragotel trace`` prints (the quickstart's last trace,
re-run here; one request to the reference app, whose structure is checked against the app's code), each bar of a
chart is its row's ratio."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from docsgen import pictures
from docsgen.pictures import (
    BENCHMARKS,
    CHAR_W,
    PAD,
    REFERENCE_APP,
    TERMINAL_PICTURES,
    WATERFALL,
    TerminalPicture,
    Waterfall,
    WaterfallRow,
    load_benchmark,
    parse_waterfall,
)
from ragotel.cli import main as cli_main
from ragotel.cli.waterfall import SpanRecord, latest_trace_id, load_spans, render_waterfall

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
WIDTH = WATERFALL.width
REFERENCE_APP_CODE = ROOT / "examples" / "reference_app"


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
    assert {picture.svg for picture in TERMINAL_PICTURES} <= set(files)
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


# --------------------------------------------------------------------------- the terminal pictures

terminal_pictures = pytest.mark.parametrize("picture", TERMINAL_PICTURES, ids=lambda picture: picture.text.stem)


def _terminal_lines(root: ET.Element) -> list[str]:
    return ["".join(text.itertext()) for text in root.iter(f"{SVG}text") if text.get("class") == "t"]


def _committed(picture: TerminalPicture) -> tuple[str, Waterfall]:
    text = picture.text.read_text(encoding="utf-8")
    return text, parse_waterfall(text)


def test_the_terminal_pictures_are_the_quickstart_and_the_reference_app() -> None:
    assert [(picture.text.name, picture.svg.name) for picture in TERMINAL_PICTURES] == [
        ("waterfall.txt", "waterfall.svg"), ("reference-app.txt", "reference-app.svg")]
    assert len({picture.title for picture in TERMINAL_PICTURES}) == len(TERMINAL_PICTURES)


@terminal_pictures
def test_a_terminal_picture_holds_every_line_of_its_text(picture: TerminalPicture) -> None:
    text, waterfall = _committed(picture)
    lines = text.rstrip("\n").split("\n")
    root = _svg(picture.svg)
    shown = _terminal_lines(root)
    assert shown == [f"$ {picture.command}", *lines]
    span_lines = lines[2:2 + len(waterfall.rows)]
    assert span_lines and all(line in shown for line in span_lines)
    assert root.findtext(f"{SVG}title") == picture.title


@terminal_pictures
def test_a_terminal_picture_puts_each_run_at_its_column(picture: TerminalPicture) -> None:
    """A fixed character width, kept whatever the font: every run starts at PAD + column × CHAR_W, the runs of a
    line follow on without gaps, and a bar's run is stretched to exactly its columns."""
    for text in _svg(picture.svg).iter(f"{SVG}text"):
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


@terminal_pictures
def test_a_terminal_picture_colours_its_bars_by_step(picture: TerminalPicture) -> None:
    rows = _committed(picture)[1].rows
    assert _bar_classes(_svg(picture.svg)) == [pictures.BAR_CLASSES.get(row.operation, "b") for row in rows]
    assert len({pictures.BAR_CLASSES.get(row.operation, "b") for row in rows}) >= 3  # steps of several kinds


@terminal_pictures
def test_a_terminal_picture_regenerates_byte_identically(picture: TerminalPicture) -> None:
    assert picture.draw() == picture.draw() == picture.svg.read_text(encoding="utf-8")
    assert picture.svg.read_bytes() == pictures.outputs()[picture.svg].encode("utf-8")


@terminal_pictures
def test_a_committed_text_is_laid_out_as_render_waterfall_lays_it_out(picture: TerminalPicture) -> None:
    text, waterfall = _committed(picture)
    assert picture.command == f"ragotel trace --width {picture.width}"  # what the prompt shows is what ran
    assert waterfall.span_count == len(waterfall.rows) >= 4
    span_lines = text.split("\n")[2:2 + len(waterfall.rows)]
    assert {len(line) for line in span_lines} == {picture.width}  # recorded at --width WIDTH
    assert len(waterfall.columns) <= picture.width
    assert len({row.bar_width for row in waterfall.rows}) == 1
    root = waterfall.rows[0]
    assert (root.depth, root.share) == (0, 100.0)
    assert all(row.depth >= 1 for row in waterfall.rows[1:])
    assert not waterfall.notes and not any(row.markers for row in waterfall.rows)  # no errors, no orphans
    for row in waterfall.rows:
        # share = duration ÷ trace, each printed to 0.1: equal within what the rounding of both allows
        slack = 100 * 0.1 / waterfall.total_ms + 0.1
        assert row.share == pytest.approx(100 * row.duration_ms / waterfall.total_ms, abs=slack), row
        assert row.bar_end - row.bar_start == pytest.approx(row.share * row.bar_width / 100, abs=2), row


@terminal_pictures
def test_a_line_render_waterfall_would_not_write_is_refused(picture: TerminalPicture) -> None:
    text = picture.text.read_text(encoding="utf-8")
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

    fresh, committed = parse_waterfall(drawn), _committed(WATERFALL)[1]
    assert _structure(fresh) == _structure(committed)
    assert _untimed_header(fresh.header) == _untimed_header(committed.header)
    assert fresh.columns.split() == committed.columns.split()
    assert {row.bar_width for row in fresh.rows} == {row.bar_width for row in committed.rows}


def test_record_waterfall_gives_the_committed_structure() -> None:
    """``python -m docsgen.pictures --record-waterfall``'s recording, end to end (quickstart, then ``ragotel trace``
    in processes of their own), made here without writing the committed file."""
    recorded = parse_waterfall(pictures.record_waterfall())
    committed = _committed(WATERFALL)[1]
    assert _structure(recorded) == _structure(committed)
    assert _untimed_header(recorded.header) == _untimed_header(committed.header)


# --------------------------------------------------------------------------- the reference app's trace

# The GenAI operation that starts the span name of a step of each kind (ragotel's naming, not the app's).
STEP_OPERATION = {"pipeline": "invoke_workflow", "retrieval": "retrieval", "embedding": "embeddings",
                  "rerank": "rerank", "prompt": "prompt", "generation": "chat"}


def _string_calls(module: Path, owner: str) -> set[tuple[str, str]]:
    """``(method, first argument)`` of every call ``OWNER.method("text", ...)`` in ``module`` (a decorator, a
    ``with``, a plain call), the argument a string or a local variable assigned one before the call
    (``stage = "dense_encode"`` ... ``ragotel.embedding(stage, ...)``): the step names and routes as the code spells
    them, so a rename there is a rename here."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    found: set[tuple[str, str]] = set()
    for scope in [tree, *(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))]:
        assigned = sorted((node.lineno, target.id, node.value.value) for node in ast.walk(scope)
                          if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                          and isinstance(node.value.value, str)
                          for target in node.targets if isinstance(target, ast.Name))
        for call in ast.walk(scope):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and ast.unparse(call.func.value) == owner and call.args):
                continue
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add((call.func.attr, first.value))
            elif isinstance(first, ast.Name):
                values = [value for line, name, value in assigned if name == first.id and line < call.lineno]
                if values:
                    found.add((call.func.attr, values[-1]))
    return found


def _steps(module: str) -> set[tuple[str, str]]:
    """``(kind, name)`` of every step the reference app's ``module`` opens with ragotel."""
    return {(kind, name) for kind, name in _string_calls(REFERENCE_APP_CODE / module, "ragotel")
            if kind in STEP_OPERATION}


def test_string_calls_reads_names_from_literals_and_local_variables(tmp_path: Path) -> None:
    module = tmp_path / "app.py"
    module.write_text(textwrap.dedent("""
        import ragotel

        @ragotel.pipeline("answer")
        def answer(q):
            stage = "encode"
            with ragotel.embedding(stage, model="m"):
                stage = "lookup"
                with ragotel.retrieval(stage):
                    pass
            ragotel.prompt(name_of_nothing)
    """), encoding="utf-8")
    assert _string_calls(module, "ragotel") == {("pipeline", "answer"), ("embedding", "encode"),
                                                ("retrieval", "lookup")}


def _parents(rows: tuple[WaterfallRow, ...]) -> list[int | None]:
    """Each row's parent (its index), from the tree's indentation: the last row above it one level up."""
    parents: list[int | None] = []
    for at, row in enumerate(rows):
        above = [index for index in range(at) if rows[index].depth == row.depth - 1]
        parents.append(above[-1] if above else None)
    return parents


def _shows_step(row: WaterfallRow, kind: str, name: str) -> bool:
    """Whether ``row`` is the span of step ``name`` of ``kind`` as render_waterfall titles it: ``OPERATION NAME``,
    or ``OPERATION WHAT (NAME)``, the latter perhaps cut short by the column (``… (dense_en…``)."""
    operation = STEP_OPERATION[kind]
    title = row.title
    if title == f"{operation} {name}":
        return True
    if not title.startswith(f"{operation} ") or " (" not in title:
        return False
    step = title[title.rindex(" (") + 1:]
    if step.endswith(("…", "~")):
        return len(step) > 2 and f"({name})".startswith(step[:-1])
    return step == f"({name})"


def _step_of(row: WaterfallRow, steps: set[tuple[str, str]]) -> tuple[str, str]:
    shown = [(kind, name) for kind, name in steps if _shows_step(row, kind, name)]
    assert len(shown) == 1, f"{row.title!r} ({row.service}) is none of the app's steps (or several): {sorted(steps)}"
    return shown[0]


def test_the_reference_app_picture_is_a_cross_service_trace_as_the_app_makes_it() -> None:
    """One POST /chat as the reference app answers it: the chat API's pipeline retrieves through the retriever
    service (its POST /search under the retrieval step, the encoder and FAISS under its search step), builds the
    prompt, and calls vLLM, whose own llm_request span is under the model call; every step is one the app's code
    opens, by kind and name (examples/reference_app/chat_api.py and retriever.py)."""
    rows = _committed(REFERENCE_APP)[1].rows
    parents = _parents(rows)
    children = {at: [index for index, parent in enumerate(parents) if parent == at] for at in range(len(rows))}
    assert {row.service for row in rows} == {"rag-chat-api", "rag-retriever", "vllm"}
    code = {"rag-chat-api": _steps("chat_api.py"), "rag-retriever": _steps("retriever.py")}
    routes = {service: {path for method, path in _string_calls(REFERENCE_APP_CODE / module, "app") if method == "post"}
              for service, module in (("rag-chat-api", "chat_api.py"), ("rag-retriever", "retriever.py"))}
    assert len(code["rag-chat-api"]) >= 3 and len(code["rag-retriever"]) >= 3  # the reading found the steps

    def step(at: int) -> tuple[str, str]:
        return _step_of(rows[at], code[rows[at].service])

    def server(at: int, service: str) -> str:
        row = rows[at]
        assert row.service == service and row.title.startswith("POST "), row
        path = row.title.removeprefix("POST ")
        assert path in routes[service], f"{service} serves no POST {path}: {sorted(routes[service])}"
        return path

    # The chat API: POST /chat, its pipeline, and under that retrieval, prompt and the model call, in that order.
    assert parents[0] is None and server(0, "rag-chat-api") == "/chat"
    (pipeline,) = children[0]
    assert rows[pipeline].service == "rag-chat-api" and step(pipeline)[0] == "pipeline"
    stages = children[pipeline]
    assert [rows[at].service for at in stages] == ["rag-chat-api"] * 3
    retrieve, build, chat = stages
    assert step(retrieve)[0] == "retrieval" and step(build)[0] == "prompt"
    assert rows[chat].operation == "chat" and rows[chat].title != "chat"  # chat MODEL: instrument_httpx's model call

    # The retriever, called by the chat API's retrieval step: its POST /search and search step, the encoder then FAISS.
    (search_request,) = children[retrieve]
    path = server(search_request, "rag-retriever")
    assert ("post", path) in _string_calls(REFERENCE_APP_CODE / "chat_api.py", "self.retriever")
    (search,) = children[search_request]
    assert rows[search].service == "rag-retriever" and step(search)[0] == "retrieval"
    encode, lookup = children[search]
    assert [rows[at].service for at in (encode, lookup)] == ["rag-retriever"] * 2
    assert step(encode)[0] == "embedding" and step(lookup)[0] == "retrieval"
    assert rows[lookup].title.startswith("retrieval faiss "), rows[lookup]  # the dense (FAISS) index

    # vLLM's own span, under the chat API's model call: the trace context crossed the HTTP call.
    (llm_request,) = children[chat]
    assert (rows[llm_request].service, rows[llm_request].title) == ("vllm", "llm_request")
    assert not children[llm_request]

    # Every span is one of the above: each step the waterfall shows is in the code, none twice.
    assert len(rows) == 10
    shown = [(row.service, step(at)) for at, row in enumerate(rows) if at not in (0, search_request, chat, llm_request)]
    assert len(set(shown)) == len(shown) == 6


def test_record_trace_draws_the_trace_with_the_cli(tmp_path: Path) -> None:
    """``python -m docsgen.pictures --record-trace TRACE_ID --dir DIR``'s recording, end to end (``ragotel trace`` in
    a process of its own, on a directory as ``ragotel receive`` writes it), on spans of the three services."""
    trace_id, ms = "9a" * 16, 1_000_000
    spans = [
        SpanRecord(trace_id, "01" * 8, None, "POST /chat", "rag-chat-api", 0, 200 * ms, kind="SERVER"),
        SpanRecord(trace_id, "02" * 8, "01" * 8, "retrieval retriever", "rag-chat-api", 1 * ms, 20 * ms,
                   attributes={"rag.step.name": "retrieve", "rag.step.kind": "retrieval"}),
        SpanRecord(trace_id, "03" * 8, "02" * 8, "POST /search", "rag-retriever", 2 * ms, 19 * ms, kind="SERVER"),
        SpanRecord(trace_id, "04" * 8, "01" * 8, "chat tiny-llama", "rag-chat-api", 25 * ms, 199 * ms),
        SpanRecord(trace_id, "05" * 8, "04" * 8, "llm_request", "vllm", 26 * ms, 198 * ms, kind="SERVER"),
        SpanRecord("cd" * 16, "06" * 8, None, "GET /health", "rag-chat-api", 300 * ms, 301 * ms),
    ]
    (tmp_path / "spans.jsonl").write_text("".join(json.dumps(span.to_json()) + "\n" for span in spans),
                                          encoding="utf-8")
    recorded = pictures.record_trace(trace_id, tmp_path)
    assert recorded == render_waterfall(spans, trace_id, width=REFERENCE_APP.width) + "\n"
    assert {row.service for row in parse_waterfall(recorded).rows} == {"rag-chat-api", "rag-retriever", "vllm"}

    with pytest.raises(ValueError, match="vllm"):  # vLLM's span not there yet
        pictures.record_trace("cd" * 16, tmp_path)
    with pytest.raises(RuntimeError, match="not found"):
        pictures.record_trace("ef" * 16, tmp_path)


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
