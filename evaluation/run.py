"""Evaluate models and baselines on test sets: JSON results and a Markdown report with a precision/recall plot.

    python -m evaluation.run --model models/default --baselines identity lexicon \
        --testsets data/testsets/*.jsonl --out reports/default

For each system and test set: the metrics of `normalizer.metrics`; slices per spinner profile and spin rate (each
synthetic file is one profile x rate; the report also pools them into training profiles vs held-out profiles); for
models, precision and recall across the confidence knob (a second run of the seq2seq model alone, one pass, at
threshold 0, edits then filtered by confidence: what a higher threshold does to one pass); and the worst examples as
word diffs. A model's metrics are its outputs as users get them (its own threshold and passes). Deterministic: greedy
decoding, fixed test sets.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from evaluation.testsets import load_testset
from normalizer.edits import words
from normalizer.engines.seq2seq import Seq2SeqRestorer
from normalizer.metrics import THRESHOLDS, apply_edits, evaluate, wer
from normalizer.restorer import Restoration

logger = logging.getLogger(__name__)


def word_diff(a: str, b: str) -> str:
    """Words of `a` turned into `b`, as `[-old-]{+new+}` marks."""
    x, y = words(a), words(b)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=x, b=y, autojunk=False).get_opcodes():
        if op == "equal":
            out += x[i1:i2]
        else:
            if i2 > i1:
                out.append("[-" + " ".join(x[i1:i2]) + "-]")
            if j2 > j1:
                out.append("{+" + " ".join(y[j1:j2]) + "+}")
    return " ".join(out)


def run_model(normalizer: Seq2SeqRestorer, spun: list[str], batch_size: int) -> tuple[list[Restoration], float]:
    start = time.time()
    restorations = normalizer.restore_batch(spun, batch_size=batch_size)
    return restorations, time.time() - start


def evaluate_all(
    models: dict[str, Seq2SeqRestorer],
    baselines: dict[str, Callable[[list[str]], list[str]]],
    testsets: list[Path],
    batch_size: int = 32,
    n_worst: int = 3,
    limit: int = 0,
) -> dict:
    """Results per test set and system: metrics, PR curve (models), worst examples, seconds."""
    results: dict = {"testsets": {}}
    # Each model is reported as users get it (its own threshold and passes); its PR curve comes from a second run,
    # one pass, every edit kept, thresholded afterwards.
    results["threshold"] = {name: n.threshold for name, n in models.items()}
    _evaluate_sets(results, models, baselines, testsets, batch_size, n_worst, limit)
    return results


def curve_run(normalizer: Seq2SeqRestorer, spun: list[str], batch_size: int) -> list[Restoration]:
    """Restorations with every proposal kept: one pass, threshold 0 (thresholded afterwards)."""
    every = normalizer.with_options(threshold=0.0, passes=1)
    return every.restore_batch(spun, batch_size=batch_size)


def _evaluate_sets(results, models, baselines, testsets, batch_size, n_worst, limit=0) -> None:
    from tqdm.auto import tqdm

    for path in tqdm(testsets, desc="test sets", unit="set"):
        rows = load_testset(path)
        rows = rows[:limit] if limit else rows
        spun, original = [r["spun"] for r in rows], [r["original"] for r in rows]
        alternatives = [r.get("alternatives", []) for r in rows]
        meta_path = path.with_suffix(".meta.json")
        entry = {
            "rows": len(rows),
            "meta": json.loads(meta_path.read_text()) if meta_path.exists() else {},
            "systems": {},
        }
        for name, normalizer in models.items():
            restorations, secs = run_model(normalizer, spun, batch_size)
            every = curve_run(normalizer, spun, batch_size)
            curve = []
            for t in THRESHOLDS:
                outs = [apply_edits(s, r, t) for s, r in zip(spun, every)]
                m = evaluate(spun, outs, original, alternatives, sacrebleu_scores=False)
                curve.append({"threshold": t, **{k: m[k] for k in ("precision", "recall", "err", "over_correction")}})
            outputs = [r.text for r in restorations]
            entry["systems"][name] = _system_entry(spun, outputs, original, alternatives, secs, n_worst)
            entry["systems"][name]["pr_curve"] = curve
            entry["systems"][name]["rejected_by_guard"] = sum(
                1 for r in restorations for x in r.rejected if x.reason != "low confidence"
            )
        for name, fn in baselines.items():
            start = time.time()
            outputs = fn(spun)
            entry["systems"][name] = _system_entry(spun, outputs, original, alternatives, time.time() - start, n_worst)
            if getattr(fn, "table", None) is not None:  # a pipeline: how many swapped words its candidates reach
                entry["systems"][name]["metrics"]["ceiling"] = candidate_ceiling(fn.table, spun, original)
            if hasattr(fn, "last_low"):  # edits with probabilities: the curve across thresholds
                curve = []
                for t in PIPELINE_THRESHOLDS:
                    outs = [apply_edits(s, r, t) for s, r in zip(spun, fn.last_low)]
                    m = evaluate(spun, outs, original, alternatives, sacrebleu_scores=False)
                    keys = ("precision", "recall", "err", "over_correction", "word_precision", "word_recall")
                    curve.append({"threshold": t, **{k: m[k] for k in keys}, "unchanged": m["unchanged"]})
                entry["systems"][name]["pr_curve"] = curve
        results["testsets"][path.stem] = entry


def candidate_ceiling(table, spun: list[str], original: list[str]) -> float:
    """Share of gold word edits whose original is among the candidate table's proposals for that span."""
    from normalizer.edits import tokenize
    from normalizer.stages.ranker import gold_edits

    hit = total = 0
    for s, o in zip(spun, original):
        found = {(c.first, c.last, tuple(w.lower() for w in words(c.after))) for c in table.propose(s, tokenize(s))}
        for (i, j), after in gold_edits(s, o).items():
            total += 1
            hit += (i, j, tuple(w.lower() for w in after)) in found
    return hit / total if total else 1.0


