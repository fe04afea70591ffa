"""Steps run in thread pools and threads stay in the request's trace once ``configure()`` ran.

``ThreadPoolExecutor.submit``/``map``, ``loop.run_in_executor`` and ``threading.Thread`` do not copy the
current context; ``opentelemetry-instrumentation-threading`` does, and ``configure()`` turns it on unless
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names it. ``asyncio.to_thread`` copies the context by itself.
Each case runs in a fresh interpreter, as an application would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import asyncio, json, threading
    from concurrent.futures import ThreadPoolExecutor

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import ragotel

    exporter = InMemorySpanExporter()
    ragotel.configure(service_name="threads", span_processors=[SimpleSpanProcessor(exporter)])

    @ragotel.retrieval("search")
    def search(query: str, k: int = 2) -> list[dict]:
        return [{"id": query, "score": 0.5}][:k]

    async def main() -> None:
        with ragotel.pipeline("chat"):
            with ThreadPoolExecutor(2) as pool:
                pool.submit(search, "submit").result()
                list(pool.map(search, ["map"]))
                await asyncio.get_running_loop().run_in_executor(pool, search, "run_in_executor")
            thread = threading.Thread(target=search, args=("thread",))
            thread.start()
            thread.join()
            await asyncio.to_thread(search, "to_thread")

    asyncio.run(main())
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "invoke_workflow chat"]
    print(json.dumps([[s.context.trace_id == root.context.trace_id,
                       s.parent is not None and s.parent.span_id == root.context.span_id]
                      for s in spans if s.name == "retrieval search"]))
''')


def run(env_extra: dict[str, str]) -> list[list[bool]]:
    env = {k: v for k, v in os.environ.items() if k != "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"}
    env.update({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                **env_extra})
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_every_way_into_a_thread_keeps_the_trace() -> None:
    found = run({})
    assert found == [[True, True]] * 5  # submit, map, run_in_executor, Thread, to_thread


@pytest.mark.parametrize("disabled", ["threading", "*"])
def test_disabling_the_threading_instrumentation_is_honoured(disabled: str) -> None:
    found = run({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled})
    # Only asyncio.to_thread still copies the context; the four others start traces of their own.
    assert sorted(found) == sorted([[False, False]] * 4 + [[True, True]])
