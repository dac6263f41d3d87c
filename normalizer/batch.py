"""`normalize-batch`: restore whole corpora on Ray Data, embedded on this machine or on a cluster.

    normalize-batch news.jsonl more.parquet --output restored/ --workers 2

The job is cut into shards of `--shard-size` records, planned by the driver before anything runs: each shard is one
input file's record range. Ray Data runs the shards through a pool of actors (`map_batches` with an
`ActorPoolStrategy`), each loading the model once; an actor reads its shard, restores it and writes it to the output
folder atomically (a temporary file renamed into place), so a shard is either all there or not there. Ray restarts
a dead actor and retries its shard; the retry rewrites the same file, so nothing is duplicated. The driver records
each finished shard in `_manifest.json` (inputs with sizes and hashes, model files' hashes, settings, counts, errors,
timings); the same command run again skips the finished shards and does the rest.

Output shards (`part-000000.parquet`, ...; `--format jsonl` for JSON lines) hold every input column, then
`restored` (the text, restored), `edits` (JSON list), `spin_score`, `error` (null, or why the record was passed
through unchanged), `position` (the record's place in the whole job, 0-based: sort by it to restore input order),
`source` and `row` (its input file and row there), and `raw` (only for records that could not be parsed: the line's
bytes). Every input record gives exactly one output record.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
ADAPTED = "_adapted.json"
"""What --adapt learnt (`normalizer.restorer.CorpusEvidence`), kept in the output folder and reused on resume."""
SHARD_FILE_RE = re.compile(r"part-\d{6}\.(?:parquet|jsonl)")
"""The name of a finished shard's file (`Shard.name` and the format's suffix)."""
FORMAT_VERSION = 1
KINDS = ("jsonl", "text", "parquet", "hf")
ADDED = ("edits", "spin_score", "error", "position", "source", "row", "raw")  # plus the output field


class JobMismatch(ValueError):
    """The output folder holds a different job (other inputs, model or settings)."""


# ---- planning -------------------------------------------------------------------------------------------------


@dataclass
class Source:
    """One input: a file (JSONL, text, Parquet) or a Hugging Face dataset saved with `save_to_disk`."""

    path: str
    kind: str
    bytes: int
    sha256: str
    records: int
    offsets: list[int] = field(default_factory=list, repr=False)
    """Line formats: the byte offset of every `shard_size`-th record (and the file's end); not in the manifest."""


@dataclass
class Shard:
    index: int
    source: int
    start: int
    """First record's row in its source."""
    count: int
    position: int
    """First record's position in the whole job."""
    byte_start: int = 0
    byte_end: int = 0

    @property
    def name(self) -> str:
        return f"part-{self.index:06d}"


@dataclass
class Settings:
    """What defines a job's output: a manifest with other settings is another job."""

    field: str = "text"
    output_field: str = "restored"
    format: str = "parquet"
    shard_size: int = 2000
    max_chars: int = 1_000_000
    model: str | None = None
    engine: str = "auto"
    lm: str | None = None
    threshold: float | None = None
    dictionaries: list[str] = dataclasses.field(default_factory=list)
    """Spinner dictionary files given to the pipeline (their SHA-256 is part of the job, see `model_fingerprint`)."""
    adapt: int = 0
    """Learn the spinner from the first this many records before restoring (`Restorer.adapt`); 0: off."""
    channel: str | None = None
    """A file an earlier `--adapt` learnt (`CorpusEvidence`), to restore with instead of learning (its SHA-256 is
    part of the job, see `model_fingerprint`)."""
    lm_dtype: str = "auto"
    """The pipeline's language model precision (`normalizer.device.lm_precision`)."""

    def as_job(self) -> dict:
        """The settings as the manifest records them: `lm_dtype` only where it is not `auto`, so that a job
        started before it was a setting resumes as the same job."""
        out = dataclasses.asdict(self)
        if out["lm_dtype"] == "auto":
            del out["lm_dtype"]
        return out


def detect_kind(path: Path, kind: str | None = None) -> str:
    if kind:
        if kind not in KINDS:
            raise ValueError(f"input format must be one of {', '.join(KINDS)}, got {kind!r}")
        return kind
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
            raise ValueError(
                f"{path} is a DatasetDict; give one split's folder, e.g. {path / (splits or ['train'])[0]}"
            )
        if (path / "state.json").is_file():
            return "hf"
        raise ValueError(f"{path} is a folder but not a dataset saved with save_to_disk (no state.json)")
    suffix = path.name.lower().rsplit(".", 1)[-1] if "." in path.name else ""
    return {"jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl", "parquet": "parquet", "pq": "parquet"}.get(
        suffix, "text"
    )


def _hash_files(paths: Iterable[Path]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def scan_lines(path: Path, every: int) -> tuple[int, str, int, list[int]]:
    """(bytes, sha256, records, offsets): one pass over a line file; a record is a line, the last one with or
    without its newline; `offsets` holds the byte offset of records 0, every, 2*every, ... and the end."""
    digest, offsets, records, pos = hashlib.sha256(), [0], 0, 0
    with open(path, "rb") as f:
        for line in f:
            digest.update(line)
            pos += len(line)
            records += 1
            if records % every == 0:
                offsets.append(pos)
    if offsets[-1] != pos:
        offsets.append(pos)
    return pos, digest.hexdigest(), records, offsets


def scan(path: str | Path, shard_size: int, kind: str | None = None) -> Source:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input not found: {p}")
    kind = detect_kind(p, kind)
    if kind in ("jsonl", "text"):
        size, sha, records, offsets = scan_lines(p, shard_size)
        return Source(str(p), kind, size, sha, records, offsets)
    if kind == "parquet":
        import pyarrow.parquet as pq

        records = pq.ParquetFile(p).metadata.num_rows
        size, sha = _hash_files([p])
        return Source(str(p), kind, size, sha, records)
    ds = _load_hf(p)
    size, sha = _hash_files(sorted(f for f in p.iterdir() if f.is_file()))
    return Source(str(p), kind, size, sha, len(ds))


def plan_shards(sources: list[Source], shard_size: int) -> list[Shard]:
    shards, position = [], 0
    for s, src in enumerate(sources):
        for k, start in enumerate(range(0, src.records, shard_size)):
            count = min(shard_size, src.records - start)
            shard = Shard(len(shards), s, start, count, position + start)
            if src.offsets:
                shard.byte_start, shard.byte_end = src.offsets[k], src.offsets[k + 1]
            shards.append(shard)
        position += src.records
    return shards


# ---- reading and restoring one shard --------------------------------------------------------------------------


def _load_hf(path: Path):
    try:
        from datasets import load_from_disk
    except ImportError as e:
        raise ImportError("reading a saved Hugging Face dataset needs `datasets` (pip install datasets)") from e
    return load_from_disk(str(path))


@dataclass
class Record:
    row: int
    columns: dict[str, Any] | None
    """The input's columns (None: the record could not be parsed; see `raw`)."""
    text: str | None = None
    error: str | None = None
    raw: bytes | None = None


def _strip_newline(line: bytes) -> bytes:
    """A line without its "\n" (already split off) and the "\r" of a CRLF ending."""
    return line[:-1] if line.endswith(b"\r") else line


def read_records(src: Source, shard: Shard, settings: Settings) -> tuple[list[Record], Any]:
    """The shard's records, and for Arrow inputs the shard's table (columns kept with their types)."""
    if src.kind in ("jsonl", "text"):
        with open(src.path, "rb") as f:
            f.seek(shard.byte_start)
            data = f.read(shard.byte_end - shard.byte_start)
        # Records end at "\n" only, as `scan_lines` counted them (a lone "\r" is part of its line).
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        if len(lines) != shard.count:
            raise RuntimeError(f"{src.path} changed since the job was planned (shard {shard.name})")
        return [
            _parse_line(src.kind, shard.start + i, _strip_newline(ln), settings) for i, ln in enumerate(lines)
        ], None
    table = _read_table(src, shard)
    values = table.column(settings.field).to_pylist() if settings.field in table.column_names else None
    records = []
    for i in range(table.num_rows):
        rec = Record(shard.start + i, {})
        if values is None:
            rec.error = f"no field {settings.field!r}"
        else:
            _set_text(rec, values[i], settings)
        records.append(rec)
    return records, table


def _read_table(src: Source, shard: Shard):
    if src.kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(src.path)
        groups, first, row = [], None, 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if row + n > shard.start and row < shard.start + shard.count:
                groups.append(g)
                first = row if first is None else first
            row += n
        table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
        return table.slice(shard.start - (first or 0), shard.count) if groups else pa.table({})
    return _load_hf(Path(src.path)).with_format("arrow")[shard.start : shard.start + shard.count]


def _set_text(rec: Record, value: Any, settings: Settings) -> None:
    if not isinstance(value, str):
        rec.error = f"field {settings.field!r} is {type(value).__name__}, not a string"
    elif len(value) > settings.max_chars:
        rec.text, rec.error = value, f"over-long: {len(value):,} characters > max_chars {settings.max_chars:,}"
    else:
        rec.text = value


_JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array"}


def _encodable(decoded: str, obj) -> bool:
    """Whether a parsed JSON object holds only text that UTF-8 can write (no lone surrogate from a `\\ud800`)."""
    if "\\u" not in decoded.lower():
        return True  # a surrogate can only come from an escape
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_line(kind: str, row: int, line: bytes, settings: Settings) -> Record:
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return Record(row, None, error=f"invalid UTF-8 at byte {e.start}", raw=line)
    if kind == "text":
        rec = Record(row, {settings.field: decoded})
        _set_text(rec, decoded, settings)
        return rec
    try:
        obj = json.loads(decoded)
    except ValueError as e:
        return Record(row, None, error=f"not JSON ({e})", raw=line)
    except RecursionError:
        return Record(row, None, error="not JSON (nested too deep)", raw=line)
    if not isinstance(obj, dict):
        return Record(row, None, error=f"a JSON {_JSON_TYPES.get(type(obj), 'value')}, not an object", raw=line)
    if not _encodable(decoded, obj):
        return Record(row, None, error="holds a lone surrogate escape (such as \\ud800), not text", raw=line)
    clash = sorted(set(obj) & ({settings.output_field, *ADDED} - {settings.field}))
    if clash:
        return Record(row, None, error=f"input field {clash[0]!r} clashes with an output column", raw=line)
    rec = Record(row, obj)
    if settings.field not in obj:
        rec.error = f"no field {settings.field!r}"
    else:
        _set_text(rec, obj[settings.field], settings)
    return rec


def restore_records(restorer, records: list[Record], batch_size: int | None) -> dict[int, Any]:
    """Restorations by record index (the shard's records in one call, see `restore_each`); a record whose
    restoration fails keeps the error and passes through unchanged."""
    from normalizer.api import restore_each

    todo = [k for k, r in enumerate(records) if r.text is not None and r.error is None]
    found, failed = restore_each(restorer, [records[k].text for k in todo], batch_size)
    for i, message in failed.items():
        records[todo[i]].error = message
    return {todo[i]: res for i, res in found.items()}


def _jsonable(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    return str(value)


class ShardWriteError(RuntimeError):
    """A shard's output could not be written; the message names the shard and its records."""


def process_shard(restorer, src: Source, shard: Shard, settings: Settings, out_dir: Path, batch_size=None) -> dict:
    """Read, restore and write one shard (atomically); its counts."""
    t0 = time.perf_counter()
    records, table = read_records(src, shard, settings)
    from normalizer.edits import edit_json

    found = restore_records(restorer, records, batch_size)
    added = {name: [] for name in (settings.output_field, *ADDED)}
    n_edits = 0
    for k, rec in enumerate(records):
        res = found.get(k)
        added[settings.output_field].append(res.text if res is not None else rec.text)
        added["edits"].append(json.dumps([edit_json(e) for e in res.edits], ensure_ascii=False) if res else None)
        added["spin_score"].append(round(res.spin_score, 6) if res is not None else None)
        added["error"].append(rec.error)
        added["position"].append(shard.position + k)
        added["source"].append(src.path)
        added["row"].append(rec.row)
        added["raw"].append(rec.raw)
        n_edits += len(res.edits) if res is not None else 0
    final = out_dir / f"{shard.name}.{'parquet' if settings.format == 'parquet' else 'jsonl'}"
    tmp = out_dir / f".{final.name}.tmp-{os.getpid()}"
    try:
        try:
            if settings.format == "parquet":
                _write_parquet(tmp, records, table, added)
            else:
                _write_jsonl(tmp, records, table, added)
        except (UnicodeError, ValueError, TypeError) as e:  # pyarrow's errors are ValueError/TypeError subclasses
            last = shard.position + len(records) - 1
            what = f"cannot write {final.name} (records {shard.position}-{last} of the job)"
            raise ShardWriteError(f"{what}: {type(e).__name__}: {e}") from None
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    errors = Counter(r.error.split(" (")[0].split(":")[0] for r in records if r.error)
    return {
        "shard": shard.name,
        "file": final.name,
        "records": len(records),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "edits": n_edits,
        "characters": sum(len(r.text) for r in records if r.text is not None),
        "seconds": round(time.perf_counter() - t0, 3),
        "worker": f"{os.uname().nodename}:{os.getpid()}",
    }


def _fsync_write(path: Path, write: Callable) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _input_table(records: list[Record], table):
    """The input columns as an Arrow table: the shard's own table for Arrow inputs; for line inputs, the parsed
    fields (a field whose values do not share one type is kept as JSON text)."""
    import pyarrow as pa

    if table is not None:
        return table
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r.columns or {}))
    columns = {}
    for key in keys:
        values = [(r.columns or {}).get(key) for r in records]
        try:
            columns[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[key] = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False, default=_jsonable) for v in values]
            )
    return pa.table(columns) if columns else None