PIPELINE_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


class ThresholdSystem:
    """A restorer whose edits carry probabilities, as a system of the harness: texts in, texts restored at its own
    threshold out. Each call also keeps the restorations at the lowest curve threshold, for the precision/recall
    curve across thresholds."""

    table = None

    def __init__(self, restorer, threshold: float):
        self.restorer, self.threshold = restorer, threshold
        self.last_low: list[Restoration] = []

    def __call__(self, texts: list[str]) -> list[str]:
        low = min(PIPELINE_THRESHOLDS[0], self.threshold)
        self.last_low = self.restorer.restore_batch(texts, progress=True, threshold=low)
        return [apply_edits(t, r, self.threshold) for t, r in zip(texts, self.last_low)]


class PipelineSystem(ThresholdSystem):
    """A pipeline checkpoint as a system of the harness (with its candidate table, for the ceiling)."""

    def __init__(self, path: str, lm: str, device: str, dictionaries: list[str] = ()):
        from normalizer.engines.pipeline import Pipeline

        pipeline = Pipeline.from_pretrained(path, lm=lm, device=device, dictionaries=dictionaries)
        super().__init__(pipeline, pipeline.threshold)
        self.pipeline, self.table = pipeline, pipeline.table


def _system_entry(spun, outputs, original, alternatives, secs, n_worst) -> dict:
    metrics = evaluate(spun, outputs, original, alternatives)
    # Worst: the items where the output is furthest from the original, relative to the input.
    scored = sorted(range(len(spun)), key=lambda k: -(wer([outputs[k]], [original[k]]) - wer([spun[k]], [original[k]])))
    worst = [
        {
            "spun": spun[k],
            "output": outputs[k],
            "original": original[k],
            "output_vs_original": word_diff(outputs[k], original[k]),
        }
        for k in scored[:n_worst]
    ]
    return {"metrics": metrics, "seconds": secs, "worst": worst}


def _fmt(v) -> str:
    if isinstance(v, float):
        return "-inf" if v == float("-inf") else f"{v:.3f}"
    return str(v)


COLUMNS = (
    "err",
    "wer_in",
    "wer_out",
    "precision",
    "recall",
    "f0.5",
    "word_precision",
    "word_recall",
    "over_correction",
    "ceiling",
    "exact_match",
    "unchanged",
    "chrf",
    "bleu",
)


def pooled(results: dict, select: Callable[[dict], bool]) -> dict[str, dict[str, float]]:
    """Row-weighted average metrics per system over the test sets whose meta passes `select`."""
    out: dict[str, dict[str, float]] = {}
    sets = [e for e in results["testsets"].values() if select(e["meta"])]
    for e in sets:
        for name, s in e["systems"].items():
            acc = out.setdefault(name, {"n": 0})
            acc["n"] += e["rows"]
            for c in COLUMNS:
                v = s["metrics"].get(c)
                if isinstance(v, float) and v != float("-inf"):
                    acc[c] = acc.get(c, 0.0) + v * e["rows"]
    for acc in out.values():
        for c in COLUMNS:
            if c in acc:
                acc[c] /= acc["n"]
    return out


