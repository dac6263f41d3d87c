"""The Python API: batching, pass-through, byte-identity outside edits, save/load, guard, confidence, loading."""

from __future__ import annotations

import re

import pytest
from helpers import scripted, tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normalizer.edits import SEP, TO, words
from normalizer.engines.seq2seq import Seq2SeqRestorer
from normalizer.restorer import Restoration

DOCS = [
    "The company mentioned profits rose 5% on Tuesday.\nShares fell.",
    "",
    "   \n\t ",
    "Short one.",
    "A longer document. It has several sentences! Does it work? Yes.\r\n\r\nNew paragraph here.",
]


def test_batch_equals_single_and_keeps_order(normalizer):
    batch = normalizer.normalize_batch(DOCS, batch_size=2)
    assert len(batch) == len(DOCS)
    assert batch == [normalizer.normalize(d) for d in DOCS]


@pytest.mark.parametrize("text", ["", " ", "\n\n", "\t \r\n"])
def test_empty_and_whitespace_pass_through(normalizer, text):
    r = normalizer.restore(text)
    assert r.text == text and r.edits == [] and r.spin_score == 0.0


def test_rejects_non_string_items(normalizer):
    with pytest.raises(TypeError):
        normalizer.normalize_batch(["ok", None])
    with pytest.raises(TypeError):
        normalizer.normalize_batch("a string")


def swap_words(piece: str) -> str:
    """Propose replacing every third word with a made-up one."""
    ws = [w for w in words(piece) if w.isalpha()]
    return f"{SEP} ".join(f"{w}{TO} zz{w}" for w in ws[::3])


@pytest.mark.parametrize("passes", [1, 2])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["The", "firm", "mentioned", "rose", "5%", "café", "“quoted”", "—", "日本", "😀", ".", "!", "?"]
            ),
            st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\n\n", " \u00a0"]),
            st.text(max_size=4),
        ),
        max_size=60,
    ).map("".join)
)
def test_text_outside_edits_is_byte_identical(normalizer, passes, text):
    normalizer.config.passes = passes
    scripted(normalizer, swap_words)
    r = normalizer.restore(text)
    pos, rebuilt = 0, []
    for e in r.edits:
        assert e.start >= pos and text[e.start : e.end] == e.before
        rebuilt += [text[pos : e.start], e.after]
        pos = e.end
    rebuilt.append(text[pos:])
    assert "".join(rebuilt) == r.text


def test_applies_word_swap_with_offsets(normalizer):
    scripted(normalizer, lambda piece: f"mentioned{TO} said" if "mentioned" in piece else "")
    text = "The firm mentioned it.\n\nNothing here."
    r = normalizer.restore(text)
    assert isinstance(r, Restoration)
    assert r.text == "The firm said it.\n\nNothing here."
    (e,) = r.edits
    assert (e.start, e.end, e.before, e.after) == (9, 18, "mentioned", "said")
    assert e.confidence == pytest.approx(1.0)
    assert 0 < r.spin_score < 1


def test_guard_rejects_number_change(normalizer):
    scripted(normalizer, lambda piece: f"5%{TO} 6%")
    text = "Profits rose 5% on Tuesday."
    r = normalizer.restore(text)
    assert r.text == text and r.edits == []
    assert [x.reason for x in r.rejected] == ["changes a number, date, URL, e-mail or amount"]


def test_edit_cut_by_the_generation_limit_is_dropped(normalizer):
    # "mentioned<to> said<sep> firm<to> company" cut after a few tokens must not apply a half-written word.
    normalizer.config.max_new_tokens = 6
    scripted(normalizer, lambda piece: f"mentioned{TO} said{SEP} firm{TO} companyxyzabc")
    r = normalizer.restore("The firm mentioned it.")
    assert all(e.after in ("said", "companyxyzabc") for e in r.edits)