def _write_parquet(path: Path, records: list[Record], table, added: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"spin_score": pa.float64(), "position": pa.int64(), "row": pa.int64(), "raw": pa.binary()}
    arrays = {name: pa.array(values, type=types.get(name, pa.string())) for name, values in added.items()}
    out = _input_table(records, table)
    if out is None:  # no record had a column: only the added ones
        out = pa.table(arrays)
    else:
        for name, array in arrays.items():
            out = out.append_column(name, array)
    _fsync_write(path, lambda f: pq.write_table(out, f))


def _write_jsonl(path: Path, records: list[Record], table, added: dict) -> None:
    rows = table.to_pylist() if table is not None else [r.columns or {} for r in records]

    def write(f):
        for k, row in enumerate(rows):
            obj = dict(row)
            for name, values in added.items():
                if name == "raw":
                    if values[k] is not None:
                        obj["raw_base64"] = base64.b64encode(values[k]).decode()
                elif name == "edits":
                    obj[name] = json.loads(values[k]) if values[k] is not None else None
                else:
                    obj[name] = values[k]
            text = json.dumps(obj, ensure_ascii=False, default=_jsonable)
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate in a string: escape it
                data = json.dumps(obj, default=_jsonable).encode()
            f.write(data + b"\n")

    _fsync_write(path, write)


