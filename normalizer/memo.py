"""A bounded memo: what the stages remember across calls (a surface's candidates, a pair's features, a chunk's
token ids) must not grow with the corpus a batch job reads."""

from __future__ import annotations

import itertools

# Entries each memo keeps (measured on held-out paragraphs: a pair's features ~0.8 KB, a surface's candidates ~2 KB,
# a chunk's ids ~0.2 KB), about 80 + 40 + 40 + 40 MB at most.
PAIRS_MEMO = 100_000
SPANS_MEMO = 20_000
LINKS_MEMO = 100_000
CHUNKS_MEMO = 200_000


class Memo(dict):
    """A dict that forgets its oldest half (by insertion) once it would hold more than `limit` entries, so memory
    stays bounded while the entries a text keeps asking for come back soon after."""

    def __init__(self, limit: int):
        if limit < 2:
            raise ValueError(f"limit must be >= 2, got {limit}")
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        if len(self) >= self.limit and key not in self:
            for old in list(itertools.islice(iter(self), len(self) // 2)):
                del self[old]
        super().__setitem__(key, value)

    def update(self, *args, **kwargs) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]
