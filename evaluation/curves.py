"""Learning curves of training runs: loss and dev restoration metrics against training minutes.

    python -m evaluation.curves runs/pilot-edits runs/pilot-full runs/main --out reports/curves

Reads each run's `train_log.jsonl` (written by `training.train`) and writes `curves.md` (a table per run) and
`curves.png` (loss and dev ERR/recall against minutes), so target formats and settings are compared per CPU-minute.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_log(run: Path) -> tuple[list[dict], list[dict]]:
    """(loss entries, dev evaluations) of a run."""
    losses, evals = [], []
    for line in (run / "train_log.jsonl").read_text().splitlines():
        row = json.loads(line)
        (evals.append(row["eval"]) if "eval" in row else losses.append(row))
    return losses, evals


def write_curves(runs: list[Path], out_dir: Path, note: str = "") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Learning curves",
        "",
        "Dev metrics at the normalizer's default min_confidence 0.5 (dev sentences from "
        "the training profiles); minutes are training time, evaluation excluded.",
        "",
    ]
    if note:
        lines += [note, ""]
    data = {}
    for run in runs:
        losses, evals = read_log(run)
        data[run.name] = (losses, evals)
        found = [p for p in ("checkpoint", "model", ".") if (run / p / "training_config.json").exists()]
        cfg = json.loads((run / found[0] / "training_config.json").read_text()) if found else {}
        lines += [
            f"## {run.name}",
            "",
            "config: "
            + ", ".join(
                f"{k}={cfg[k]}"
                for k in ("preset", "aux_weight", "lr", "batch_size", "threads", "clean_share")
                if k in cfg
            ),
            "",
            "| step | minutes | loss | ERR | precision | recall | over-correction | unchanged |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in evals:
            loss = min((abs(x["step"] - e["step"]), x["loss"]) for x in losses)[1] if losses else float("nan")
            lines.append(
                f"| {e['step']} | {e['minutes']:.1f} | {loss:.3f} | {e['err']:.3f} | {e['precision']:.3f} | "
                f"{e['recall']:.3f} | {e['over_correction'] * 100:.2f}% | {e['unchanged']:.3f} |"
            )
        lines.append("")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (name, (losses, evals)) in enumerate(data.items()):
        color = plt.get_cmap("tab10")(i % 10)  # one colour per run on both panels
        a.plot([x["minutes"] for x in losses], [x["loss"] for x in losses], color=color, label=name)
        b.plot([e["minutes"] for e in evals], [e["err"] for e in evals], color=color, marker="o", label=f"{name} ERR")
        b.plot(
            [e["minutes"] for e in evals], [e["recall"] for e in evals], color=color, ls="--", label=f"{name} recall"
        )
    a.set_xlabel("training minutes"), a.set_ylabel("training loss"), a.legend(fontsize=7)
    b.set_xlabel("training minutes"), b.set_ylabel("dev"), b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=110)
    plt.close(fig)
    lines += ["![curves](curves.png)", ""]
    (out_dir / "curves.md").write_text("\n".join(lines))
    return out_dir / "curves.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note", default="", help="a paragraph under the title (where and how the runs ran)")
    args = parser.parse_args(argv)
    print(write_curves(args.runs, args.out, args.note))


if __name__ == "__main__":
    main()
