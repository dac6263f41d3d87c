"""Train the project's SentencePiece tokenizer on both sides of the pairs.

Identity normalisation, no whitespace collapsing and byte fallback make `decode(encode(x)) == x` for every string;
the edit-format symbols are single pieces. Usage: `python -m training.tokenizer --pairs data/pairs --out DIR`.
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Iterable
from pathlib import Path

from normalizer.edits import SPECIAL_SYMBOLS
from normalizer.tokenizer import SPM_FILE, SpmTokenizer

logger = logging.getLogger(__name__)


def train_tokenizer(
    texts: Iterable[str], out_dir: str | Path, vocab_size: int = 8000, max_sentences: int = 300_000
) -> SpmTokenizer:
    """Train a unigram SentencePiece model on `texts` and write `spiece.model` into `out_dir`."""
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t for t in texts if t.strip()),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=0.9995,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        user_defined_symbols=list(SPECIAL_SYMBOLS),
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (out_dir / SPM_FILE).write_bytes(model.getvalue())
    return SpmTokenizer(out_dir / SPM_FILE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="pairs folder made by training.pairs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args(argv)
    from training.pairs import load_pairs

    ds = load_pairs(args.pairs, "train")
    texts = (t for row in ds.select_columns(["spun", "original"]) for t in (row["spun"], row["original"]))
    tok = train_tokenizer(texts, args.out, args.vocab_size)
    print(f"wrote {args.out / SPM_FILE} ({tok.vocab_size} pieces)")


if __name__ == "__main__":
    main()
