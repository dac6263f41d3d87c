"""Regression tests for hostile input found by users: unbounded pieces, iterables, threads, JSONL bytes, lost lines."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch
from helpers import run_cli as run

from normalizer.cli import main, set_field
from normalizer.engines.seq2seq import InferenceConfig, Seq2SeqRestorer
from normalizer.segment import sentence_spans

DOCS = ["The firm mentioned profits rose.", "", "Shares fell. Then rose!", "日本語のテキスト"]


@pytest.mark.parametrize("make", [lambda d: (x for x in d), lambda d: map(str, d), tuple, iter])
def test_batch_accepts_any_iterable(normalizer, make):
    assert normalizer.normalize_batch(make(DOCS)) == normalizer.normalize_batch(list(DOCS))


@pytest.mark.parametrize(
    "text",
    [
        "日本語" * 3000,  # no spaces at all: one "word"
        "x" * 20_000,  # one 20,000-character word
        "word " * 50 + "y" * 5000 + " end.",  # a giant token inside a sentence
        "ภาษาไทย" * 800,
    ],
)
def test_pieces_have_a_hard_token_bound(tokenizer, text):
    from helpers import tiny_model

    limit = 48
    model = tiny_model(tokenizer)
    seen = []
    model.encoder.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    n = Seq2SeqRestorer(model, tokenizer, InferenceConfig(max_new_tokens=4, max_piece_tokens=limit), device="cpu")
    start = time.perf_counter()
    r = n.restore(text)
    assert time.perf_counter() - start < 60
    assert seen and max(seen) <= limit
    assert len(r.text) >= 1 and all(text[e.start : e.end] == e.before for e in r.edits)


def test_sentence_splitting_is_linear():
    # Many full stops that never end a sentence (lower-case after them) used to cost a copy of the rest each.
    text = "a. b" * 100_000
    start = time.perf_counter()
    spans = sentence_spans(text)
    assert time.perf_counter() - start < 5
    assert spans == [(0, len(text))]


def test_lazy_default_loads_once_across_threads(monkeypatch, saved_model_dir):
    from normalizer import api

    monkeypatch.setenv("NORMALIZER_MODEL", str(saved_model_dir))
    monkeypatch.setattr(api, "_DEFAULT", None)
    loads = []
    real = Seq2SeqRestorer.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(1)
        time.sleep(0.2)  # widen the race window
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(Seq2SeqRestorer, "from_pretrained", classmethod(counting))  # the checkpoint has no pipeline
    results, errors = [], []

    def call():
        try:
            results.append(api.normalize("He mentioned the struggle was over."))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4 and len(set(results)) == 1
    assert len(loads) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, saved_model_dir, capsys):
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    assert main([str(src), "--model", str(saved_model_dir), "--device", "cuda", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "CUDA" in err


@pytest.mark.parametrize(
    "line,key,value,expected",
    [
        ('{"n": 1e400, "text": "a"}', "text", "b", '{"n": 1e400, "text": "b"}'),
        (
            '{"x":0.10000000000000000000001,"text":"a","y":1E5}',
            "text",
            "b",
            '{"x":0.10000000000000000000001,"text":"b","y":1E5}',
        ),
        ('{"text": "a", "text": "c"}', "text", "b", '{"text": "a", "text": "b"}'),  # json.loads keeps the last
        ('{"text": "a" , "k" : [1, {"z": 2}] }', "out", "é", '{"text": "a" , "k" : [1, {"z": 2}] , "out": "é"}'),
        ("{}", "out", "b", '{"out": "b"}'),
        ('{"text": "\\u00e9 a"}', "text", "b\ud800", '{"text": "b\\ud800"}'),  # lone surrogate: escaped
    ],
)
def test_set_field_keeps_every_other_byte(line, key, value, expected):
    assert set_field(line, key, value) == expected


def test_jsonl_restored_records_keep_their_bytes(tmp_path, saved_model_dir):
    lines = [
        b'{"id": 1e400, "v": 0.10000000000000000000001, "w": 1E5, "text": "The firm said it."}',
        b'{"text": "dup", "text": "The firm said it.", "id": 2}',
    ]
    code, out = run(tmp_path, saved_model_dir, b"\n".join(lines) + b"\n", "--jsonl", "--output-field", "restored")
    assert code == 0
    for src, dst in zip(lines, out.splitlines()):
        assert dst.startswith(src[:-1] + b', "restored": "')
        json.loads(dst.replace(b"1e400", b"1"))  # valid JSON apart from the input's own extremes


@pytest.mark.parametrize(
    "line",
    [
        b'{"text": "bad \\ud800 x"}',
        b'{"text": "fine text", "other": "bad \\udc00"}',
        b'{"text": "x", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_jsonl_hostile_records_pass_through(tmp_path, saved_model_dir, line):
    data = b'{"text": "ok one"}\n' + line + b'\n{"text": "ok two"}\n'
    code, out = run(tmp_path, saved_model_dir, data, "--jsonl", "--output-field", "restored")
    assert code == 0
    rows = out.splitlines()
    assert len(rows) == 3
    for row in rows:
        row.decode("utf-8")  # every output line is valid UTF-8
    if b"ud800" in line or b"deep" in line:
        assert rows[1] == line  # passed through unchanged


def test_one_bad_line_loses_no_other_line(tmp_path, saved_model_dir, monkeypatch, capsys):
    real = Seq2SeqRestorer.restore_batch

    def failing(self, texts, *args, **kwargs):
        texts = list(texts)
        if any("BOOM" in t for t in texts):
            raise RuntimeError("injected failure")
        return real(self, texts, *args, **kwargs)

    monkeypatch.setattr(Seq2SeqRestorer, "restore_batch", failing)
    data = b"".join(b"line %d\n" % k if k != 5 else b"BOOM here\n" for k in range(311))
    code, out = run(tmp_path, saved_model_dir, data)
    assert code == 0 and len(out.splitlines()) == 311
    assert out.splitlines()[5] == b"BOOM here"
    assert "in.txt:6: restoration failed (RuntimeError: injected failure)" in capsys.readouterr().err


def test_huge_word_line_keeps_every_line(tmp_path, saved_model_dir):
    data = b"".join(b"line %d.\n" % k for k in range(5)) + b"w" * 99_000 + b"\n" + b"last line.\n"
    code, out = run(tmp_path, saved_model_dir, data)
    assert code == 0 and out.splitlines() == data.splitlines()


# ---- hostile checkpoints: refused in one clear line, before transformers reads them -------------------------------


def _broken(tmp_path, saved_model_dir, how: str):
    import shutil

    d = tmp_path / "ckpt"
    shutil.copytree(saved_model_dir, d)
    weights = d / "model.safetensors"
    if how == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "empty_weights":
        weights.write_bytes(b"")
    elif how == "config_wrong_type":
        data = json.loads((d / "config.json").read_text())
        data["d_model"] = "big"
        (d / "config.json").write_text(json.dumps(data))
    elif how == "normalizer_config_wrong_type":
        (d / "normalizer_config.json").write_text(json.dumps({"max_words": "many"}))
    elif how == "no_tokenizer":
        (d / "spiece.model").unlink()
    elif how in ("auto_map_tokenizer", "auto_map_config"):
        name = "tokenizer_config.json" if how == "auto_map_tokenizer" else "config.json"
        path = d / name
        data = json.loads(path.read_text()) if path.exists() else {}
        data["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
        path.write_text(json.dumps(data))
        (d / "evil.py").write_text(f"open({str(tmp_path / 'marker')!r}, 'w').write('ran')\n")
    return d


@pytest.mark.parametrize(
    "how,says",
    [
        ("truncated_weights", "model.safetensors"),
        ("empty_weights", "model.safetensors"),
        ("config_wrong_type", "d_model"),
        ("normalizer_config_wrong_type", "max_words"),
        ("no_tokenizer", "tokenizer"),
        ("auto_map_tokenizer", "auto_map"),
        ("auto_map_config", "auto_map"),
    ],
)
def test_broken_checkpoints_fail_in_one_line(tmp_path, saved_model_dir, capsys, monkeypatch, how, says):
    import io
    import sys

    d = _broken(tmp_path, saved_model_dir, how)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"y\ny\n")))  # nothing may read an answer
    out = tmp_path / "out.txt"
    code = main(["-", "-o", str(out), "--model", str(d), "--engine", "seq2seq", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and says in err
    assert not (tmp_path / "marker").exists()


# ---- the command line's I/O habits ------------------------------------------------------------------------------


def _cli(tmp_path, model_dir, *args, data=b"He mentioned it.\n"):
    src = tmp_path / "in.txt"
    src.write_bytes(data)
    return main([str(src), "--model", str(model_dir), "--device", "cpu", "--no-progress", *args])


@pytest.mark.parametrize("where", ["missing_parent", "directory", "read_only_dir"])
def test_unwritable_output_is_one_line_and_leaves_nothing(tmp_path, saved_model_dir, capsys, where):
    import os

    target = {
        "missing_parent": tmp_path / "no" / "out.txt",
        "directory": tmp_path / "adir",
        "read_only_dir": tmp_path / "ro" / "out.txt",
    }[where]
    if where == "directory":
        target.mkdir()
    if where == "read_only_dir":
        target.parent.mkdir()
        target.parent.chmod(0o500)
        if os.access(target.parent, os.W_OK):  # root ignores permissions
            pytest.skip("running as a user who can write to a read-only folder")
    (tmp_path / "in.txt").write_text("x\n")
    before = set(tmp_path.rglob("*"))
    assert _cli(tmp_path, saved_model_dir, "-o", str(target)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert set(tmp_path.rglob("*")) == before  # no temporary file left behind


def test_output_through_a_symlink_keeps_link_and_mode(tmp_path, saved_model_dir):
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert _cli(tmp_path, saved_model_dir, "-o", str(link)) == 0
    assert link.is_symlink() and real.read_text().count("\n") == 1 and real.read_text() != "old\n"
    assert real.stat().st_mode & 0o777 == 0o600


def test_output_to_a_device_or_pipe_writes_into_it_and_never_replaces_it(tmp_path, saved_model_dir):
    import os
    import stat

    # `-o /dev/null` as root must not rename a regular file over /dev/null: a FIFO stands in for the device.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert _cli(tmp_path, saved_model_dir, "-o", str(fifo)) == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and got and got[0].count(b"\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "pipe"]  # no temporary file beside it


def test_stdin_named_twice_is_a_usage_error(saved_model_dir):
    with pytest.raises(SystemExit) as e:
        main(["-", "-", "--model", str(saved_model_dir)])
    assert e.value.code == 2


def test_closed_stdin_is_one_line(monkeypatch, saved_model_dir, capsys):
    import sys

    monkeypatch.setattr(sys, "stdin", None)
    assert main(["--model", str(saved_model_dir), "--device", "cpu"]) == 1
    assert "standard input" in capsys.readouterr().err


def test_reads_a_fifo(tmp_path, saved_model_dir):
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"one\ntwo\n"))
    writer.start()
    out = tmp_path / "out.txt"
    code = main([str(fifo), "-o", str(out), "--model", str(saved_model_dir), "--device", "cpu", "--no-progress"])
    writer.join()
    assert code == 0 and len(out.read_bytes().splitlines()) == 2


def _run_cli_process(args: list[str], stdin: bytes | None = None, **kwargs):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "normalizer.cli", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_broken_pipe_exits_quietly(tmp_path, saved_model_dir):
    src = tmp_path / "big.txt"
    src.write_bytes(b"He mentioned it.\n" * 3000)
    p = _run_cli_process(
        [str(src), "--model", str(saved_model_dir), "--device", "cpu", "--no-progress", "--engine", "seq2seq"]
    )
    p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0 and b"Broken pipe" not in err and b"Traceback" not in err


def test_sigterm_during_output_leaves_no_temp_file(tmp_path, saved_model_dir):
    import signal

    src = tmp_path / "big.txt"
    src.write_bytes(b"He mentioned it.\n" * 20000)
    out = tmp_path / "out.txt"
    p = _run_cli_process(
        [
            str(src),
            "-o",
            str(out),
            "--model",
            str(saved_model_dir),
            "--device",
            "cpu",
            "--no-progress",
            "--engine",
            "seq2seq",
        ]
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.txt.*")) and time.time() < deadline:
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0 and b"Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.txt.*"))


def test_edits_mode_with_a_file_name_that_is_not_utf8(tmp_path, saved_model_dir, capsysbinary):
    import os

    name = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"bad-\xff.txt"))
    with open(name, "wb") as f:
        f.write(b"He mentioned it.\n")
    assert main([name, "--edits", "--model", str(saved_model_dir), "--device", "cpu", "--no-progress"]) == 0
    rows = [json.loads(line) for line in capsysbinary.readouterr().out.decode("utf-8").splitlines()]
    assert len(rows) == 1 and rows[0]["line"] == 1 and "bad-" in rows[0]["source"]
