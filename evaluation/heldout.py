"""A pipeline checkpoint that lacks one lexicon, for measuring a spinner whose dictionary comes from it.

    python -m training.candidates --sources moby wordnet --out runs/cand-no-mythes/candidates.npz
    python -m evaluation.heldout --checkpoint models/default --candidates runs/cand-no-mythes/candidates.npz \
        --out runs/eval-no-mythes

Copies the checkpoint with the candidate table replaced and its channel cut to the swaps that table can explain
(an original the table proposes for the spun word, inflection aside), so neither the candidates nor the channel
counts know a link that only the left-out lexicon has. The ranker and the seq2seq model are kept as they are (the
seq2seq model saw pairs of every lexicon in training: its proposals can still know a few such links).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from normalizer.checkpoint import CANDIDATES_FILE
from normalizer.inflection import analyses
from normalizer.stages.candidates import CandidateTable
from normalizer.stages.ranker import Channel


def explained(table: CandidateTable, original: str, spun: str) -> bool:
    """Whether the table proposes `original` (any inflection of it) for the spun words."""
    if original in table.phrases.get(spun, ()):
        return True
    words = spun.split()
    if not words or not original.split():
        return False
    head = 0 if len(words) > 1 else -1
    lemmas = {o for o in original.split()} | {lemma for w in original.split() for lemma, _, _ in analyses(w)}
    for lemma, _, _ in analyses(words[head]) if words[head].isalpha() else ((words[head], None, None),):
        key = list(words)
        key[head] = lemma
        for o, _, _ in table.originals(" ".join(key)):
            if o == original or o in lemmas:
                return True
    return False


def cut_channel(channel: Channel, table: CandidateTable) -> Channel:
    """The channel's swaps that `table` explains (see `explained`), with the original counts recounted."""
    swaps, originals = {}, {}
    for key, count in channel.swaps.items():
        original, spun = key.split("\t")
        if explained(table, original, spun):
            swaps[key] = count
            originals[original] = originals.get(original, 0) + count
    return Channel(swaps, originals)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--candidates", type=Path, required=True, help="the table built without the lexicon")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    shutil.copytree(args.checkpoint, args.out, dirs_exist_ok=True)
    shutil.copyfile(args.candidates, args.out / CANDIDATES_FILE)
    table = CandidateTable.load(args.candidates)
    channel = Channel.load(args.checkpoint)
    cut = cut_channel(channel, table)
    cut.save(args.out)
    report = {"swaps": len(channel.swaps), "kept": len(cut.swaps), "candidates": str(args.candidates)}
    (args.out / "heldout.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
