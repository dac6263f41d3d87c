"""The one restorer contract: the decision, the threshold, and which checkpoint loads, the same for every engine."""

from __future__ import annotations

import math

import pytest
from helpers import scripted, tiny_lm_dir
from test_pipeline import pipeline_checkpoint, ranker_trusting, table  # noqa: F401 (fixtures)

from normalizer.api import load
from normalizer.edits import TO, Edit, guard_reason
from normalizer.engines.pipeline import Pipeline, PipelineConfig
from normalizer.engines.seq2seq import Seq2SeqRestorer
from normalizer.restorer import decide


def edit(start, end, before, after, p):
    return Edit(start, end, before, after, p)


def test_decide_applies_surest_first_and_reports_one_way():
    proposals = [
        edit(0, 4, "firm", "company", 0.9),
        edit(0, 9, "firm rose", "company climbed", 0.95),  # surer and overlapping: wins
        edit(10, 12, "12", "13", 0.99),  # the guard refuses a changed number
        edit(20, 25, "stated", "said", 0.45),  # under the threshold, above half of it: reported
        edit(30, 34, "huge", "big", 0.1),  # far under: not reported (a candidate for nearly every word)
        edit(40, 44, "same", "same", 0.99),  # no change: not an edit at all
    ]
    chosen, refused = decide(proposals, 0.5)
    assert [(e.before, e.after) for e in chosen] == [("firm rose", "company climbed")]
    assert [(r.edit.before, r.reason) for r in refused] == [
        ("firm", "overlaps a surer edit"),
        ("12", "changes a number, date, URL, e-mail or amount"),
        ("stated", "low confidence"),
    ]


def test_resolving_spintax_is_faithful_but_other_brace_edits_are_not():
    assert guard_reason("{good|great}", "great") is None
    assert guard_reason("{the}", "the") is None
    assert guard_reason("{good|great}", "fine") is not None


@pytest.mark.parametrize("bad", [float("nan"), -1.0, 2.0, "0.5"])
def test_threshold_is_validated_per_call(normalizer, bad):
    with pytest.raises(ValueError, match="threshold"):
        normalizer.restore_batch(["He mentioned it."], threshold=bad)


def test_seq2seq_takes_a_per_call_threshold_like_every_engine(normalizer):
    scripted(normalizer, lambda piece: f"mentioned{TO} said", logp=-0.01)  # every token at e^-0.01
    text = "He mentioned it."
    assert normalizer.restore_batch([text], threshold=0.5)[0].text == "He said it."
    assert normalizer.restore_batch([text], threshold=0.999)[0].text == text
    assert normalizer.restore(text, threshold=0.999).rejected[0].reason == "low confidence"


def test_threshold_stored_in_the_checkpoint_survives_load(tmp_path, pipeline_checkpoint):  # noqa: F811
    PipelineConfig(gate=-100.0, threshold=0.77).save(pipeline_checkpoint)
    lm = tiny_lm_dir(tmp_path / "lm")
    restorer = load(pipeline_checkpoint, lm=lm, device="cpu")  # what the CLI, normalize() and normalize-batch call
    assert isinstance(restorer, Pipeline) and restorer.threshold == pytest.approx(0.77)
    assert load(pipeline_checkpoint, lm=lm, device="cpu", threshold=0.3).threshold == pytest.approx(0.3)


def test_normalizer_model_is_honoured_by_the_default_engine(tmp_path, pipeline_checkpoint, monkeypatch):  # noqa: F811
    lm = tiny_lm_dir(tmp_path / "lm")
    monkeypatch.setenv("NORMALIZER_MODEL", str(pipeline_checkpoint))
    restorer = load(lm=lm, device="cpu")
    assert isinstance(restorer, Pipeline) and len(restorer.table.vocab) < 100  # the tiny test table, not the shipped
    assert restorer.normalize("He mentioned it.") == "He said it."


def test_cli_reads_normalizer_model_for_the_pipeline(tmp_path, pipeline_checkpoint, monkeypatch):  # noqa: F811
    from normalizer.cli import main

    monkeypatch.setenv("NORMALIZER_MODEL", str(pipeline_checkpoint))
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("He mentioned it.\n")
    lm = tiny_lm_dir(tmp_path / "lm")
    assert main([str(src), "-o", str(out), "--lm", str(lm), "--device", "cpu", "--no-progress"]) == 0
    assert out.read_text() == "He said it.\n"


def test_an_over_long_piece_is_cut_to_fit_not_skipped(normalizer):
    scripted(normalizer, lambda piece: f"mentioned{TO} said" if "mentioned" in piece else "")
    normalizer.config.max_piece_tokens = 16
    text = "He mentioned it " + "and so on " * 20 + "then he mentioned it again."
    pieces = normalizer.pieces([text])
    assert len(pieces) > 1 and all(normalizer.piece_tokens(text[a:b]) <= 16 for _, a, b in pieces)
    r = normalizer.restore(text)
    assert r.text.count("said") == 2 and math.isclose(r.spin_score, 2 / len(text.replace(".", "").split()))


def test_engines_share_the_contract():
    for engine in (Pipeline, Seq2SeqRestorer):
        for name in ("normalize", "normalize_batch", "restore", "restore_batch", "pieces", "fit", "restore_pieces"):
            assert getattr(engine, name) is getattr(engine.__mro__[1], name)  # inherited, never rewritten


def test_no_edit_inside_urls_addresses_handles_or_paths(normalizer):
    scripted(normalizer, lambda piece: f"mentioned{TO} said")  # proposes the first "mentioned" of every piece
    for text in [
        "Write to mentioned.struggle@firm-news.com or visit www.firm.com today.",
        "Go to https://example.com/mentioned/struggle?final=12 now.",
        "Ask @mentioned about it.",
        "Open /srv/mentioned/data first.",
    ]:
        r = normalizer.restore(text)
        assert r.text == text and r.edits == []
        assert [x.reason for x in r.rejected] == ["inside a URL, e-mail address, handle, hashtag, path or code"]
    assert normalizer.normalize("He mentioned www.firm.com.") == "He said www.firm.com."  # prose next to it still


def test_a_quantity_is_not_dropped_for_its_unit(normalizer):
    scripted(normalizer, lambda piece: f"12 months on 12 months{TO} year on year" if "on 12" in piece else "")
    text = "Sales were up 7 per cent 12 months on 12 months."
    r = normalizer.restore(text)
    assert r.text == text and r.rejected[0].reason.startswith("changes a number")


@pytest.mark.parametrize(
    "data,says",
    [
        ({"gate": "low"}, "wrong type"),
        ({"threshold": "0.5"}, "wrong type"),
        ({"seq2seq": 1}, "wrong type"),
        ({"prerank_k": True}, "wrong type"),
        ({"passes": 2}, "unknown keys"),  # the option that left the product
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_pipeline_config_is_checked_like_every_config(tmp_path, data, says):
    import json

    (tmp_path / "pipeline_config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=says) as e:
        PipelineConfig.load(tmp_path)
    assert "pipeline_config.json" in str(e.value)
    (tmp_path / "pipeline_config.json").write_text(json.dumps({"threshold": None, "gate": -3}))
    assert PipelineConfig.load(tmp_path).gate == -3
