"""Every ``ragotel`` command ends quietly when the reader of its output has gone (``| head -1``): real pipes,
real processes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ragotel.cli.waterfall import SpanRecord

ROOT = Path(__file__).resolve().parents[1]
RAGOTEL = [sys.executable, "-m", "ragotel.cli"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Far more traces than a pipe buffers (64 KiB), and one trace of many spans."""
    directory = tmp_path_factory.mktemp("telemetry")
    spans = [SpanRecord(f"{i:032x}", f"{i:016x}", None, f"POST /chat {i}", "chat-api", i * 1000, i * 1000 + 500)
             for i in range(1, 3001)]
    spans += [SpanRecord("f" * 32, f"{i:016x}", "0" * 15 + "1" if i > 1 else None, f"step {i}", "chat-api",
                         10**9 + i, 10**9 + i + 10) for i in range(1, 2001)]
    (directory / "spans.jsonl").write_text("".join(json.dumps(s.to_json()) + "\n" for s in spans))
    return directory


def test_trace_list_into_head(telemetry: Path) -> None:
    """The issue's own case, through a shell: ``head -1`` exits after one line, the command writes on."""
    command = f"{shlex.join([*RAGOTEL, 'trace', '--list', '--dir', str(telemetry)])} | head -1"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.stdout.count("\n") == 1 and "2000 spans" in proc.stdout  # the newest trace
    assert proc.stderr == ""


# Each command with the status it ends with: 141 (as a command stopped by SIGPIPE) where its output met the
# closed pipe, its own status where it wrote only to stderr (argparse drops a help text it cannot write).
COMMANDS = [
    (["trace", "--list", "--dir", "{dir}"], {141}),
    (["trace", "f" * 32, "--dir", "{dir}"], {141}),
    (["trace", "--dir", "{dir}/missing"], {1}),
    (["receive", "--port", "0", "--dir", "{dir}/received"], {141}),
    (["bench", "compare", "{dir}/missing.json"], {1}),
    (["dashboards", "--check"], {0, 1, 141}),  # up to date or not, in whatever tree the tests run
    (["--help"], {0}),
    (["--version"], {0}),
]


@pytest.mark.parametrize(("args", "statuses"), COMMANDS, ids=[" ".join(a for a in args if "{dir}" not in a)
                                                                  for args, _ in COMMANDS])
def test_every_command_is_quiet_on_a_closed_pipe(telemetry: Path, args: list[str], statuses: set[int]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first byte: every write to stdout fails
    try:
        proc = subprocess.run([*RAGOTEL, *(a.replace("{dir}", str(telemetry)) for a in args)], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=ENV, timeout=120, cwd=ROOT)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode in statuses, proc.stderr
    if proc.returncode == 141:
        assert proc.stderr == ""