def test_threshold_knob(tokenizer):
    text = "He mentioned it."
    for threshold, changed in [(0.1, True), (0.9, False)]:
        n = Seq2SeqRestorer(tiny_model(tokenizer), tokenizer, device="cpu", threshold=threshold)
        scripted(n, lambda piece: f"mentioned{TO} said", logp=-0.1)  # every token at probability e^-0.1
        assert (n.normalize(text) != text) == changed


def test_save_load_identical(normalizer, tmp_path):
    normalizer.save_pretrained(tmp_path)
    loaded = Seq2SeqRestorer.from_pretrained(tmp_path, device="cpu", threshold=0.0)
    assert loaded.normalize_batch(DOCS) == normalizer.normalize_batch(DOCS)
    restored = [r.edits for r in loaded.restore_batch(DOCS)]
    assert restored == [r.edits for r in normalizer.restore_batch(DOCS)]


def test_missing_model_fails_fast(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Seq2SeqRestorer.from_pretrained(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        Seq2SeqRestorer.from_pretrained(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="safetensors"):
        Seq2SeqRestorer.from_pretrained(tmp_path / "empty")


def test_long_document_is_not_truncated(normalizer):
    normalizer.config.max_new_tokens = 96  # room for every edit of a 48-word piece
    scripted(normalizer, swap_words)
    text = ("word " * 3000).strip() + ". " + "Another sentence here.\n" * 50
    r = normalizer.restore(text)
    assert len(r.edits) > 100
    assert re.sub("zz", "", r.text) == text


def test_suppress_empty_forces_a_proposal(tokenizer):
    from normalizer.engines.seq2seq import InferenceConfig

    n = Seq2SeqRestorer(tiny_model(tokenizer), tokenizer, InferenceConfig(max_new_tokens=4), device="cpu")
    pieces = [tokenizer.encode("The firm mentioned it."), tokenizer.encode("Short.")]
    eos = tokenizer.eos_token_id

    def favour_eos(module, inputs, logits):  # make EOS overwhelmingly likely at every step
        logits = logits.clone()
        logits[..., eos] += 50.0
        return logits

    n.model.lm_head.register_forward_hook(favour_eos)
    assert all(ids[0] == eos for ids, _ in n.generate(pieces))
    n.config.suppress_empty = True
    assert all(ids[0] != eos for ids, _ in n.generate(pieces))


def test_second_pass_restores_in_the_repaired_context(normalizer):
    def model(piece: str) -> str:
        if "mentioned" in piece:
            return f"mentioned{TO} said"
        if "said" in piece:  # only visible once the first pass has repaired the piece
            return f"said{TO} stated{SEP} final{TO} last"
        return ""

    scripted(normalizer, model)
    text = "Nothing here. The firm mentioned results final year."
    normalizer.config.passes = 1
    assert normalizer.normalize(text) == "Nothing here. The firm said results final year."
    normalizer.config.passes = 2
    r = normalizer.restore(text)
    assert r.text == "Nothing here. The firm said results last year."
    # offsets are into the input; the second pass's edit of the repaired word ("said") is dropped
    assert [(e.start, e.end, e.before, e.after) for e in r.edits] == [
        (23, 32, "mentioned", "said"),
        (41, 46, "final", "last"),
    ]


def test_with_options_overrides_per_call_and_leaves_the_original(normalizer):
    scripted(normalizer, lambda piece: f"mentioned{TO} said", logp=-0.1)  # confidence ~0.9 for the whole edit
    text = "He mentioned it."
    normalizer.threshold = 0.0
    strict = normalizer.with_options(threshold=0.99, passes=2)
    assert strict.normalize(text) == text and strict.config.passes == 2
    assert normalizer.normalize(text) == "He said it."  # untouched
    assert normalizer.threshold == 0.0 and normalizer.config.passes == 1
    assert strict.model is normalizer.model  # shared, not copied
    with pytest.raises(ValueError):
        normalizer.with_options(threshold=2.0)
