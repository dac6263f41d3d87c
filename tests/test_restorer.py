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
from normalizer.restorer import DocumentEvidence, DocumentPrior, Restoration, Restorer, decide


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
        ({"rescore_all": True}, "unknown keys"),
        ({"passes": 4}, "passes"),
        ({"pass_threshold": 2.0}, "threshold"),
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


class Fixed(Restorer):
    """An engine that proposes "stated" -> "said" at a fixed confidence wherever "stated" stands, "plain" -> "simple"
    at 0.01 (as the pipeline proposes something unlikely for most words), and counts its calls."""

    def __init__(self, confidence, prior=None, passes=1):
        self.confidence, self.document_prior, self.passes, self.threshold, self.calls = (
            confidence,
            prior,
            passes,
            0.8,
            [],
        )

    def piece_tokens(self, text):
        return len(text.split())

    def propose(self, pieces, *, batch_size=None, progress=False, documents=None):
        self.calls.append(list(pieces))
        out = []
        for piece in pieces:
            k = piece.find("stated")
            j = piece.find("plain")
            out.append(
                ([Edit(k, k + 6, "stated", "said", self.confidence)] if k >= 0 else [])
                + ([Edit(j, j + 5, "plain", "simple", 0.01)] if j >= 0 else [])
            )
        return out


def test_document_prior_shift_follows_the_documents_own_rate():
    prior = DocumentPrior(rate=0.05, strength=10.0, max_shift=3.0)
    assert prior.shift([]) == 0.0 and prior.shift([1.0, 0.0]) == 0.0  # spintax and nothing: no evidence
    dense, sparse = prior.shift([0.7] * 40), prior.shift([0.01] * 40)
    assert dense > 1.0 and sparse < -0.5  # many likely swaps: trust them more; none: trust the few less
    assert prior.shift([0.99] * 1000) == pytest.approx(3.0)  # bounded
    assert abs(prior.shift([0.05] * 40)) < 0.2  # a document at the calibrated rate is left about where it was
    assert prior.shift([0.7] * 2) < dense  # little evidence: pulled back towards the prior rate
    with pytest.raises(ValueError):
        DocumentPrior(rate=0.0)
    (shifted,) = DocumentEvidence(prior, math.log(3)).apply([edit(0, 1, "a", "b", 0.5)])
    assert shifted.confidence == pytest.approx(0.75)
    assert dict(shifted.scores)["document_shift"] == pytest.approx(math.log(3))
    assert DocumentEvidence(prior, 2.0).apply([edit(0, 1, "a", "b", 1.0)])[0].confidence == 1.0


def test_pair_evidence_trusts_a_swap_the_document_makes_again_and_again():
    prior = DocumentPrior(rate=0.05, strength=20.0, max_shift=3.0, pair_strength=2.0)
    repeated = [edit(0, 6, "stated", "said", 0.6) for _ in range(6)]
    others = [edit(0, 4, "huge", "big", 0.02) for _ in range(30)] + [edit(0, 4, "vast", "big", 0.6)]
    evidence = prior.estimate(repeated + others)
    out = evidence.apply(repeated + others)
    said, vast = out[0], out[-1]
    assert said.confidence > vast.confidence  # same doc shift; the repeated swap is backed by five others
    assert dict(vast.scores)["pair_shift"] == pytest.approx(0.0, abs=1e-9)  # alone: its own confidence is left out
    assert dict(out[6].scores)["pair_shift"] < 0  # "huge" -> "big", unlikely everywhere, is trusted less
    off = DocumentPrior(rate=0.05, strength=20.0, max_shift=3.0).estimate(repeated + others)
    assert off.apply(repeated)[0].confidence == pytest.approx(vast.confidence)  # without pairs: the doc shift only


def test_document_prior_acts_per_document_and_keeps_the_first_pass_shift():
    dense = " ".join(["He stated it."] * 20)
    sparse = "He stated it. " + " ".join(f"Line {k} is plain." for k in range(60))
    off = Fixed(0.7)
    assert [r.text for r in off.restore_batch([dense, sparse])] == [dense, sparse]  # 0.7 < 0.8 without the prior
    on = Fixed(0.7, DocumentPrior(rate=0.05, strength=5.0, max_shift=3.0))
    out = on.restore_batch([dense, sparse])
    assert "stated" not in out[0].text and out[0].edits[0].confidence > 0.8  # the dense document: applied
    assert out[1].text == sparse  # the same proposal in a document with one such line: not
    again = Fixed(0.7, DocumentPrior(rate=0.05, strength=5.0, max_shift=3.0), passes=2)
    again.restore_batch([dense.replace("it.", "it, stated it.")])
    assert len(again.calls) == 2  # the second pass sees only the changed pieces, with the first pass's shift


