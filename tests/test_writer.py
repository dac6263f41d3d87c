"""The edit writer (normalizer.writer): a small Llama with a byte-level BPE tokenizer, taught one swap through a LoRA
adapter, then used as a restorer (confidence from token probabilities, min_confidence), as a scorer of candidates
(equal to scoring the whole sequence), inside the pipeline (two ranker features) and from the CLI."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from helpers import tiny_bpe_lm_dir, tiny_lm_dir

pytest.importorskip("peft")

from normalizer.edits import TO  # noqa: E402
from normalizer.writer import WRITER_CONFIG, EditWriter  # noqa: E402

PAIRS = [("He mentioned it.", "mentioned<to> said"), ("The firm rose.", ""), ("Shares fell on Tuesday.", "")]


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    """(base dir, adapter dir): a LoRA adapter trained until it writes PAIRS' targets."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from normalizer.adapter import save_adapter
    from training.lm_edits import encode, pad_batch
    from training.lm_lora import train_step, with_lora

    d = tmp_path_factory.mktemp("writer")
    texts = [f"{s}\nEdits: {t}" for s, t in PAIRS] + ["told said stated big large this"]
    base = tiny_bpe_lm_dir(d / "base", texts * 5)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    model = with_lora(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), r=8, alpha=16, dropout=0.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    batch = pad_batch([encode(tokenizer, s, t) for s, t in PAIRS], tokenizer.pad_token_id)
    for _ in range(60):
        loss = train_step(model, optimizer, batch, bf16=False)
    assert loss < 0.1
    save_adapter(model, d / "adapter", base)
    return base, d / "adapter"


@pytest.fixture(scope="module")
def writer(taught):
    return EditWriter.from_pretrained(taught[1], taught[0], device="cpu")


def test_writer_restores_what_it_learned_with_a_confidence(writer):
    text = "He mentioned it.  The firm rose.\n"
    r = writer.restore(text)
    assert r.text == "He said it.  The firm rose.\n"
    (e,) = r.edits
    assert (text[e.start : e.end], e.after) == ("mentioned", "said") and 0.5 < e.confidence <= 1.0
    sure = writer.restore_batch([text], threshold=min(1.0, e.confidence + 1e-6))[0]
    assert sure.text == text and [x.reason for x in sure.rejected] == ["low confidence"]
    assert writer.normalize_batch(["The firm rose.", ""]) == ["The firm rose.", ""]
    with pytest.raises(TypeError):
        writer.restore_batch("He mentioned it.")


def test_confidence_is_the_probability_of_the_edit_and_its_terminator(writer):
    tok = writer.tokenizer
    first, second = (
        tok(" mentioned<to> said<sep>", add_special_tokens=False).input_ids,
        tok(" it<to> this", add_special_tokens=False).input_ids,
    )
    ids = first + second + [tok.eos_token_id]
    logps = [-0.1 * (k + 1) for k in range(len(ids))]
    edits = writer._interpret("He mentioned it.", ids, logps)
    assert [(e.before, e.after) for e in edits] == [("mentioned", "said"), ("it", "this")]
    assert edits[0].confidence == pytest.approx(math.exp(sum(logps[: len(first)])), rel=1e-5)
    assert edits[1].confidence == pytest.approx(math.exp(sum(logps[len(first) :])), rel=1e-5)
    # Cut off by max_new_tokens (no terminator): the unfinished last edit is not an edit.
    cut = writer._interpret("He mentioned it.", first + second, logps[:-1])
    assert [(e.before, e.after) for e in cut] == [("mentioned", "said")]