# ---- the Ray actor --------------------------------------------------------------------------------------------


class ShardWorker:
    """A Ray Data actor: loads the restorer once, then restores and writes the shards it is given."""

    def __init__(self, job: dict, out_dir: str, factory=None, threads: int = 1, batch_size: int | None = None):
        import torch

        torch.set_num_threads(max(1, threads))
        if not job.get("verbose"):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a weight-loading bar per actor is noise in the job's output
        self.sources = [Source(**s) for s in job["sources"]]
        self.settings = Settings(**job["settings"])
        self.shards = {s["index"]: Shard(**s) for s in job["shards"]}
        self.out_dir = Path(out_dir)
        self.batch_size = batch_size
        self.restorer = factory() if factory is not None else load_restorer(self.settings)
        if job.get("adapted"):
            from normalizer.restorer import CorpusEvidence

            self.restorer = self.restorer.with_corpus(CorpusEvidence.load(job["adapted"]))

    def __call__(self, batch: dict) -> dict:
        results = []
        for index in batch["shard"]:
            shard = self.shards[int(index)]
            results.append(
                process_shard(
                    self.restorer, self.sources[shard.source], shard, self.settings, self.out_dir, self.batch_size
                )
            )
        return {"result": [json.dumps(r) for r in results]}


def load_restorer(settings: Settings):
    from normalizer.api import load
    from normalizer.stages.lm import SMOLLM2

    return load(
        settings.model,
        engine=settings.engine,
        lm=settings.lm or SMOLLM2,
        threshold=settings.threshold,
        dictionaries=settings.dictionaries,
        lm_dtype=settings.lm_dtype,
    )