class TwoStep(Restorer):
    """Proposes "stated" -> "said" at 0.9, and "plain" -> "simple" at 0.85 only in a piece where "said" stands (a
    swap the engine sees only once its neighbour is repaired)."""

    def __init__(self, pass_threshold=None):
        self.passes, self.threshold, self.pass_threshold = 2, 0.8, pass_threshold

    def piece_tokens(self, text):
        return len(text.split())

    def propose(self, pieces, *, batch_size=None, progress=False, documents=None):
        out = []
        for piece in pieces:
            k, j = piece.find("stated"), piece.find("plain")
            found = [Edit(k, k + 6, "stated", "said", 0.9)] if k >= 0 else []
            if j >= 0 and "said" in piece:
                found.append(Edit(j, j + 5, "plain", "simple", 0.85))
            out.append(found)
        return out


def test_extra_passes_need_the_pass_threshold():
    text = "He stated the plain truth."
    assert TwoStep().normalize(text) == "He said the simple truth."  # the second pass finds "plain" at 0.85
    assert TwoStep(pass_threshold=0.9).normalize(text) == "He said the plain truth."  # under 0.9: not applied
    assert TwoStep(pass_threshold=0.5).normalize(text) == "He said the simple truth."  # the call's 0.8 still holds
    r = TwoStep(pass_threshold=0.5).restore(text, threshold=0.88)
    assert r.text == "He said the plain truth."  # a call's higher threshold binds the extra pass too


class Overlapping(TwoStep):
    """TwoStep, and in the repaired piece a surer proposal over the repair ("said the" -> "noted the", 0.95) that
    overlaps "plain"'s span too. With `focused`, it takes the hint and proposes only inside `focus`."""

    def __init__(self, focused):
        super().__init__()
        self.proposes_in_focus, self.asked = focused, []

    def propose(self, pieces, *, batch_size=None, progress=False, documents=None, **hint):
        self.asked.append(hint.get("focus"))
        out = super().propose(pieces)
        for piece, found in zip(pieces, out):
            k = piece.find("said the plain")
            if k >= 0:
                found.append(Edit(k, k + 14, "said the plain", "noted the plain", 0.95))
        if hint.get("focus") is not None:
            out = [
                [e for e in found if any(a <= e.start and e.end <= b for a, b in f)]
                for found, f in zip(out, hint["focus"])
            ]
        return out


@pytest.mark.parametrize("focused", [True, False])
def test_an_extra_pass_proposes_only_off_the_edits_already_applied(focused):
    text = "He stated the plain truth."
    r = Overlapping(focused)
    # "noted the plain" overlaps the applied "said": left out before the pass decides, it does not keep "plain" out
    assert r.normalize(text) == "He said the simple truth."
    said = "He said the plain truth.".index("said")
    hint = [[(0, said), (said + 4, len("He said the plain truth."))]]
    assert r.asked == ([None, hint] if focused else [None, None])  # the hint reaches only an engine that takes it


class Swaps(Restorer):
    """Proposes, per known word, a fixed swap at a fixed confidence (a toy spinner's table seen through a toy
    ranker that is unsure of each occurrence alone)."""

    table = {
        "stated": ("said", 0.5),
        "plain": ("simple", 0.02),
        "fact": ("truth", 0.02),
        "stood": ("stayed", 0.02),
        "huge": ("big", 0.3),
    }

    def __init__(self, prior):
        self.document_prior, self.threshold, self.calls = prior, 0.8, 0

    def piece_tokens(self, text):
        return len(text.split())

    def propose(self, pieces, *, batch_size=None, progress=False, documents=None):
        self.calls += len(pieces)
        out = []
        for piece in pieces:
            found = []
            for word, (after, p) in self.table.items():
                k = piece.find(word)
                if k >= 0:
                    found.append(Edit(k, k + len(word), word, after, p))
            out.append(found)
        return out


PAIRS = DocumentPrior(rate=0.05, strength=5.0, max_shift=3.0, pair_strength=1.0)


