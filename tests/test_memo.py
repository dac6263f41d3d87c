"""The stages' memos are bounded: a batch job reading millions of documents must not grow them without end."""

from __future__ import annotations

import pytest
from test_pipeline import table  # noqa: F401 (fixture)

from normalizer.edits import Token
from normalizer.memo import Memo


def test_a_memo_forgets_its_oldest_half_when_full():
    m = Memo(4)
    for k in range(4):
        m[k] = k * 10
    m[2] = 21  # an update of a key it holds forgets nothing
    assert len(m) == 4 and m[2] == 21
    m[4] = 40
    assert dict(m) == {2: 21, 3: 30, 4: 40}  # the oldest two gone, the newest kept
    m.update({5: 50, 6: 60})
    assert len(m) <= 4 and m[6] == 60
    assert m.setdefault(7, 70) == 70 and len(m) <= 4
    for k in range(1000):
        m[("x", k)] = k
    assert len(m) <= 4
    with pytest.raises(ValueError, match="limit"):
        Memo(1)


def test_the_stages_memos_are_bounded(table):  # noqa: F811
    from normalizer.memo import SPANS_MEMO

    assert isinstance(table._spans, Memo) and table._spans.limit == SPANS_MEMO
    surfaces = [f"w{k}" for k in range(3 * 5)]
    table._spans = Memo(4)  # what a long job does to it, in small
    for s in surfaces:
        table._span(s, [Token(s, 0, len(s))], 0, False, 10)
    assert 0 < len(table._spans) <= 4
