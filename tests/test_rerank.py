"""The optional language-model reranker: scoring, loading, and how the normalizer uses its verdicts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import scripted, tiny_lm_dir

from normalizer.edits import TO
from normalizer.rerank import LmReranker


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return tiny_lm_dir(tmp_path_factory.mktemp("lm"))


def test_log_probs_do_not_depend_on_batching(lm_dir):
    rr = LmReranker.from_pretrained(lm_dir, device="cpu")
    texts = ["the firm said profits rose", "he said it", "shares fell on tuesday .", "the firm"]
    together = rr.log_probs(texts)
    alone = [rr.log_probs([t])[0] for t in texts]
    assert together == pytest.approx(alone, abs=1e-4)
    assert all(lp < 0 for lp in together)
    (gain,) = rr.gains([(texts[0], texts[1])])
    assert gain == pytest.approx(together[1] - together[0], abs=1e-4)


def test_missing_reranker_fails_clearly(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        LmReranker.from_pretrained(tmp_path / "nope")
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install"):
        LmReranker.from_pretrained("smollm2")


class FixedGains:
    """A stand-in reranker: each candidate edit's gain is looked up by its replacement word."""

    def __init__(self, gains: dict[str, float], margin: float = 0.0):
        self.table, self.margin, self.seen = gains, margin, []

    def gains(self, pairs):
        self.seen += pairs
        out = []
        for before, after in pairs:
            word = next(w for w in after.split() if w not in before.split())
            out.append(self.table[word.strip(".")])
        return out


def test_normalizer_drops_edits_the_reranker_dislikes(normalizer):
    scripted(normalizer, lambda piece: f"mentioned{TO} said" if "mentioned" in piece else f"rose{TO} climbed")
    normalizer.reranker = FixedGains({"said": 3.0, "climbed": -1.0})
    r = normalizer.restore("The firm mentioned it. Profits rose.")
    assert r.text == "The firm said it. Profits rose."
    (rejected,) = r.rejected
    assert rejected.edit.after == "climbed" and rejected.reason.startswith("language model prefers the input")
    normalizer.reranker.margin = 5.0  # now neither edit is enough of a gain
    assert normalizer.normalize("The firm mentioned it.") == "The firm mentioned it."


def test_reranker_only_scores_edits_that_pass_guard_and_confidence(normalizer):
    scripted(normalizer, lambda piece: f"5%{TO} 6%")  # the guard refuses number changes
    normalizer.reranker = FixedGains({})
    normalizer.restore("Profits rose 5% on Tuesday.")
    assert normalizer.reranker.seen == []


def test_cli_reports_a_reranker_that_does_not_load(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "normalizer.cli", "--rerank", str(tmp_path / "nope")],
        input="He mentioned it.\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "cannot load reranker" in proc.stderr and proc.stdout == ""


def test_reranker_verdicts_hold_across_passes(normalizer):
    def model(piece: str) -> str:
        if "mentioned" in piece:
            return f"mentioned{TO} said"
        return f"final{TO} last" if "said" in piece else ""

    scripted(normalizer, model)
    normalizer.config.passes = 2
    text = "The firm mentioned results final year."
    normalizer.reranker = FixedGains({"said": 1.0, "last": 2.0})
    assert normalizer.normalize(text) == "The firm said results last year."
    normalizer.reranker = FixedGains({"said": 1.0, "last": -2.0})
    r = normalizer.restore(text)
    assert r.text == "The firm said results final year."
    assert [(x.edit.start, x.edit.before, x.edit.after) for x in r.rejected] == [(27, "final", "last")]
    assert r.rejected[0].reason.startswith("language model")
