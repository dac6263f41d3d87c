"""Time and peak memory of `normalize` on hostile lines (text without spaces, giant words, lines at the size limit),
each in a fresh process so that its peak resident memory is its own.

    python -m evaluation.bench_hostile --model models/default --engine seq2seq --out reports/bench-hostile.json

A case fails if it exits non-zero, loses or changes a line it could not restore, or exceeds `--max-rss-mb`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "cjk_8000_chars": "日本語のテキスト" * 1000,
    "cjk_33000_chars": "日本語のテキスト" * 4125,
    "word_20000_chars": "x" * 20_000,
    "word_99000_chars": "w" * 99_000,
    "thai_8000_chars": "ภาษาไทย" * 1143,
    "words_100kb": ("The firm mentioned that income climbed. " * 2500)[:99_999],
    "token_5000_chars_in_sentence": "The firm mentioned " + "y" * 5000 + " results.",
}


# Runs the CLI and prints the process's peak resident memory (KiB) as the last line of stderr.
RUNNER = (
    "import resource, sys\nfrom normalizer.cli import main\ncode = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(code)"
)


def run_case(name: str, line: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.txt"
        src.write_text("First line.\n" + line + "\nLast line.\n", encoding="utf-8")
        out = Path(tmp) / "out.txt"
        cmd = [
            sys.executable,
            "-c",
            RUNNER,
            str(src),
            "-o",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
            "--engine",
            args.engine,
        ]
        if args.model:
            cmd += ["--model", args.model]
        start = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {
                "case": name,
                "chars": len(line),
                "exit": None,
                "seconds": args.timeout,
                "ok": False,
                "timed_out": True,
            }
        secs = time.perf_counter() - start
        rss_mb = int(p.stderr.strip().splitlines()[-1]) / 1024 if p.stderr.strip() else None
        lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
        ok = p.returncode == 0 and len(lines) == 3 and (rss_mb or 0) <= args.max_rss_mb
        return {
            "case": name,
            "chars": len(line),
            "exit": p.returncode,
            "seconds": round(secs, 1),
            "peak_rss_mb": round(rss_mb, 0) if rss_mb else None,
            "lines_out": len(lines),
            "ok": ok,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: the shipped one)")
    parser.add_argument("--engine", default="seq2seq", choices=("auto", "pipeline", "seq2seq"))
    parser.add_argument("--max-rss-mb", type=float, default=3000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = []
    for name, line in CASES.items():
        rows.append(run_case(name, line, args))
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python -m evaluation.bench_hostile " + " ".join(argv or sys.argv[1:]),
                "engine": args.engine,
                "cases": rows,
            },
            indent=2,
        )
        + "\n"
    )
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
