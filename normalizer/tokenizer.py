"""The tokenizer a checkpoint carries: SentencePiece (`spiece.model`) trained by this project, or, for a pretrained
checkpoint, whatever `transformers.AutoTokenizer` finds there. Both expose the same small interface."""

from __future__ import annotations

import shutil
from pathlib import Path

SPM_FILE = "spiece.model"


class SpmTokenizer:
    """SentencePiece with pad=0, eos=1, unk=2 and byte fallback; `decode(encode(x)) == x` for any text."""

    def __init__(self, model_file: str | Path):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.pad_token_id = self.sp.pad_id()
        self.eos_token_id = self.sp.eos_id()
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, text: str, add_eos: bool = True) -> list[int]:
        """Token ids of `text`, ending with EOS unless `add_eos` is False."""
        ids = self.sp.encode(text)
        return ids + [self.eos_token_id] if add_eos else ids

    def encode_batch(self, texts: list[str], add_eos: bool = True) -> list[list[int]]:
        """`encode` over a list (SentencePiece batches internally)."""
        return [ids + [self.eos_token_id] if add_eos else ids for ids in self.sp.encode(texts)]

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, with pad and EOS dropped."""
        return self.sp.decode([i for i in ids if i not in (self.pad_token_id, self.eos_token_id)])

    def save(self, directory: str | Path) -> None:
        """Copy the SentencePiece model into `directory`."""
        target = Path(directory) / SPM_FILE
        if target.resolve() != self.model_file.resolve():
            shutil.copyfile(self.model_file, target)


class HfTokenizer:
    """A pretrained checkpoint's own tokenizer behind the same interface."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.pad_token_id = tokenizer.pad_token_id
        self.eos_token_id = tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)

    def encode(self, text: str, add_eos: bool = True) -> list[int]:
        return self.tok(text, add_special_tokens=add_eos).input_ids

    def encode_batch(self, texts: list[str], add_eos: bool = True) -> list[list[int]]:
        return self.tok(texts, add_special_tokens=add_eos).input_ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def save(self, directory: str | Path) -> None:
        self.tok.save_pretrained(directory)


def load_tokenizer(directory: str | Path) -> SpmTokenizer | HfTokenizer:
    """The tokenizer saved in a checkpoint directory (or a hub name, for `transformers` to resolve)."""
    path = Path(directory)
    if (path / SPM_FILE).exists() and not (path / "tokenizer_config.json").exists():
        return SpmTokenizer(path / SPM_FILE)
    from transformers import AutoTokenizer

    return HfTokenizer(AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False))
