"""Read clean text from JSONL, plain text, directories, Parquet or a Hugging Face dataset; split it into
paragraphs and sentences; drop duplicates; and split train/dev/test by document so nothing leaks across.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from normalizer.segment import segment

logger = logging.getLogger(__name__)

DEFAULT_CORPORA = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora"
NOT_CLEAN = frozenset({"tortured_phrases.jsonl"})
"""Files of the shared corpora folder that are not clean prose (the real spun phrase pairs)."""


@dataclass(frozen=True)
class Document:
    """A clean document: an id unique within its corpus and its text (paragraphs separated by newlines)."""

    id: str
    text: str


def _read_jsonl(path: Path, field: str) -> Iterator[Document]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            if field not in row:
                raise ValueError(f"{path}:{n}: no field {field!r}")
            yield Document(str(row.get("id", f"{path.stem}-{n}")), str(row[field]))


def _read_parquet(path: Path, field: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if field not in table.column_names:
        raise ValueError(f"{path}: no column {field!r} (has {table.column_names})")
    ids = table.column("id").to_pylist() if "id" in table.column_names else None
    for n, text in enumerate(table.column(field).to_pylist()):
        yield Document(str(ids[n]) if ids else f"{path.stem}-{n}", text or "")


def _read_file(path: Path, field: str) -> Iterator[Document]:
    if path.suffix == ".jsonl":
        yield from _read_jsonl(path, field)
    elif path.suffix == ".parquet":
        yield from _read_parquet(path, field)
    else:
        yield Document(path.stem, path.read_text(encoding="utf-8"))


def read_documents(source: str | Path, field: str = "text") -> Iterator[Document]:
    """Documents from a file (.jsonl, .parquet, anything else as plain text), a directory, a glob, or a Hugging Face
    dataset (a `save_to_disk` folder or a hub name, loaded with `datasets`; its `train` split)."""
    path = Path(source)
    if path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".parquet", ".txt")):
            yield from _read_file(child, field)
    elif path.is_file():
        yield from _read_file(path, field)
    elif glob.has_magic(str(source)):
        for name in sorted(glob.glob(str(source))):
            yield from _read_file(Path(name), field)
    else:
        yield from _read_hf(str(source), field)


def _read_hf(name: str, field: str) -> Iterator[Document]:
    import datasets

    if Path(name).exists():
        ds = datasets.load_from_disk(name)
    else:
        ds = datasets.load_dataset(name)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"]
    for n, row in enumerate(ds):
        yield Document(str(row.get("id", f"{name}-{n}")), row[field])


def paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs (lines) of a document, stripped."""
    return [p.strip() for p in text.split("\n") if p.strip()]


def sentences(paragraph: str, max_words: int = 48) -> list[str]:
    """Sentences of a paragraph (over-long ones cut, see `normalizer.segment`)."""
    return [paragraph[a:b] for a, b in segment(paragraph, max_words)]


def split_of(doc_id: str, dev: float = 0.03, test: float = 0.03) -> str:
    """`train`, `dev` or `test` for a document id: a stable hash, so the split never depends on reading order."""
    h = int(hashlib.sha1(doc_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test else "dev" if h < test + dev else "train"


def dedupe(docs: Iterable[Document]) -> Iterator[Document]:
    """Documents with paragraphs seen before (exact, whitespace-normalised) removed; empty documents dropped."""
    seen: set[str] = set()
    dropped = 0
    for doc in docs:
        keep = []
        for p in paragraphs(doc.text):
            key = hashlib.sha1(" ".join(p.split()).encode()).hexdigest()
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            keep.append(p)
        if keep:
            yield Document(doc.id, "\n".join(keep))
    logger.info("dedupe: dropped %d repeated paragraphs", dropped)


def load_splits(
    sources: Iterable[str | Path] | None = None, field: str = "text", dev: float = 0.03, test: float = 0.03
) -> dict[str, list[Document]]:
    """Read, de-duplicate and split documents by document; default sources are the shared news corpora."""
    if sources is None:
        sources = sorted(p for p in DEFAULT_CORPORA.glob("*.jsonl") if p.name not in NOT_CLEAN)
        if not sources:
            raise FileNotFoundError(f"no corpora in {DEFAULT_CORPORA}; pass sources explicitly")
    out: dict[str, list[Document]] = {"train": [], "dev": [], "test": []}
    docs = itertools.chain.from_iterable(read_documents(source, field) for source in sources)
    for doc in dedupe(docs):
        out[split_of(doc.id, dev, test)].append(doc)
    return out