# ---- the manifest ---------------------------------------------------------------------------------------------


def model_fingerprint(settings: Settings) -> dict:
    """The model folder's files with their SHA-256, so a resumed job cannot mix two models' output."""
    from normalizer.checkpoint import resolve_checkpoint, sha256_file

    directory = resolve_checkpoint(settings.model)
    if not directory.is_dir():
        raise FileNotFoundError(f"model folder not found: {directory}")
    files = {}
    for p in sorted(directory.iterdir()):
        if p.is_file():
            files[p.name] = sha256_file(p)
    dictionaries = {d: sha256_file(Path(d)) for d in settings.dictionaries}
    extra = {"dictionaries": dictionaries} if dictionaries else {}
    if settings.channel:
        extra["channel"] = sha256_file(Path(settings.channel))
    return {"path": str(directory), "files": files, **extra}


class JobRunning(RuntimeError):
    """Another job is writing the same output folder."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so the job stops the way Ctrl-C stops it (Ray shut down, one line)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _catch_sigterm(handler=_on_sigterm):
    """Let SIGTERM stop the job like Ctrl-C (Ray's own handler dumps C stack frames instead); the handler it
    replaces (None off the main thread, where none can be set)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or handler is None:
        return None
    return signal.signal(signal.SIGTERM, handler)


@dataclass
class JobLock:
    """`.lock` in the output folder: the pid and host of the job writing it. A second job is refused while that pid
    lives; a lock left by a killed job on this host (its pid gone) is taken over."""

    path: Path

    @classmethod
    def acquire(cls, out_dir: Path) -> JobLock:
        import socket

        path = out_dir / ".lock"
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    held = json.loads(path.read_text())
                except (OSError, ValueError):
                    held = {}
                if held.get("host") == me["host"] and not _alive(held.get("pid")):
                    path.unlink(missing_ok=True)  # left by a job that was killed
                    continue
                who = f"pid {held.get('pid', '?')} on {held.get('host', '?')}"
                raise JobRunning(
                    f"another normalize-batch job ({who}) is writing {out_dir}; wait for it, or delete "
                    f"{path} if that job is gone"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return cls(path)
        raise JobRunning(f"cannot take the lock {path}")

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Manifest:
    """`_manifest.json` in the output folder, rewritten atomically after every finished shard."""

    def __init__(self, out_dir: Path, job: dict):
        self.path = out_dir / MANIFEST
        self.out_dir = out_dir
        self.data: dict = {"format_version": FORMAT_VERSION, "job": job, "shards": {}, "status": "running"}

    @classmethod
    def open(cls, out_dir: Path, job: dict, overwrite: bool = False) -> Manifest:
        manifest = cls(out_dir, job)
        old = None
        if manifest.path.exists():
            try:
                old = manifest.read()
            except JobMismatch:
                if not overwrite:
                    raise
        if old is not None and not overwrite:
            if old.get("job") != job:
                raise JobMismatch(
                    f"{out_dir} holds another job ({_difference(old.get('job') or {}, job)}); "
                    "use another --output, or --overwrite to start this one afresh"
                )
            manifest.data = old
            manifest.data["status"] = "running"
        elif overwrite:
            # Only what a job of ours wrote: a user's own file in the folder is not ours to delete.
            for entry in ((old or {}).get("shards") or {}).values():
                name = entry.get("file") if isinstance(entry, dict) else None
                if isinstance(name, str) and SHARD_FILE_RE.fullmatch(name):
                    (out_dir / name).unlink(missing_ok=True)
        else:
            ours = sorted(p.name for p in out_dir.iterdir() if SHARD_FILE_RE.fullmatch(p.name))
            if ours:
                raise JobMismatch(
                    f"{out_dir} holds shard files ({ours[0]}{', ...' if len(ours) > 1 else ''}) but no {MANIFEST}: "
                    "they are not this job's; use another --output, or --overwrite to replace them"
                )
        return manifest

    def read(self) -> dict | None:
        """The stored manifest; a damaged one is a `JobMismatch` naming it (None with --overwrite)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise JobMismatch(
                f"{self.path} is damaged ({type(e).__name__}); use --overwrite to start this job afresh, "
                "or another --output"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("shards", {}), dict):
            raise JobMismatch(
                f"{self.path} is damaged (not a manifest); use --overwrite to start this job afresh, "
                "or another --output"
            )
        return data

    def finished(self, shard: Shard) -> bool:
        entry = self.data["shards"].get(shard.name)
        name = entry.get("file") if isinstance(entry, dict) else None
        return isinstance(name, str) and SHARD_FILE_RE.fullmatch(name) is not None and (self.out_dir / name).is_file()

    def record(self, result: dict) -> None:
        self.data["shards"][result["shard"]] = result
        self.save()

    def save(self) -> None:
        self.data["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        tmp = self.path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
        _fsync_write(tmp, lambda f: f.write(json.dumps(self.data, indent=1).encode()))
        os.replace(tmp, self.path)


def _difference(old: dict, new: dict) -> str:
    for key in ("sources", "model", "settings"):
        if old.get(key) != new.get(key):
            return f"its {key} differ"
    return "it differs"


# ---- the job --------------------------------------------------------------------------------------------------


@dataclass
class Summary:
    records: int
    errors: int
    edits: int
    shards: int
    skipped: int
    seconds: float
    characters: int
    output: str
    error_kinds: dict[str, int] = field(default_factory=dict)
    records_done: int = 0
    """Records restored by this run (the rest were in shards an earlier run finished)."""

    def render(self) -> str:
        rate = f"{self.records_done / self.seconds:,.1f} records/s" if self.seconds and self.records_done else "—"
        lines = [
            f"normalize-batch: {self.records:,} records in {self.shards} shards -> {self.output}",
            f"  this run: {self.shards - self.skipped} shards, {self.records_done:,} records in "
            f"{self.seconds:,.1f} s ({rate}); {self.skipped} shards already done, skipped",
            f"  edits: {self.edits:,}; passed through with an error: {self.errors:,}",
        ]
        lines += [f"    {n:,} × {kind}" for kind, n in sorted(self.error_kinds.items(), key=lambda kv: -kv[1])]
        return "\n".join(lines)


def run(
    inputs: list[str | Path],
    output: str | Path,
    *,
    field: str = "text",
    output_field: str = "restored",
    format: str = "parquet",
    input_format: str | None = None,
    model: str | Path | None = None,
    engine: str = "auto",
    lm: str | Path | None = None,
    threshold: float | None = None,
    dictionaries: list[str | Path] = (),
    lm_dtype: str = "auto",
    workers: int = 1,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float = 0,
    batch_size: int | None = None,
    shard_size: int = 2000,
    max_chars: int = 1_000_000,
    address: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    restorer_factory: Callable[[], Any] | None = None,
    report: bool = False,
    report_sample: int = 200,
    verbose: bool = False,
    adapt: int = 0,
    channel: str | Path | None = None,
) -> Summary:
    """Restore every record of `inputs` into shards in `output` on Ray Data (see the module's docstring). Starts an
    embedded Ray on this machine unless one is running or `address` names a cluster. `restorer_factory`, a
    picklable zero-argument callable, builds each worker's restorer instead of loading `model`."""
    if format not in ("parquet", "jsonl"):
        raise ValueError(f"format must be parquet or jsonl, got {format!r}")
    if workers < 1 or shard_size < 1 or max_chars < 1:
        raise ValueError("workers, shard_size and max_chars must be >= 1")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if (cpus_per_worker is not None and cpus_per_worker <= 0) or gpus_per_worker < 0:
        raise ValueError(
            f"cpus_per_worker must be > 0 and gpus_per_worker >= 0, got {cpus_per_worker}, {gpus_per_worker}"
        )
    if report_sample < 1:
        raise ValueError(f"report_sample must be >= 1, got {report_sample}")
    if isinstance(adapt, bool) or not isinstance(adapt, int) or adapt < 0:
        raise ValueError(f"adapt must be a number of records >= 0, got {adapt!r}")
    if channel is not None:
        if adapt:
            raise ValueError("adapt learns what channel would load: give one of them")
        from normalizer.restorer import CorpusEvidence

        CorpusEvidence.load(channel)  # a missing or damaged file fails here, before any work
    if not inputs:
        raise ValueError("no inputs")
    if threshold is not None:
        from normalizer.restorer import check_threshold

        check_threshold(threshold, "min_confidence")
    if dictionaries:
        from normalizer.stages.dictionary import SpinnerDictionary

        SpinnerDictionary.load(dictionaries)  # a missing, binary or oversized file fails here, before any work
    from normalizer.engines import LM_DTYPES

    if lm_dtype not in LM_DTYPES:
        raise ValueError(f"lm_dtype must be one of {', '.join(LM_DTYPES)}, got {lm_dtype!r}")
    if output_field in ADDED or output_field == field:
        raise ValueError(f"output_field {output_field!r} clashes with the input field or an output column")
    settings = Settings(
        field=field,
        output_field=output_field,
        format=format,
        shard_size=shard_size,
        max_chars=max_chars,
        model=str(model) if model else None,
        engine=engine,
        lm=str(lm) if lm else None,
        threshold=threshold,
        dictionaries=[str(Path(d).resolve()) for d in dictionaries],
        adapt=adapt,
        channel=str(Path(channel).resolve()) if channel is not None else None,
        lm_dtype=lm_dtype,
    )
    t0 = time.perf_counter()
    sources = [scan(p, shard_size, input_format) for p in inputs]
    for src in sources:
        if src.kind in ("parquet", "hf"):
            _check_columns(src, settings)
    shards = plan_shards(sources, shard_size)
    job = {
        "sources": [{k: v for k, v in dataclasses.asdict(s).items() if k != "offsets"} for s in sources],
        "model": model_fingerprint(settings) if restorer_factory is None else {"path": "restorer_factory"},
        "settings": settings.as_job(),
    }
    out_dir = Path(output)
    check_output(out_dir, sources)
    lock = JobLock.acquire(out_dir)
    try:
        for stale in out_dir.glob(".part-*.tmp-*"):
            stale.unlink()  # a shard a killed job was writing
        manifest = Manifest.open(out_dir, job, overwrite)
        pending = [s for s in shards if not manifest.finished(s)]
        adapted = adapt_once(out_dir, manifest, sources, shards, settings, restorer_factory) if pending else None
        worker_job = {
            "adapted": str(adapted.resolve()) if adapted else None,
            "verbose": verbose,
            "sources": [dataclasses.asdict(s) for s in sources],
            "settings": settings.as_job(),
            "shards": [dataclasses.asdict(s) for s in pending],
        }
        done_records = 0
        if pending:
            workers_spec = Workers(workers, cpus_per_worker, gpus_per_worker, batch_size, address, restorer_factory)
            done_records = _run_on_ray(pending, worker_job, out_dir, manifest, workers_spec, progress)
        manifest.data["status"] = "complete"
        entries = [manifest.data["shards"][s.name] for s in shards]
        total = sum(e["records"] for e in entries)
        if total != sum(s.records for s in sources):
            raise RuntimeError(f"output holds {total} records, inputs {sum(s.records for s in sources)}")
        kinds = Counter()
        for e in entries:
            kinds.update(e.get("error_kinds", {}))
        summary = Summary(
            records=total,
            errors=sum(e["errors"] for e in entries),
            edits=sum(e["edits"] for e in entries),
            shards=len(shards),
            skipped=len(shards) - len(pending),
            seconds=round(time.perf_counter() - t0, 3),
            characters=sum(e["characters"] for e in entries),
            output=str(out_dir),
            error_kinds=dict(kinds),
            records_done=done_records,
        )
        manifest.data["summary"] = dataclasses.asdict(summary)
        if report:
            path = write_job_report(out_dir, shards, settings, report_sample)
            manifest.data["report"] = path.name
        manifest.save()
        return summary
    finally:
        lock.release()


def adapt_once(out_dir: Path, manifest: Manifest, sources, shards, settings: Settings, factory=None) -> Path | None:
    """With `settings.adapt`, the file of what the restorer learnt from the job's first `adapt` records: learnt
    once and listed in the manifest with its SHA-256, so a resumed job restores with exactly what the first run
    learnt (a file that no longer matches is refused)."""
    if settings.channel:
        return Path(settings.channel)
    if not settings.adapt:
        return None
    from normalizer.checkpoint import sha256_file

    path = out_dir / ADAPTED
    entry = manifest.data.get("adapted")
    if isinstance(entry, dict):
        if not path.is_file() or sha256_file(path) != entry.get("sha256"):
            raise JobMismatch(f"{path} is missing or changed since this job learnt it; use --overwrite to start afresh")
        return path
    restorer = factory() if factory is not None else load_restorer(settings)
    sample: list[str] = []
    for shard in shards:
        records, _ = read_records(sources[shard.source], shard, settings)
        sample += [r.text for r in records if r.text is not None and r.error is None and r.text.strip()]
        if len(sample) >= settings.adapt:
            break
    restorer.adapt(sample, max_docs=settings.adapt).corpus.save(path)
    manifest.data["adapted"] = {
        "file": ADAPTED,
        "sha256": sha256_file(path),
        "documents": min(len(sample), settings.adapt),
    }
    manifest.save()
    return path


def check_output(out_dir: Path, sources: list[Source]) -> None:
    """Create the output folder, or say in one line why it cannot be one: a file, unwritable, or holding an input
    (the job's shards and manifest would be written among, and on --overwrite over, what it reads)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--output {out_dir} is a file, not a folder")
    for src in sources:
        path = Path(src.path).resolve()
        if path == out_dir.resolve() or out_dir.resolve() in path.parents:
            raise ValueError(f"input {src.path} is inside the output folder {out_dir}: use another --output")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the output folder {out_dir} ({e.strerror or type(e).__name__})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to the output folder {out_dir}")


REPORT_FILE = "report.html"


def write_job_report(out_dir: Path, shards, settings: Settings, sample: int = 200) -> Path:
    """`report.html` in the output folder (see `normalizer.report`): the summary over every record of the job, the
    first `sample` restored records (in job order) in detail, read back from the finished shards."""
    from normalizer.edits import Edit
    from normalizer.report import Report
    from normalizer.restorer import Restoration

    rep = Report(sample=sample, threshold=settings.threshold, title="normalize-batch: what was restored")
    for shard in shards:
        path = out_dir / f"{shard.name}.{'parquet' if settings.format == 'parquet' else 'jsonl'}"
        for row in _read_output(path, settings):
            if row.get("error") is not None or row.get("edits") is None:
                continue
            edits = row["edits"] if isinstance(row["edits"], list) else json.loads(row["edits"])
            found = [
                Edit(e["start"], e["end"], e["before"], e["after"], e["confidence"],
                     tuple((e.get("scores") or {}).items()))
                for e in edits
            ]  # fmt: skip
            source = row.get(settings.field)
            source = source if isinstance(source, str) else ""
            restored = row.get(settings.output_field) or ""
            rep.add(Restoration(restored, found, [], row.get("spin_score") or 0.0, source), f"record {row['position']}")
    return rep.write(out_dir / REPORT_FILE)


def _read_output(path: Path, settings: Settings):
    if settings.format == "parquet":
        import pyarrow.parquet as pq

        columns = [c for c in (settings.field, settings.output_field, "edits", "spin_score", "error", "position")]
        table = pq.read_table(path)
        yield from table.select([c for c in columns if c in table.column_names]).to_pylist()
    else:
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def _check_columns(src: Source, settings: Settings) -> None:
    if src.kind == "parquet":
        import pyarrow.parquet as pq

        names = pq.ParquetFile(src.path).schema_arrow.names
    else:
        names = list(_load_hf(Path(src.path)).column_names)
    clash = sorted(set(names) & ({settings.output_field, *ADDED} - {settings.field}))
    if clash:
        raise ValueError(f"{src.path}: input column {clash[0]!r} clashes with an output column")


@dataclass
class Workers:
    """Where and how the shards run (not part of a job's identity: a resumed job may change them)."""

    count: int = 1
    cpus: float | None = None
    gpus: float = 0
    batch_size: int | None = None
    address: str | None = None
    factory: Callable[[], Any] | None = None


RAY_NOISE = re.compile(rb"core_worker\.cc:\d+: Actor with class name: .* max_restarts > 0")
"""Ray's C++ core worker logs this "E" line for every Ray Data actor pool (its own constructor arguments live in
the object store: ray-project/ray#53727); it is not an error of the job and nothing in `ray.init` silences it."""


class QuietStderr:
    """Drop Ray's known harmless C++ log lines (`RAY_NOISE`) from this process's file descriptor 2, pass everything
    else on unchanged.

    Ray's core worker writes to fd 2 from C++, below `sys.stderr` and `logging`, so the filter sits on the
    descriptor: a pipe in its place and a thread that forwards every line (and every partial line, such as a progress
    bar's carriage-return updates) to the real stderr, except the matched ones. Leaving the block restores fd 2 and
    forwards what is still in the pipe. Where fd 2 cannot be duplicated it does nothing."""

    def __init__(self, pattern: re.Pattern[bytes] = RAY_NOISE):
        self.pattern = pattern
        self.saved: int | None = None
        self.dropped = 0

    def __enter__(self) -> QuietStderr:
        import threading

        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            read, write = os.pipe()
            os.dup2(write, 2)
            os.close(write)
        except (OSError, ValueError):
            self.saved = None
            return self
        self.thread = threading.Thread(target=self._forward, args=(read,), daemon=True, name="quiet-stderr")
        self.thread.start()
        return self

    def _forward(self, read: int) -> None:
        pending = b""
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                out = [line + b"\n" for line in lines if not self._noise(line)]
                if pending and not pending.startswith(b"["):  # not the start of a Ray log line: pass it on now
                    out.append(pending)
                    pending = b""
                self._write(b"".join(out))
        if pending and not self._noise(pending):
            self._write(pending)

    def _noise(self, line: bytes) -> bool:
        if self.pattern.search(line):
            self.dropped += 1
            return True
        return False

    def _write(self, data: bytes) -> None:
        while data:
            try:
                data = data[os.write(self.saved, data) :]
            except OSError:
                return

    def __exit__(self, *exc) -> None:
        if self.saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.saved, 2)  # closes the pipe's write end: the thread reads what is left, then ends
        self.thread.join(timeout=5)
        os.close(self.saved)
        self.saved = None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ConnectionError in one line when `host:port` (or `ray://host:port`) does not accept a TCP connection within
    `timeout` seconds: Ray itself would wait for minutes. `auto` and other forms are left to Ray."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})") from None


def _run_on_ray(pending: list[Shard], worker_job: dict, out_dir: Path, manifest: Manifest, w: Workers, progress) -> int:
    """Run the pending shards on a pool of `w.count` actors; record each finished one; records done."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ImportError("normalize-batch runs on Ray Data: pip install 'normalizer[batch]'") from e

    started = False
    if w.address:
        check_reachable(w.address)
    if not worker_job.get("verbose"):
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its "Progress bars disabled" notice
    if not ray.is_initialized():
        kwargs = {"address": w.address} if w.address else {"include_dashboard": False}
        ray.init(logging_level=logging.ERROR, log_to_driver=True, **kwargs)
        started = True
    previous = _catch_sigterm()
    try:
        resources = ray.cluster_resources()
        if w.gpus and resources.get("GPU", 0) < w.gpus:
            raise ValueError(
                f"--gpus-per-worker {w.gpus:g}: the Ray cluster has {resources.get('GPU', 0):g} GPUs "
                "(run without it, or on a machine or cluster with GPUs)"
            )
        if w.cpus and resources.get("CPU", 0) < w.cpus:
            raise ValueError(f"--cpus-per-worker {w.cpus:g}: the Ray cluster has {resources.get('CPU', 0):g} CPUs")
        cpus_per_worker = w.cpus
        if cpus_per_worker is None:  # embedded: share this machine's CPUs; on a cluster: one each
            cpus = ray.cluster_resources().get("CPU", 1) if not w.address else 1
            cpus_per_worker = max(1.0, float(int(cpus // w.count)))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        show = progress if progress is not None else sys.stderr.isatty()  # before fd 2 becomes a pipe
        quiet = contextlib.nullcontext() if worker_job.get("verbose") else QuietStderr()
        with quiet:
            return _iterate(ray, pending, worker_job, out_dir, manifest, w, cpus_per_worker, show)
    finally:
        if started:
            ray.shutdown()
        _catch_sigterm(previous)


def _iterate(ray, pending, worker_job, out_dir, manifest, w, cpus_per_worker, show) -> int:
    """Run the shards through the actor pool, recording each finished one."""
    from tqdm import tqdm

    ds = ray.data.from_items([{"shard": s.index} for s in pending], override_num_blocks=len(pending))
    results = ds.map_batches(
        ShardWorker,
        fn_constructor_kwargs={
            "job": worker_job,
            "out_dir": str(out_dir.resolve()),
            "factory": w.factory,
            "threads": int(cpus_per_worker),
            "batch_size": w.batch_size,
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=w.count),
        num_cpus=cpus_per_worker,
        num_gpus=w.gpus or None,
    )
    total = sum(s.count for s in pending)
    done = 0
    with tqdm(total=total, unit="rec", disable=not show, desc="normalize-batch") as bar:
        for row in results.iter_rows():
            result = json.loads(row["result"])
            manifest.record(result)
            done += result["records"]
            bar.update(result["records"])
    return done


# ---- the command ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from normalizer.engines import ENGINES, LM_DTYPES

    p = argparse.ArgumentParser(
        prog="normalize-batch",
        description="Restore spun text in whole corpora (JSONL, Parquet, text lines, saved Hugging Face datasets) "
        "on Ray Data: an embedded Ray on this machine, or a cluster with --address.",
        epilog="Run the same command again to resume an interrupted job: finished shards are skipped.",
    )
    p.add_argument("inputs", nargs="+", help="input files (.jsonl, .parquet, text) or save_to_disk folders")
    p.add_argument("--output", "-o", required=True, help="output folder (shards and _manifest.json)")
    p.add_argument("--field", default="text", help="the text column or JSON field (default: text)")
    p.add_argument("--output-field", default="restored", help="column for the restored text (default: restored)")
    p.add_argument("--format", choices=("parquet", "jsonl"), default="parquet", help="output shards' format")
    p.add_argument("--input-format", choices=KINDS, help="override the format guessed from each input's name")
    p.add_argument("--model", help="checkpoint folder (default: the shipped model, or $NORMALIZER_MODEL)")
    p.add_argument("--engine", choices=ENGINES, default="auto")
    p.add_argument("--lm", help="language model for the pipeline (local HF folder or .gguf; default SmolLM2)")
    p.add_argument("--min-confidence", type=float, help="apply edits at least this sure (default: the model's)")
    p.add_argument(
        "--lm-dtype",
        choices=LM_DTYPES,
        default="auto",
        help="the pipeline's language model precision: auto is bf16 on CUDA and on CPUs with native bf16, int8 on "
        "other CPUs",
    )
    p.add_argument(
        "--dictionary",
        action="append",
        default=[],
        metavar="FILE",
        help="a spinner dictionary the texts' spinner may have used (key|alt|alt lines); repeatable",
    )
    p.add_argument(
        "--adapt",
        action="store_true",
        help=f"learn the spinner from the job's first records before restoring (kept as {ADAPTED}, reused on resume)",
    )
    p.add_argument(
        "--adapt-sample", type=int, default=1000, metavar="N", help="records --adapt learns from (default 1000)"
    )
    p.add_argument(
        "--channel", metavar="FILE", help=f"restore with what an earlier --adapt learnt ({ADAPTED} or --save-adapted)"
    )
    p.add_argument("--workers", type=int, default=1, help="actors, each with its own model (default 1)")
    p.add_argument("--cpus-per-worker", type=float, help="default: this machine's CPUs / workers")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="e.g. 1, or 0.5 to share a GPU (default 0)")
    p.add_argument("--batch-size", type=int, help="records per model call inside a worker")
    p.add_argument("--shard-size", type=int, default=2000, help="records per output shard (default 2000)")
    p.add_argument("--max-chars", type=int, default=1_000_000, help="longer records pass through with an error")
    p.add_argument("--address", help="join this Ray cluster (default: start an embedded one here)")
    p.add_argument("--overwrite", action="store_true", help="discard another job's output in --output")
    p.add_argument(
        "--report", action="store_true", help=f"write an HTML report of the job into --output ({REPORT_FILE})"
    )
    p.add_argument("--report-sample", type=int, default=200, help="records shown in detail in the report (default 200)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--verbose", action="store_true", help="keep Ray's and transformers' own log lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from normalizer.checkpoint import resolve_checkpoint

    if args.adapt and args.adapt_sample < 1:
        print(f"normalize-batch: --adapt-sample must be >= 1, got {args.adapt_sample}", file=sys.stderr)
        return 2
    model = str(resolve_checkpoint(args.model))
    _catch_sigterm()
    try:
        summary = run(
            args.inputs,
            args.output,
            field=args.field,
            output_field=args.output_field,
            format=args.format,
            input_format=args.input_format,
            model=model,
            engine=args.engine,
            lm=args.lm,
            threshold=args.min_confidence,
            dictionaries=args.dictionary,
            lm_dtype=args.lm_dtype,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            batch_size=args.batch_size,
            shard_size=args.shard_size,
            max_chars=args.max_chars,
            address=args.address,
            overwrite=args.overwrite,
            progress=args.progress,
            report=args.report,
            report_sample=args.report_sample,
            verbose=args.verbose,
            adapt=args.adapt_sample if args.adapt else 0,
            channel=args.channel,
        )
    except (JobMismatch, ValueError, FileNotFoundError, ImportError) as e:
        print(f"normalize-batch: {e}", file=sys.stderr)
        return 2
    except (JobRunning, ConnectionError) as e:
        print(f"normalize-batch: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"normalize-batch: {how}; finished shards are kept in {args.output}: run the same command to "
              "resume", file=sys.stderr)  # fmt: skip
        return 143 if isinstance(e, Terminated) else 130
    except Exception as e:  # noqa: BLE001 - a failed job says so in a line; its finished shards stay for a rerun
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        print(f"normalize-batch: the job failed ({type(e).__name__}: {first}); finished shards are kept in "
              f"{args.output}: run the same command again to resume", file=sys.stderr)  # fmt: skip
        return 1
    print(summary.render(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
