"""The `normalize` CLI: one output line per input line on every bad-input case, clear errors, exit codes."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli as run

from normalizer.cli import main

CASES = {
    "plain": b"The firm mentioned it.\n\nSecond line.\n",
    "crlf_and_no_final_newline": b"One line.\r\nTwo line.\r\nlast",
    "invalid_utf8": b"good line\n\xff\xfe bad bytes\nanother good line\n",
    "nul_byte": b"before\nhas a \x00 nul\nafter\n",
    "huge_line": b"ok\n" + b"word " * 220_000 + b"\nok again\n",
    "empty_file": b"",
    "only_blank_lines": b"\n\n\n",
}

JSONL_CASES = {
    "good": b'{"id": 1, "text": "The firm mentioned it."}\n{"id": 2, "text": ""}\n',
    "broken_json": b'{"id": 1, "text": "fine"}\n{"id": 2, "text": \n{"id": 3, "text": "fine"}\n',
    "missing_field": b'{"id": 1, "body": "no text"}\n{"id": 2, "text": "has text"}\n',
    "wrong_type": b'{"id": 1, "text": 5}\n[1, 2]\n"just a string"\n',
    "blank_lines": b'\n{"id": 1, "text": "x"}\n\n',
    "invalid_utf8": b'{"id": 1, "text": "\xff"}\n{"id": 2, "text": "ok"}\n',
}


def n_lines(data: bytes) -> int:
    return len(data.splitlines())


@pytest.mark.parametrize("name", sorted(CASES))
def test_line_count_kept(tmp_path, saved_model_dir, name, capsys):
    data = CASES[name]
    code, out = run(tmp_path, saved_model_dir, data)
    assert code == 0
    assert n_lines(out) == n_lines(data)
    # Lines passed through are byte-identical, and each is reported with its line number.
    err = capsys.readouterr().err
    if name in ("invalid_utf8", "nul_byte", "huge_line"):
        assert data.splitlines()[1] == out.splitlines()[1]
        assert "in.txt:2:" in err


@pytest.mark.parametrize("name", sorted(JSONL_CASES))
def test_jsonl_line_count_and_fields_kept(tmp_path, saved_model_dir, name):
    data = JSONL_CASES[name]
    code, out = run(tmp_path, saved_model_dir, data, "--jsonl", "--output-field", "restored")
    assert code == 0
    assert n_lines(out) == n_lines(data)
    for src, dst in zip(data.splitlines(), out.splitlines()):
        try:
            record = json.loads(src)
        except (json.JSONDecodeError, UnicodeDecodeError):
            assert dst == src
            continue
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            restored = json.loads(dst)
            assert {k: v for k, v in restored.items() if k != "restored"} == record
            assert isinstance(restored["restored"], str)
        else:
            assert dst == src


def test_edits_mode_one_json_per_line(tmp_path, saved_model_dir):
    data = CASES["invalid_utf8"]
    code, out = run(tmp_path, saved_model_dir, data, "--edits")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert "skipped" in rows[1] and "edits" in rows[0]


def test_missing_input_file_is_an_error_and_writes_nothing(tmp_path, saved_model_dir, capsys):
    out = tmp_path / "out.txt"
    code = main([str(tmp_path / "nope.txt"), "-o", str(out), "--model", str(saved_model_dir)])
    assert code == 1 and not out.exists()
    assert "nope.txt" in capsys.readouterr().err


def test_missing_model_is_an_error(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    assert main([str(src), "--model", str(tmp_path / "no-model")]) == 1
    err = capsys.readouterr().err
    assert "no-model" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args", [["--batch-size", "0"], ["--min-confidence", "2"], ["--output-field", "x"], ["--no-such-flag"]]
)
def test_usage_errors_exit_2(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2


def test_stdin_to_stdout(monkeypatch, saved_model_dir, capsysbinary):
    import io
    import sys

    data = b"first\n\nthird\r\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["--model", str(saved_model_dir), "--device", "cpu"]) == 0
    assert n_lines(capsysbinary.readouterr().out) == 3