def test_adapt_learns_the_swap_a_corpus_makes_everywhere_and_leaves_the_restorer_alone():
    # 40 spun documents, each with one "stated" (the spinner's "said") and plain words; "huge" -> "big" is the
    # ranker's guess in 2 documents only.
    spun = [f"He stated it on day {k}." + " The plain fact stood." * 3 for k in range(40)]
    spun[3] += " A huge crowd came."
    spun[7] += " A huge crowd came."
    r = Swaps(PAIRS)
    before = [x.text for x in r.restore_batch(spun)]
    assert all("stated" in t for t in before)  # one occurrence per document: 0.5 and a small doc shift, < 0.8
    adapted = r.adapt(spun)
    assert r.corpus is None and [x.text for x in r.restore_batch(spun)] == before  # the original is unchanged
    after = adapted.restore_batch(spun)
    assert all("said it" in x.text for x in after)  # the corpus says "stated" -> "said" is this spinner's
    assert all("plain" in x.text for x in after)  # unlikely everywhere: still refused
    said = dict(next(e for e in after[0].edits if e.after == "said").scores)
    assert said["pair_shift"] > 1.0
    new = adapted.restore("She stated so." + " The plain fact stood." * 3)  # a document it was not read from
    assert new.text.startswith("She said so. The plain fact stood.")


def test_adapting_on_clean_text_learns_no_spinner():
    clean = [f"The plain fact of day {k} stood, as plain facts do." for k in range(40)]
    r = Swaps(PAIRS)
    adapted = r.adapt(clean)
    assert adapted.corpus.rate <= PAIRS.rate  # nothing here looks like a swap: the rate only falls
    assert [x.text for x in adapted.restore_batch(clean)] == clean
    lone = "He stated it." + " The plain fact stood." * 3
    (edit_after,) = [e for e in adapted.restore(lone).rejected if e.edit.before == "stated"]
    (edit_before,) = [e for e in r.restore(lone).rejected if e.edit.before == "stated"]
    assert edit_after.edit.confidence < edit_before.edit.confidence  # a lone swap in a clean corpus: trusted less
    with pytest.raises(ValueError, match="document prior"):
        Swaps(None).adapt(clean)
    with pytest.raises(ValueError, match="max_docs"):
        r.adapt(clean, max_docs=0)


def test_corpus_evidence_round_trips_and_a_damaged_file_is_refused(tmp_path, monkeypatch):
    from normalizer.restorer import CorpusEvidence

    spun = [f"He stated it on day {k}." for k in range(10)]
    corpus = Swaps(PAIRS).adapt(spun).corpus
    path = tmp_path / "corpus.json"
    corpus.save(path)
    loaded = CorpusEvidence.load(path)
    assert loaded.documents == corpus.documents and loaded.rate == pytest.approx(corpus.rate)
    assert loaded.pairs.keys() == corpus.pairs.keys()
    for text in ["{", '{"format": "other"}', path.read_text().replace('"rate": 0', '"rate": 7')]:
        path.write_text(text)
        with pytest.raises(ValueError, match="corpus estimate"):
            CorpusEvidence.load(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="corpus estimate"):
        CorpusEvidence.load(path)
    corpus.save(path)
    monkeypatch.setattr(CorpusEvidence, "MAX_BYTES", 100)
    with pytest.raises(ValueError, match="larger than"):
        CorpusEvidence.load(path)  # refused before it is read


def test_groups_pool_the_lines_of_one_document_for_the_prior():
    lines = ["He stated it."] + [f"Line {k} is plain." for k in range(40)]
    prior = DocumentPrior(rate=0.05, strength=5.0, max_shift=3.0)
    alone = Fixed(0.7, prior).restore_batch(lines)
    assert alone[0].text == "He said it."  # a line alone: its one likely swap is all the evidence it has
    pooled = Fixed(0.7, prior).restore_batch(lines, groups=["article"] * len(lines))
    assert pooled[0].text == "He stated it."  # the article around it proposes nothing likely: trusted less
    assert [r.text for r in pooled[1:]] == lines[1:]
    with pytest.raises(ValueError, match="one group per text"):
        Fixed(0.7, prior).restore_batch(lines, groups=["a"])


def test_cli_document_file_passes_one_group_per_file():
    from normalizer.cli import Line, restore_lines

    seen = []

    class Spy:
        def restore_batch(self, texts, batch_size=None, groups=None):
            seen.append(groups)
            return [Restoration.of(t, [], []) for t in texts]

    lines = [Line("a.txt", 1, b"x", b"\n"), Line("a.txt", 2, b"y", b"\n"), Line("b.txt", 1, b"z", b"\n")]
    for ln, text in zip(lines, "xyz"):
        ln.text = text
    restore_lines(lines, Spy(), None, whole_file=True)
    restore_lines(lines, Spy(), None)
    assert seen == [["a.txt", "a.txt", "b.txt"], None]
