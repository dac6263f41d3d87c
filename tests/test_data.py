"""Corpus reading and splitting, pair targets, lexicon readers and the tokenizer round trip."""

from __future__ import annotations

import json

import pytest

from normalizer.edits import locate_edits, parse_target, splice
from training.corpus import load_splits, read_documents, sentences, split_of
from training.lexicon import read_moby, read_mythes, read_wordnet
from training.pairs import target_for
from training.spin import Swap


def test_readers(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "d1", "text": "One.\nTwo."}) + "\n\n")
    (tmp_path / "b.txt").write_text("Plain text doc.")
    docs = list(read_documents(tmp_path))
    assert [d.id for d in docs] == ["d1", "b"]
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        list(read_documents(tmp_path / "bad.jsonl"))


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["x"], "body": ["Hello there."]}), tmp_path / "c.parquet")
    assert [d.text for d in read_documents(tmp_path / "c.parquet", field="body")] == ["Hello there."]


def test_document_split_has_no_overlap(tmp_path):
    rows = [{"id": f"doc{i}", "text": f"Paragraph {i} is here.\nShared line in every doc."} for i in range(300)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    splits = load_splits([tmp_path / "c.jsonl"], dev=0.1, test=0.1)
    ids = {k: {d.id for d in v} for k, v in splits.items()}
    assert not (ids["train"] & ids["dev"]) and not (ids["train"] & ids["test"]) and not (ids["dev"] & ids["test"])
    assert sum(map(len, ids.values())) == 300 and all(ids.values())
    # Duplicate paragraphs are kept once.
    assert sum(d.text.count("Shared line") for v in splits.values() for d in v) == 1
    assert split_of("doc1") == split_of("doc1")


def test_sentences():
    assert sentences("Mr. Smith left. He came back!") == ["Mr. Smith left.", "He came back!"]


def test_target_for_reproduces_original():
    original = "He said that she said yes and the war ended."
    spun = "He said that she mentioned yes and the struggle ended."
    o2, s2 = original.index("war"), spun.index("struggle")
    swaps = [Swap(17, 21, 17, 26, "said", "mentioned"), Swap(o2, o2 + 3, s2, s2 + 8, "war", "struggle")]
    target = target_for(spun, swaps)
    out, pos = [], 0
    for e in locate_edits(spun, parse_target(target)):
        out += [spun[pos : e.start], e.after]
        pos = e.end
    assert "".join(out + [spun[pos:]]) == original


def test_target_disambiguates_repeated_words():
    # The second "said" is the swapped one; the edit is widened so it cannot land on the first.
    original = "He stated that she said it."
    spun = "He said that she said it."
    target = target_for(spun, [Swap(3, 9, 3, 7, "stated", "said")])
    assert parse_target(target)[0].before == "said"
    assert splice(spun, locate_edits(spun, parse_target(target))) == original
    swaps = [Swap(19, 23, 17, 21, "said", "said")]
    widened = parse_target(target_for(spun, swaps))[0]
    assert widened.before.startswith("she")


def test_lexicon_readers(tmp_path):
    moby = tmp_path / "words.txt"
    moby.write_text("war,struggle,conflict,Xyz123\nsay,state,mention\n")
    assert read_moby(moby)["war"][""] == ["struggle", "conflict"]
    wn = tmp_path / "wn"
    wn.mkdir()
    for name in ("noun", "verb", "adj", "adv"):
        (wn / f"data.{name}").write_text("  licence header line\n")
    (wn / "data.noun").write_text("00001 03 n 02 war 0 warfare 0 000 | a conflict\n")
    assert read_wordnet(wn)["war"]["n"] == ["warfare"]
    my = tmp_path / "th.dat"
    my.write_text(
        "UTF-8\nwar|2\n(noun)|warfare|struggle (similar term)|conflict (generic term)\n(verb)|fight|peace (antonym)\n"
    )
    assert read_mythes(my)["war"] == {"n": ["warfare", "struggle"], "v": ["fight"]}


@pytest.mark.parametrize(
    "text",
    [
        "emoji 😀 and CJK 日本語",
        "“curly” ‘quotes’ — – …",
        "tabs\tand  double  spaces",
        " leading and trailing ",
        "café naïve Zürich",
        "x<to> y<sep> z",
    ],
)
def test_tokenizer_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_tokenizer_round_trip_on_corpus_sample(tokenizer):
    from conftest import corpus

    for s in corpus()[:50]:
        assert tokenizer.decode(tokenizer.encode(s)) == s


def test_hugging_face_dataset_on_disk(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"id": ["h1", "h2"], "text": ["First doc.", "Second doc."]}).save_to_disk(
        str(tmp_path / "hf")
    )
    assert [(d.id, d.text) for d in read_documents(tmp_path / "hf")] == [("h1", "First doc."), ("h2", "Second doc.")]
