"""Export a trained model for shipping: fp16 safetensors plus everything that describes it, and its MODEL_CARD.md.

    python -m training.export runs/main/model models/default \
        --results reports/default/results.json --bench reports/bench-cpu.json

The card is written from measured files only: the training config and dev curve saved by `training.train`, the
harness's results (`evaluation.run`) and the speed benchmark (`evaluation.bench`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

CARRIED = ("spiece.model", "normalizer_config.json", "training_config.json", "metrics.json")


def export(src: Path, dst: Path, dtype: torch.dtype = torch.float16) -> None:
    """Copy the checkpoint `src` to `dst` with weights cast to `dtype` (safetensors)."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(str(src), use_safetensors=True, dtype=torch.float32)
    dst.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(dst, safe_serialization=True)
    for name in CARRIED:
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)


def _row(name: str, m: dict) -> str:
    return (
        f"| {name} | {m['err']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['over_correction'] * 100:.2f}% | "
        f"{m['unchanged']:.3f} | {m['wer_in']:.3f} | {m['wer_out']:.3f} |"
    )


def model_card(
    model_dir: Path,
    results: dict | None,
    bench: list[dict] | None,
    system: str,
    trained_on: str | None = None,
    bench_note: str | None = None,
) -> str:
    cfg = json.loads((model_dir / "training_config.json").read_text())
    dev = json.loads((model_dir / "metrics.json").read_text()).get("dev_during_training", [])
    params = json.loads((model_dir / "config.json").read_text())
    size_mb = sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) / 1e6
    lines = [
        "# normalizer default model",
        "",
        "Restores spun (synonym-swapped) English news text. A T5-style encoder-decoder trained from scratch on this "
        "project's spinner simulator; the decoder writes only the edits (`before<to> after<sep>...`), which the "
        "normalizer applies where their left side is found in the input, behind the faithfulness guard.",
        "",
        "## Model",
        f"- Architecture: T5 (pre-norm), d_model {params['d_model']}, {params['num_layers']} encoder / "
        f"{params['num_decoder_layers']} decoder layers, {params['num_heads']} heads, "
        f"vocabulary {params['vocab_size']} (SentencePiece unigram, byte fallback), tied embeddings.",
        f"- Weights: fp16 safetensors, {size_mb:.1f} MB.",
        f"- Target: the edit sequence; encoder auxiliary loss weight {cfg.get('aux_weight', 0)}.",
        "",
        "## Training",
        "- Data: (spun, original) sentence pairs from `../shared/corpora` (BBC 2004-05, Reuters-21578, ABC 2006, "
        "State of the Union; research use), split by document; spun by the training profiles spinbot, wordai and "
        "spinrewriter at rates 0-0.6 with a share of unspun pairs (see `training/spin.py`).",
        f"- Pairs: `{cfg['pairs']}`; clean (unspun) pairs capped at {cfg['clean_share']:.0%} of the training set.",
        (
            f"- Batch {cfg['batch_size']}, {cfg.get('optimizer', 'adamw')} lr {cfg['lr']}, warm-up "
            f"{cfg['warmup_steps']} steps, cosine decay over {cfg['max_minutes']} training minutes"
            if cfg.get("time_schedule")
            else f"- {cfg['max_steps']} steps planned, batch {cfg['batch_size']}, {cfg.get('optimizer', 'adamw')} lr "
            f"{cfg['lr']}, warm-up {cfg['warmup_steps']}, cosine decay; time limit {cfg['max_minutes']} min"
        )
        + (f"; trained on {trained_on}." if trained_on else "."),
        "- Full config: `training_config.json`; dev curve: `metrics.json`; learning curves of the CPU and GPU runs "
        "that chose its settings: `evaluation/results/curves/curves.md`, `evaluation/results/curves-gpu/curves.md`.",
    ]
    if dev:
        last = dev[-1]
        lines += [
            "- Last dev evaluation during training (plain greedy decoding at min_confidence 0.5, before the tuning "
            f"below): step {last['step']}, {last['minutes']:.0f} training minutes, "
            f"{last['n']} dev sentences, training profiles: ERR {last['err']:.3f}, precision "
            f"{last['precision']:.3f}, recall {last['recall']:.3f}, over-correction "
            f"{last['over_correction'] * 100:.2f}%."
        ]
    tuning_path = model_dir / "tuning.json"
    if tuning_path.exists():
        chosen = json.loads(tuning_path.read_text())
        best = chosen["chosen"]
        lines += [
            f"- Inference defaults, chosen by `python -m training.tune` "
            f"on {chosen['dev_pairs']} dev pairs (best F0.5): "
            f"suppress_empty {best['suppress_empty']}, threshold {_threshold(best)}, "
            f"passes {best.get('passes', 1)} (dev precision "
            f"{best['precision']:.3f}, recall {best['recall']:.3f}, ERR {best['err']:.3f}); the table is in "
            "`tuning.json`.",
            "",
            "Choosing the threshold (dev pairs, one pass, same suppress_empty; higher = fewer, surer edits):",
            "",
            "| threshold | precision | recall | ERR | over-correction |",
            "|---|---|---|---|---|",
        ]
        for row in chosen["table"]:
            if row.get("passes", 1) == 1 and row["suppress_empty"] == best["suppress_empty"]:
                lines.append(
                    f"| {_threshold(row)} | {row['precision']:.3f} | {row['recall']:.3f} | {row['err']:.3f} | "
                    f"{row['over_correction'] * 100:.2f}% |"
                )
    if tuning_path.exists() and "rerank" in json.loads(tuning_path.read_text()):
        lines += [
            "",
            "Opt-in language-model reranker (`--rerank`), at the chosen setting, same dev pairs:",
            "",
            "| reranker | margin | precision | recall | ERR | over-correction | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in json.loads(tuning_path.read_text())["rerank"]:
            lines.append(
                f"| {row['rerank'] or 'none'} | {'' if row['margin'] is None else row['margin']} | "
                f"{row['precision']:.3f} | {row['recall']:.3f} | {row['err']:.3f} | "
                f"{row['over_correction'] * 100:.2f}% | {row['seconds']:.0f} |"
            )
    if results:
        lines += [
            "",
            "## Restoration on the harness's test sets (held-out documents)",
            "",
            results.get("description", ""),
            "",
            f"Rows: this model (**{system}**) and the baselines of the same run (identity = leave as is; lexicon = "
            "inverted thesaurus with corpus n-gram counts).",
            "",
            "| test set / system | ERR | precision | recall | over-correction | unchanged | WER in | WER out |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, entry in results["testsets"].items():
            for sys_name, sys_entry in entry["systems"].items():
                label = f"{name} / **{sys_name}**" if sys_name == system else f"{name} / {sys_name}"
                lines.append(_row(label, sys_entry["metrics"]))
        lines += [
            "",
            "Targets set in the issue, on the held-out profile (bestspinner): ERR >= 0.6, precision >= 0.85, "
            "over-correction <= 1%, >= 98% of clean paragraphs unchanged (`clean` row, column unchanged).",
        ]
    if bench:
        lines += ["", "## Speed", ""] + ([bench_note, ""] if bench_note else [])
        for run in bench:
            m = run["machine"]
            lines.append(
                f"- {run['device']} ({m.get('cuda') or m['cpu']}, {m['cpu_count']} cores, torch threads "
                f"{m['torch_threads']}; {run['sentences']} sentences): cold start {run['cold_start_s']:.1f} s; "
                f"single sentence p50 "
                f"{run['latency_single_sentence_s']['p50'] * 1000:.0f} ms, p95 "
                f"{run['latency_single_sentence_s']['p95'] * 1000:.0f} ms; peak RSS {run['peak_rss_mb']:.0f} MB"
            )
            for t in run["throughput"]:
                lines.append(
                    f"  - batch {t['batch_size']}: {t['sentences_per_s']:.1f} sentences/s, "
                    f"{t['tokens_per_s']:.0f} input tokens/s ({t['ratio_to_plain_generate']:.2f}x plain "
                    f"`generate`)"
                )
    lines += [
        "",
        "## Known limits",
        "- Trained on simulated spinning only; real spinners' choices differ (see the held-out profile row).",
    ]
    clean = (results or {}).get("testsets", {}).get("clean", {}).get("systems", {})
    for sys_name, entry in clean.items():
        if sys_name.startswith(system):
            lines.append(
                f"- Clean text ({sys_name}): {entry['metrics']['unchanged']:.1%} of clean paragraphs come back "
                "unchanged (target 98%)"
                + "; raise the threshold (`--min-confidence`) or use the pipeline where that matters."
            )
    lines += [
        "- Restores only what the training lexicons make plausible; rare words and unseen phrase swaps stay.",
        "- Edits that change numbers, dates, URLs, e-mail addresses or amounts are never applied; so "
        '"12 months" -> "year" is allowed only as a unit equivalence.',
        "- English news prose; other genres and languages are untested.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--results", type=Path, help="results.json from evaluation.run")
    parser.add_argument("--bench", type=Path, nargs="*", default=[], help="JSON files from evaluation.bench")
    parser.add_argument("--trained-on", help="the machine that trained the model, for the card")
    parser.add_argument("--bench-note", help="a sentence above the speed figures (how they were measured)")
    parser.add_argument("--system", default=None, help="system name in results.json (default: the dst folder name)")
    parser.add_argument("--card-only", action="store_true", help="rewrite MODEL_CARD.md without re-exporting weights")
    args = parser.parse_args(argv)
    if not args.card_only:
        export(args.src, args.dst)
    results = json.loads(args.results.read_text()) if args.results else None
    bench = [run for path in args.bench for run in json.loads(path.read_text())["runs"]]
    card = model_card(args.dst, results, bench, args.system or args.dst.name, args.trained_on, args.bench_note)
    (args.dst / "MODEL_CARD.md").write_text(card)
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    main()


def _threshold(row: dict) -> float:
    """A tuning row's threshold (tables written before the rename call it min_confidence)."""
    return row["threshold"] if "threshold" in row else row["min_confidence"]
