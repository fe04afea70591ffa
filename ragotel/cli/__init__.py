"""The ``ragotel`` command line: local trace tooling for development.

Usage::

    ragotel receive                      # OTLP/HTTP on 127.0.0.1:4318 -> var/telemetry/*.jsonl
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
    ragotel trace                        # waterfall of the latest finished trace
    ragotel trace 4bf92f35               # a given trace, by id or unique id prefix
    ragotel bench URL -c 8 -d 60 --out a.json   # load a chat API; figures to the terminal and a.json
    ragotel bench compare a.json b.json  # runs side by side, with ratios against the first
    ragotel trace --list                 # the traces received, newest first
    ragotel dashboards --check           # in a source checkout: dashboards and rules up to date?

From Python, ``main(["trace", "--dir", "var/telemetry"])`` returns the exit code.

Subcommands live in ``COMMANDS``; add one by adding an entry. Handlers import
their dependencies lazily so that ``ragotel --help`` and ``ragotel trace`` do not pay
for protobuf and the OTLP packages.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ragotel.cli.files import DEFAULT_DIR, LOGS_FILENAME, METRICS_FILENAME, SPANS_FILENAME

__all__ = ["COMMANDS", "DEFAULT_DIR", "LOGS_FILENAME", "METRICS_FILENAME", "SPANS_FILENAME", "Command",
           "build_parser", "main"]



@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: ``configure`` adds its arguments, ``run`` returns the exit code."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _error(command: str, message: str) -> int:
    print(f"ragotel {command}: {message}", file=sys.stderr)
    return 1


def _add_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"telemetry directory holding {SPANS_FILENAME}, {LOGS_FILENAME} and {METRICS_FILENAME} "
             "(default: %(default)s)",
    )


# --------------------------------------------------------------------------- receive


def _configure_receive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=4318, help="port, 0 for any free one (default: %(default)s)")
    _add_dir_argument(parser)


def _run_receive(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ragotel.cli.receiver import OtlpReceiver

    directory: Path = args.dir
    receiver = OtlpReceiver(
        host=args.host,
        port=args.port,
        spans_path=directory / SPANS_FILENAME,
        logs_path=directory / LOGS_FILENAME,
        metrics_path=directory / METRICS_FILENAME,
    )
    try:
        receiver.start()
    except OSError as exc:
        return _error("receive", f"cannot listen on {args.host}:{args.port}: {exc}")

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # `kill` / `docker stop` send SIGTERM; treat it like Ctrl-C so the summary prints.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"ragotel receiver listening on {receiver.endpoint}")
        print(f"  spans   -> {receiver.spans_path}")
        print(f"  logs    -> {receiver.logs_path}")
        print(f"  metrics -> {receiver.metrics_path}")
        print(f"export OTEL_EXPORTER_OTLP_ENDPOINT={receiver.endpoint}")
        print("Ctrl-C to stop", flush=True)
        receiver.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    stats = receiver.stats
    print(
        f"stopped: {stats.spans} spans, {stats.logs} log records, {stats.metric_points} metric points "
        f"in {stats.requests} requests ({stats.rejected} rejected)"
    )
    return 0


# --------------------------------------------------------------------------- trace


def _configure_trace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace_id", nargs="?", help="trace id or unique prefix (default: the latest trace)")
    parser.add_argument("--list", action="store_true", help="list the traces, newest first, instead of drawing one")
    parser.add_argument("--all", action="store_true", help="with --list: include scrapes and probes (/metrics, ...)")
    _add_dir_argument(parser)
    parser.add_argument("--width", type=int, default=None, help="output width (default: terminal width)")


def _stdout_is_unicode() -> bool:
    try:
        "█├└│…".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _run_trace(args: argparse.Namespace) -> int:
    from ragotel.cli.waterfall import (
        find_trace_ids,
        latest_trace_id,
        list_traces,
        load_exemplars,
        load_spans,
        render_exemplars,
        render_waterfall,
    )

    spans_path: Path = args.dir / SPANS_FILENAME
    try:
        spans = load_spans(spans_path)
    except FileNotFoundError:
        return _error("trace", f"no spans file at {spans_path}; run `ragotel receive --dir {args.dir}` first")
    except OSError as exc:
        return _error("trace", f"cannot read {spans_path}: {exc}")
    if not spans:
        return _error("trace", f"no spans in {spans_path} yet")

    if args.list:
        traces = list_traces(spans, include_background=args.all)
        if not traces:
            return _error("trace", f"only scrapes and probes in {spans_path} (--all lists them)")
        for t in traces:
            ended = datetime.fromtimestamp(t.end_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{t.trace_id}  {ended}  {t.duration_ms:9.1f} ms  {t.spans:3d} spans  {t.service}: {t.root}")
        return 0
    if args.trace_id:
        matches = find_trace_ids(spans, args.trace_id)
        if not matches:
            return _error("trace", f"trace {args.trace_id} not found in {spans_path}")
        if len(matches) > 1:
            listed = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            return _error("trace", f"{args.trace_id} matches {len(matches)} traces: {listed}")
        trace_id = matches[0]
    else:
        latest = latest_trace_id(spans)
        if latest is None:  # unreachable with spans present; keeps the type narrow
            return _error("trace", f"no traces in {spans_path}")
        trace_id = latest

    width = args.width if args.width is not None else shutil.get_terminal_size((100, 24)).columns
    print(render_waterfall(spans, trace_id, width=width, ascii_only=not _stdout_is_unicode()))
    exemplars = load_exemplars(args.dir / METRICS_FILENAME, trace_id)
    if exemplars:
        print()
        print(render_exemplars(exemplars, spans))
    return 0


# --------------------------------------------------------------------------- bench


def _configure_bench(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", metavar="{run,compare}")
    run = sub.add_parser("run", help="load a chat API (the default: `ragotel bench URL ...`)")
    run.add_argument("url", help="the chat API's base URL, e.g. http://127.0.0.1:8080")
    run.add_argument("--stream", action="store_true", help="use POST /chat/stream (server-sent events)")
    run.add_argument("-c", "--concurrency", type=int, default=4, help="requests in flight (default: %(default)s)")
    amount = run.add_mutually_exclusive_group()
    amount.add_argument("-n", "--requests", type=int, help="stop after this many requests")
    amount.add_argument("-d", "--duration", type=float, help="stop after this many seconds (default: 30)")
    run.add_argument("--question", action="append", help="a question to ask (repeat; default: a built-in set)")
    run.add_argument("--questions", type=Path, help="a file with one question per line")
    run.add_argument("--max-tokens", type=int, default=32, help="max_tokens of each request (default: %(default)s)")
    run.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)")
    run.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                     help="label the run (provider, cluster, region, model, ...); repeat")
    run.add_argument("--out", type=Path, help="write the result as JSON here")
    compare = sub.add_parser("compare", help="print runs side by side with ratios against the first")
    compare.add_argument("results", nargs="+", type=Path, help="JSON files written by --out")


def _run_bench(args: argparse.Namespace) -> int:
    try:
        from ragotel.cli import bench
    except ImportError as exc:  # httpx is an optional dependency
        return _error("bench", f"needs httpx ({exc}); pip install 'ragotel[httpx]'")
    if args.bench_command == "compare":
        try:
            results = [bench.Result.load(path) for path in args.results]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return _error("bench", f"cannot read results: {exc}")
        print(bench.compare(results, [path.stem for path in args.results]))
        return 0
    try:
        labels = dict(label.split("=", 1) for label in args.label)
    except ValueError:
        return _error("bench", "labels are KEY=VALUE")
    questions = tuple(args.question or ())
    if args.questions:
        questions += tuple(line.strip() for line in args.questions.read_text().splitlines() if line.strip())
    try:
        config = bench.BenchConfig(
            args.url, stream=args.stream, concurrency=args.concurrency, requests=args.requests,
            duration_s=None if args.requests is not None else (30.0 if args.duration is None else args.duration),
            questions=questions or bench.DEFAULT_QUESTIONS, max_tokens=args.max_tokens, timeout_s=args.timeout)
    except ValueError as exc:
        return _error("bench", str(exc))
    progress = bench.Progress(config)
    import asyncio

    samples, wall_s = asyncio.run(bench.run(config, progress))
    progress.close()
    result = bench.summarize(samples, wall_s, config, bench.default_labels(labels))
    print(bench.render(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(result.to_json())
        print(f"written to {args.out}")
    if samples and all(sample.status == bench.CONNECTION for sample in samples):
        return _error("bench", f"nothing answered at {config.url} (every connection failed; stopped early): "
                               "is the chat API running, on that host and port?")
    return 0 if any(sample.ok for sample in samples) else 1  # every request failed: say so to scripts


# --------------------------------------------------------------------------- dashboards


def _configure_dashboards(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="report what is out of date, change nothing")


def _run_dashboards(args: argparse.Namespace) -> int:
    # The generator lives beside the library in the repository (dashboards/), not in the wheel.
    try:
        from dashboards.__main__ import main as generate
    except ImportError as exc:
        return _error("dashboards", f"the generator needs a ragotel source checkout and the dashboards extra "
                                    f"(missing: {exc.name}); run it there: pip install -e '.[dashboards]'")
    return generate(["--check"] if args.check else [])


COMMANDS: dict[str, Command] = {
    "receive": Command(
        "run a local OTLP/HTTP receiver writing spans, logs and metrics as JSON lines",
        _configure_receive,
        _run_receive,
    ),
    "trace": Command("print a trace as a waterfall (the latest one by default)", _configure_trace, _run_trace),
    "bench": Command("load a chat API and report latency, time to first chunk, throughput, errors; compare runs",
                     _configure_bench, _run_bench),
    "dashboards": Command("generate the Grafana dashboards and alert rules (--check: report drift)",
                          _configure_dashboards, _run_dashboards),
}


def build_parser() -> argparse.ArgumentParser:
    from ragotel._version import __version__

    parser = argparse.ArgumentParser(prog="ragotel", description="ragotel local trace tooling")
    parser.add_argument("--version", action="version", version=f"ragotel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.configure(subparsers.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragotel`` script; returns the process exit code.

    A closed pipe (``ragotel trace --list | head -1``) ends any command quietly, with the status of a
    command stopped by SIGPIPE (141).

    >>> main(["trace", "--dir", "/nonexistent"])  # doctest: +SKIP
    1
    """
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
    except BrokenPipeError:
        # Python flushes stdout once more at exit; point it at /dev/null so that flush has nowhere to fail.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `ragotel bench URL ...` is short for `ragotel bench run URL ...`.
    if argv[:1] == ["bench"] and len(argv) > 1 and argv[1] not in {"run", "compare", "-h", "--help"}:
        argv.insert(1, "run")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "bench" and args.bench_command is None:
        parser.parse_args(["bench", "--help"])
    return COMMANDS[args.command].run(args)