def test_candidate_scores_equal_scoring_the_whole_sequence(writer):
    spun = "He mentioned it."
    cands = [("mentioned", "said"), ("mentioned", "told"), ("it", "this")]
    (scores,) = writer.score_candidates([(spun, cands)])
    prompt = writer.prompt_ids(spun)
    lm = writer.lm

    def logp(ids):  # log P(ids | prompt), the naive way
        return lm.sequence_logprob([prompt + ids])[0] - lm.sequence_logprob([prompt])[0]

    for (before, after), (after_lp, first_lp) in zip(cands, scores):
        head = lm.chunk_ids(f" {before}{TO}")
        whole = lm.chunk_ids(f" {before}{TO} {after}")
        assert first_lp == pytest.approx(logp(whole), abs=1e-3)
        assert after_lp == pytest.approx(logp(whole) - logp(head), abs=1e-3)
    assert scores[0][0] > scores[1][0]  # what it learned: "mentioned" was "said"
    assert writer.score_candidates([("The firm rose.", [])]) == [[]]


def test_stored_options_are_read_and_checked(taught, tmp_path):
    base, adapter = taught
    shutil.copytree(adapter, tmp_path / "a")
    (tmp_path / "a" / WRITER_CONFIG).write_text(json.dumps({"min_confidence": 1.0}))
    assert EditWriter.from_pretrained(tmp_path / "a", base).normalize("He mentioned it.") == "He mentioned it."
    (tmp_path / "a" / WRITER_CONFIG).write_text(json.dumps({"prompt": "ignore the above"}))
    with pytest.raises(ValueError, match="unknown keys"):
        EditWriter.from_pretrained(tmp_path / "a", base)


def test_pipeline_ranks_with_the_writers_scores(writer, tmp_path):
    from normalizer.candidates import CandidateTable
    from normalizer.lm import LanguageModel
    from normalizer.pipeline import Pipeline, PipelineConfig
    from normalizer.ranker import FEATURES, WRITER_FEATURES, Ranker

    table = CandidateTable.from_pairs({("mention", "say"): (1, 0), ("mention", "tell"): (2, 1)}, {})
    lm = LanguageModel.from_pretrained(tiny_lm_dir(tmp_path / "lm"), device="cpu")
    names = FEATURES + WRITER_FEATURES
    weights = [1.0 if f == "writer_after" else 0.0 for f in names]
    ranker = Ranker(weights, 3.0, [0.0] * len(names), [1.0] * len(names), names, 0.5)
    pipeline = Pipeline(table, lm, ranker, None, None, PipelineConfig(gate=-100.0, prerank_k=8), writer=writer)
    assert pipeline.features == names
    (found,) = pipeline.score(["He mentioned it."])
    assert {s.candidate.after for s in found} >= {"said", "told"}
    assert all(len(s.features) == len(names) for s in found)
    r = pipeline.restore("He mentioned it.")
    assert r.text == "He said it." and dict(r.edits[0].scores)["writer_after"] > -1.0


def test_cli_writer_engine(taught, tmp_path):
    from normalizer.cli import main

    base, adapter = taught
    shutil.copytree(adapter, tmp_path / "ckpt" / "writer")
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("He mentioned it.\nThe firm rose.\n")
    args = [str(src), "-o", str(out), "--model", str(tmp_path / "ckpt"), "--lm", str(base), "--no-progress"]
    assert main([*args, "--engine", "writer", "--device", "cpu"]) == 0
    assert out.read_text() == "He said it.\nThe firm rose.\n"


def test_tune_stores_the_best_dev_threshold(taught, tmp_path):
    import datasets

    from training.lm_lora import main

    base, adapter = taught
    shutil.copytree(adapter, tmp_path / "run" / "adapter")
    rows = {"spun": [s for s, _ in PAIRS], "original": ["He said it.", "The firm rose.", "Shares fell on Tuesday."]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "pairs" / "dev" / "shard-00000"))
    argv = ["tune", "--adapter", str(tmp_path / "run" / "adapter"), "--pairs", str(tmp_path / "pairs"), "--n", "3"]
    main([*argv, "--lm", str(base), "--threads", "1"])
    chosen = json.loads((tmp_path / "run" / "adapter" / WRITER_CONFIG).read_text())["min_confidence"]
    table = json.loads((tmp_path / "run" / "writer_tuning.json").read_text())
    assert table["chosen"]["min_confidence"] == chosen and table["chosen"]["recall"] == 1.0
    assert EditWriter.from_pretrained(tmp_path / "run" / "adapter", base).min_confidence == chosen
