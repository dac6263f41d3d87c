"""Regression tests for hostile input found by users: unbounded pieces, iterables, threads, JSONL bytes, lost lines."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

from normalizer import InferenceConfig, Normalizer
from normalizer.cli import main, set_field
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
    n = Normalizer(model, tokenizer, InferenceConfig(max_new_tokens=4, max_piece_tokens=limit), device="cpu")
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
    from normalizer import core

    monkeypatch.setenv("NORMALIZER_MODEL", str(saved_model_dir))
    monkeypatch.setattr(core, "_DEFAULT", None)
    loads = []
    real = Normalizer.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(1)
        time.sleep(0.2)  # widen the race window
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(Normalizer, "from_pretrained", classmethod(counting))
    results, errors = [], []

    def call():
        try:
            results.append(core.normalize("He mentioned the struggle was over."))
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


def run(tmp_path, model_dir, data: bytes, *args: str) -> tuple[int, bytes]:
    src = tmp_path / "in.txt"
    src.write_bytes(data)
    out = tmp_path / "out.txt"
    code = main([str(src), "-o", str(out), "--model", str(model_dir), "--device", "cpu", "--no-progress", *args])
    return code, out.read_bytes() if out.exists() else b""


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
    real = Normalizer.restore_batch

    def failing(self, texts, *args, **kwargs):
        texts = list(texts)
        if any("BOOM" in t for t in texts):
            raise RuntimeError("injected failure")
        return real(self, texts, *args, **kwargs)

    monkeypatch.setattr(Normalizer, "restore_batch", failing)
    data = b"".join(b"line %d\n" % k if k != 5 else b"BOOM here\n" for k in range(311))
    code, out = run(tmp_path, saved_model_dir, data)
    assert code == 0 and len(out.splitlines()) == 311
    assert out.splitlines()[5] == b"BOOM here"
    assert "in.txt:6: restoration failed (RuntimeError: injected failure)" in capsys.readouterr().err


def test_huge_word_line_keeps_every_line(tmp_path, saved_model_dir):
    data = b"".join(b"line %d.\n" % k for k in range(5)) + b"w" * 99_000 + b"\n" + b"last line.\n"
    code, out = run(tmp_path, saved_model_dir, data)
    assert code == 0 and out.splitlines() == data.splitlines()
