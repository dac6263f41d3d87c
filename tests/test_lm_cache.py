"""The one-time GGUF conversion cache: a damaged or truncated copy is rebuilt once, an unwritable cache converts into
a temporary folder, and a file that is not a usable GGUF is one clear error."""

from __future__ import annotations

import logging
import shutil

import pytest
from helpers import tiny_lm_dir

from normalizer.stages import lm as lm_module


@pytest.fixture()
def fake_gguf(tmp_path, monkeypatch):
    """A file with the GGUF magic, and a conversion that copies a tiny saved LM (counting its calls)."""
    source = tiny_lm_dir(tmp_path / "tiny")
    calls = []

    def convert(path, out):
        calls.append(path)
        for f in source.iterdir():
            shutil.copy(f, out / f.name)

    monkeypatch.setattr(lm_module, "convert_gguf", convert)
    monkeypatch.setattr(lm_module, "CACHE_DIR", tmp_path / "cache")
    path = tmp_path / "model.gguf"
    path.write_bytes(lm_module.GGUF_MAGIC + b"\x03\x00\x00\x00" + b"rest of the file")
    return path, calls


def test_converts_once_then_reuses(fake_gguf):
    path, calls = fake_gguf
    first = lm_module.converted_gguf(path)
    assert lm_module.converted_gguf(path) == first and len(calls) == 1
    assert lm_module.conversion_intact(first)


@pytest.mark.parametrize("damage", ["zeroed", "truncated", "no-fingerprint"])
def test_a_damaged_cache_is_rebuilt_once_with_one_line(fake_gguf, caplog, damage):
    path, calls = fake_gguf
    target = lm_module.converted_gguf(path)
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "zeroed":  # same size, a stretch in the middle zeroed
        mid = len(data) // 2
        data[mid - 2000 : mid + 2000] = bytes(4000)
        weights.write_bytes(bytes(data))
    elif damage == "truncated":
        weights.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (target / "source.json").write_text('{"gguf": "model.gguf"}')
    assert not lm_module.conversion_intact(target)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = lm_module.converted_gguf(path)
    assert len(calls) == 2 and lm_module.conversion_intact(again)
    assert [r.getMessage().count("is damaged or incomplete") for r in caplog.records] == [1]  # one line
    assert lm_module.LanguageModel.from_pretrained(again, device="cpu").sequence_logprob([[1, 5, 6]])


def test_an_unwritable_cache_converts_into_a_temporary_folder(fake_gguf, caplog, tmp_path, monkeypatch):
    path, calls = fake_gguf
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setattr(lm_module, "CACHE_DIR", blocker / "cache")  # under a file: cannot be created
    with caplog.at_level(logging.WARNING):
        target = lm_module.converted_gguf(path)
    assert lm_module.conversion_intact(target) and not str(target).startswith(str(blocker))
    assert sum("cannot write the cache" in r.getMessage() for r in caplog.records) == 1
    assert len(caplog.records) == 2  # that line, then the conversion's


@pytest.mark.parametrize("data", [b"", b"plain text, not a model\n", b"\xff\xfe garbage"])
def test_not_a_gguf_file_is_one_clear_error(tmp_path, data, caplog):
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING), pytest.raises(lm_module.LanguageModelUnavailable, match="not a GGUF"):
        lm_module.LanguageModel.from_pretrained(path, device="cpu")
    assert not any("converting" in r.getMessage() for r in caplog.records)


def test_garbage_after_the_magic_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lm_module, "CACHE_DIR", tmp_path / "cache")
    path = tmp_path / "bad.gguf"
    path.write_bytes(lm_module.GGUF_MAGIC + bytes(range(256)) * 4)
    with pytest.raises(lm_module.LanguageModelUnavailable, match="not a usable GGUF file"):
        lm_module.LanguageModel.from_pretrained(path, device="cpu")
    assert not list((tmp_path / "cache" / "lm").glob("*.tmp*"))  # nothing half-written left behind
