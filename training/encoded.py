"""Pairs pre-encoded into one compact file of token ids, so that training elsewhere (a GPU machine) needs neither
`datasets`, the lexicons, nor a tokenizer pass at start-up.

    python -m training.encoded --pairs data/pairs data/pairs-s1 data/pairs-s2 --tokenizer data/tokenizer \
        --out data/encoded.npz
    python -m training.train --pairs data/encoded.npz --tokenizer data/tokenizer ...

The file holds, for every training pair of every pairs folder given (several folders = several spins of the same
sentences, made with different `--seed`s), the source ids, the edit-target ids, an index into a table of original
sentences (stored once each, so extra spins cost only their sources and edits) and the encoder auxiliary labels (kept
as exceptions to "label = source id"). Token ids are uint16. The dev split's texts (from the first folder) travel as
JSON, since evaluation during training runs the normalizer on text. The tokenizer's SHA-256 is stored and checked on
load: ids from another tokenizer would train silently wrong.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def aux_labels(source: list[int], original: list[int]) -> list[int]:
    """Per source token, the aligned original token (see `training.train.encode_split`)."""
    labels = [-100] * len(source)
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=source, b=original, autojunk=False).get_opcodes():
        if op == "equal":
            labels[i1:i2] = source[i1:i2]
        elif i2 > i1 and j2 > j1:
            labels[i1] = original[j1]
    return labels


def tokenizer_digest(tokenizer_dir: str | Path) -> str:
    return hashlib.sha256((Path(tokenizer_dir) / "spiece.model").read_bytes()).hexdigest()


def _flat(seqs: list[list[int]], dtype) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    flat = np.fromiter((x for s in seqs for x in s), dtype=dtype, count=int(offsets[-1]))
    return flat, offsets


def _unflat(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    values = flat.tolist()
    bounds = offsets.tolist()
    return [values[bounds[k] : bounds[k + 1]] for k in range(len(bounds) - 1)]


def encode_pairs(pairs_dirs: list[str | Path], tokenizer_dir: str | Path, out: str | Path) -> dict:
    """Encode the train split of every folder in `pairs_dirs` (and the first one's dev texts) into `out` (.npz)."""
    from normalizer.tokenizer import SpmTokenizer
    from training.pairs import load_pairs

    tokenizer = SpmTokenizer(Path(tokenizer_dir) / "spiece.model")
    if tokenizer.vocab_size > np.iinfo(np.uint16).max:
        raise ValueError(f"vocabulary of {tokenizer.vocab_size} does not fit uint16 ids")
    start = time.time()
    originals: dict[str, int] = {}
    sources, targets, orig_index, aux_pos, aux_val = [], [], [], [], []
    for pairs_dir in pairs_dirs:
        rows = load_pairs(pairs_dir, "train").to_dict()
        index = [originals.setdefault(o, len(originals)) for o in rows["original"]]
        src = tokenizer.encode_batch(rows["spun"])
        orig = tokenizer.encode_batch(rows["original"])
        for s, o in zip(src, orig):
            labels = aux_labels(s, o)
            exceptions = [(k, v) for k, v in enumerate(labels) if v != s[k]]
            aux_pos.append([k for k, _ in exceptions])
            aux_val.append([v for _, v in exceptions])
        sources += src
        targets += tokenizer.encode_batch(rows["target"])
        orig_index += index
        logger.info("%s: %d pairs (%.0f s so far)", pairs_dir, len(rows["spun"]), time.time() - start)
    table = tokenizer.encode_batch(list(originals))
    if max(len(s) for s in sources) > np.iinfo(np.uint8).max:
        raise ValueError("a source longer than 255 tokens: cut sentences shorter when making pairs")
    dev = load_pairs(pairs_dirs[0], "dev").to_dict()
    arrays = {}
    for name, seqs, dtype in (
        ("src", sources, np.uint16),
        ("tgt", targets, np.uint16),
        ("orig", table, np.uint16),
        ("aux_pos", aux_pos, np.uint8),
        ("aux_val", aux_val, np.int16),
    ):
        arrays[name], arrays[name + "_off"] = _flat(seqs, dtype)
    arrays["orig_index"] = np.asarray(orig_index, dtype=np.int32)
    meta = {
        "tokenizer_sha256": tokenizer_digest(tokenizer_dir),
        "pairs_dirs": [str(p) for p in pairs_dirs],
        "pairs": len(sources),
        "originals": len(table),
    }
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    dev_text = {"spun": dev["spun"], "original": dev["original"]}
    arrays["dev_json"] = np.frombuffer(json.dumps(dev_text).encode(), dtype=np.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    logger.info("wrote %s (%.1f MB) in %.0f s", out, out.stat().st_size / 1e6, time.time() - start)
    return meta


def load_encoded(path: str | Path, tokenizer_dir: str | Path | None, with_aux: bool = True) -> tuple[dict, dict]:
    """Training columns and the dev texts from an encoded file.

    Columns: `source`, `target`, `aux` (lists of id lists; empty lists unless `with_aux`) and `clean` (nothing was
    swapped); `target` is the edit sequence.
    """
    with np.load(path) as z:
        meta = json.loads(z["meta_json"].tobytes())
        if tokenizer_dir is not None and meta["tokenizer_sha256"] != tokenizer_digest(tokenizer_dir):
            raise ValueError(f"{path} was encoded with another tokenizer than {tokenizer_dir}/spiece.model")
        source = _unflat(z["src"], z["src_off"])
        target = _unflat(z["tgt"], z["tgt_off"])
        clean = [len(t) <= 1 for t in target]  # the empty edit list is [EOS]
        aux = [[] for _ in source]
        if with_aux:
            positions = _unflat(z["aux_pos"], z["aux_pos_off"])
            values = _unflat(z["aux_val"], z["aux_val_off"])
            for labels, s, pos, val in zip(aux, source, positions, values):
                labels += s
                for k, v in zip(pos, val):
                    labels[k] = v
        dev = json.loads(z["dev_json"].tobytes())
    return {"source": source, "target": target, "aux": aux, "clean": clean}, dev


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", required=True, help="pairs folders (training.pairs --out)")
    parser.add_argument("--tokenizer", default="data/tokenizer")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(json.dumps(encode_pairs(args.pairs, args.tokenizer, args.out)))


if __name__ == "__main__":
    main()