def write_report(results: dict, out_dir: Path, title: str) -> Path:
    """results.json, metrics.json (no example text: the file to commit), report.md and pr_curve.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics_only(results), indent=2) + "\n")
    lines = [f"# {title}", "", results.get("description", ""), ""]
    for label, select in (
        (
            "Held-out spinner profiles (never seen in training)",
            lambda m: m.get("kind") == "synthetic" and m.get("held_out"),
        ),
        ("Training spinner profiles", lambda m: m.get("kind") == "synthetic" and not m.get("held_out")),
    ):
        table = pooled(results, select)
        if table:
            lines += [f"## {label}, pooled (row-weighted means of per-set scores)", "", _table(table), ""]
    for name, e in results["testsets"].items():
        meta = e["meta"]
        what = ", ".join(f"{k} {meta[k]}" for k in ("kind", "profile", "rate", "held_out") if k in meta)
        lines += [
            f"## {name} ({e['rows']} rows; {what})",
            "",
            _table({n: {**s["metrics"], "seconds": s["seconds"]} for n, s in e["systems"].items()}, seconds=True),
            "",
        ]
        for sys_name, s in e["systems"].items():
            if s["metrics"]["system_edits"] == 0:
                continue
            lines += [f"<details><summary>worst examples: {sys_name}</summary>", ""]
            for w in s["worst"]:
                lines += [f"- spun: {w['spun']}", f"  - output → original: {w['output_vs_original']}"]
            lines += ["", "</details>", ""]
    png = _plot(results, out_dir / "pr_curve.png")
    if png:
        lines += ["## Precision against recall across thresholds", "", f"![precision/recall]({png.name})", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _table(rows: dict[str, dict], seconds: bool = False) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in rows.values())] + (["seconds"] if seconds else [])
    head = "| system | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols)
    body = "\n".join(f"| {n} | " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for n, r in rows.items())
    return head + "\n" + body


def _plot(results: dict, path: Path) -> Path | None:
    curves: dict[str, list] = {}
    for set_name, e in results["testsets"].items():
        if e["meta"].get("kind") != "synthetic":
            continue
        for sys_name, s in e["systems"].items():
            if "pr_curve" in s:
                curves.setdefault(f"{sys_name} / {e['meta'].get('profile')}", []).append(s["pr_curve"])
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, sets in sorted(curves.items()):
        n = len(sets[0])
        p = [sum(c[k]["precision"] for c in sets) / len(sets) for k in range(n)]
        r = [sum(c[k]["recall"] for c in sets) / len(sets) for k in range(n)]
        ax.plot(r, p, marker="o", markersize=3, label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("threshold from 0 (right) to 0.95 (left)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=[], help="checkpoint directories (name=DIR or DIR)")
    parser.add_argument("--baselines", nargs="*", default=["identity", "lexicon"], choices=["identity", "lexicon"])
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--title", default="Restoration report")
    parser.add_argument("--pipeline", nargs="*", default=[], help="pipeline checkpoints (name=DIR or DIR)")
    parser.add_argument("--lm", default="smollm2", help="the pipelines' language model")
    parser.add_argument(
        "--dictionary", action="append", default=[], help="spinner dictionary file given to every pipeline (repeatable)"
    )
    parser.add_argument("--limit", type=int, default=0, help="first N rows of each test set only (0 = all)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    models = {}
    for spec in args.model:
        name, _, path = spec.rpartition("=")
        models[name or Path(path).name] = Seq2SeqRestorer.from_pretrained(path, device=args.device)
    baselines: dict = {}
    if "identity" in args.baselines:
        from evaluation.baselines import identity

        baselines["identity"] = identity
    if "lexicon" in args.baselines:
        from evaluation.baselines import lexicon_baseline

        baselines["lexicon"] = lexicon_baseline()
    for spec in args.pipeline:
        name, _, path = spec.rpartition("=")
        baselines[name or Path(path).name] = PipelineSystem(path, args.lm, args.device, args.dictionary)
    results = evaluate_all(models, baselines, sorted(args.testsets), args.batch_size, limit=args.limit)
    results["description"] = (
        f"Command: `python -m evaluation.run {' '.join(argv)}`. "
        f"Model outputs at each model's default threshold: {results['threshold']}."
    )
    report = write_report(results, args.out, args.title)
    print(report)


def metrics_only(results: dict) -> dict:
    """`results` without the worst-example texts: safe to commit (no corpus sentences)."""
    out = {k: v for k, v in results.items() if k != "testsets"}
    out["testsets"] = {
        name: {
            **{k: v for k, v in entry.items() if k != "systems"},
            "systems": {
                system: {k: v for k, v in sys_entry.items() if k != "worst"}
                for system, sys_entry in entry["systems"].items()
            },
        }
        for name, entry in results["testsets"].items()
    }
    return out


if __name__ == "__main__":
    main()
