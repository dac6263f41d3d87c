"""The edit format, anchoring, the faithfulness guard and segmentation."""

from __future__ import annotations

import pytest

from normalizer.edits import Span, guard_reason, locate_edits, make_target, parse_target, tokenize
from normalizer.segment import segment, sentence_spans


def test_target_round_trip():
    spans = [Span("mentioned", "said"), Span("final 12 months", "last year")]
    assert parse_target(make_target(spans)) == spans
    assert make_target([]) == ""
    assert parse_target("") == []


@pytest.mark.parametrize(
    "garbage,expected",
    [
        ("no symbols here", []),
        ("<to> after only", []),
        ("<sep><sep>", []),
        ("a<to>", [Span("a", "")]),
        ("x<to> y<sep> <to> z<sep> p<to> q", [Span("x", "y"), Span("p", "q")]),
    ],
)
def test_parse_drops_malformed(garbage, expected):
    assert parse_target(garbage) == expected


def test_locate_left_to_right_and_offsets():
    text = "He mentioned that she mentioned it."
    found = locate_edits(text, [Span("mentioned", "said"), Span("mentioned", "said")])
    assert [(e.start, e.end) for e in found] == [(3, 12), (22, 31)]
    assert all(text[e.start : e.end] == e.before for e in found)


def test_locate_drops_unmatched():
    assert locate_edits("The cat sat.", [Span("dog", "cat")]) == []


@pytest.mark.parametrize(
    "before,after,ok",
    [
        ("mentioned", "said", True),
        ("final 12 months", "last year", True),
        ("5%", "6%", False),
        ("$1.2bn", "$1.3bn", False),
        ("Tuesday", "Monday", False),
        ("https://a.com", "https://b.com", False),
        ("rose", "rose", False),
        ("struggle", "", False),
        ("a b c d e f g", "x", False),
        ("in accordance with", "according to", True),
        ("the", "the big red old house", False),
        # a quantity may become its unit word only after a determiner ("last year"), never bare
        ("final 12 months of", "last year of", True),
        ("a 12 months", "a year", True),
        ("12 months on 12 months", "year on year", False),
        ("12 months", "year", False),
        ("7 days", "week", False),
        ("final 7 days", "last week", True),
    ],
)
def test_guard(before, after, ok):
    assert (guard_reason(before, after) is None) == ok


@pytest.mark.parametrize("left,ok", [("this", True), ("last", True), ("for", False), ("", False)])
def test_guard_unit_word_after_the_word_before_the_edit(left, ok):
    assert (guard_reason("seven days", "week", left=left) is None) == ok


def test_tokenize_offsets():
    text = "It's a well-known U.S. firm, isn’t it?"
    for t in tokenize(text):
        assert text[t.start : t.end] == t.text


def test_segments_cover_all_non_space():
    text = "Mr. Smith said no.  Then he left!\r\n\r\nA second paragraph\twith a tab.\n"
    spans = segment(text)
    covered = set()
    for a, b in spans:
        covered.update(range(a, b))
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)
    assert [text[a:b] for a, b in sentence_spans(text)][0] == "Mr. Smith said no."


def test_long_sentence_is_cut_not_truncated():
    text = " ".join(f"word{i}" for i in range(500))
    spans = segment(text, max_words=48)
    assert len(spans) > 10
    assert " ".join(text[a:b] for a, b in spans) == text
    assert all(len(tokenize(text[a:b])) <= 48 for a, b in spans)


@pytest.mark.parametrize(
    "text,inside",
    [
        ("Write to mentioned.struggle@firm-news.com today.", "mentioned.struggle@firm-news.com"),
        ("See https://example.com/mentioned/struggle?final=12 now.", "https://example.com/mentioned/struggle?final=12"),
        ("Visit www.firm.com today.", "www.firm.com"),
        ("Ask @mentioned about #struggle.", "@mentioned"),
        ("Ask @mentioned about #struggle.", "#struggle"),
        ("Open /usr/local/firm/data first.", "/usr/local/firm/data"),
        ("Run `said --firm` again.", "`said --firm`"),
    ],
)
def test_protected_spans(text, inside):
    from normalizer.edits import protected_spans

    assert inside in [text[a:b] for a, b in protected_spans(text)]


def test_no_protected_span_in_plain_prose():
    from normalizer.edits import protected_spans

    assert protected_spans("The firm said 3/4 of staff and/or managers left, up 7 per cent.") == []
