"""The pipeline's decision stage: the channel model and the logistic ranker that turns features into a confidence.

- `Channel`: how often spinners were seen turning an original into a spun word, log P(spun | original), from
  (spun, original) pairs (smoothed counts, with a back-off to the lower-cased words).
- `Ranker`: logistic regression over standardised features; its probability is the edit's confidence.
Both are plain JSON in the checkpoint (`ranker.json`, `channel.json.gz`): nothing in them is executed.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import numpy as np

from normalizer.checkpoint import CHANNEL_FILE, RANKER_FILE


@dataclass
class Channel:
    """Counts of (original -> spun) swaps seen in pairs, and of each original word as a target of any swap."""

    swaps: dict[str, int] = field(default_factory=dict)
    """`original\\tspun` (lower case) -> count."""
    originals: dict[str, int] = field(default_factory=dict)
    """original (lower case) -> how many times it was swapped for anything."""
    parts: dict[str, int] = field(default_factory=dict)
    """What was counted: part name (`simulated`, `tortured`) -> pairs."""

    @classmethod
    def from_pairs(cls, pairs) -> Channel:
        """Count the swaps of (spun, original) pairs, aligned word by word (see `gold_edits`)."""
        from normalizer.edits import tokenize

        swaps: Counter = Counter()
        originals: Counter = Counter()
        for spun, original in pairs:
            toks = [t.text for t in tokenize(spun)]
            for (i, j), after in gold_edits(spun, original).items():
                if not after or j - i > 3 or len(after) > 3:
                    continue
                o, s = " ".join(after).lower(), " ".join(toks[i:j]).lower()
                swaps[f"{o}\t{s}"] += 1
                originals[o] += 1
        return cls(dict(swaps), dict(originals))

    def merged(self, other: Channel, part: str, pairs: int) -> Channel:
        """This channel's counts plus `other`'s, with `part` (`pairs` pairs) recorded; a part already counted is a
        ValueError (merging twice would double it)."""
        if part in self.parts:
            raise ValueError(f"the channel already counts {part!r} ({self.parts[part]} pairs)")
        swaps, originals = Counter(self.swaps), Counter(self.originals)
        swaps.update(other.swaps)
        originals.update(other.originals)
        return Channel(dict(swaps), dict(originals), {**self.parts, part: pairs})

    def log_prob(self, original: str, spun: str) -> tuple[float, bool]:
        """Smoothed log P(spun | original) and whether the swap was ever seen."""
        o, s = original.lower(), spun.lower()
        c = self.swaps.get(f"{o}\t{s}", 0)
        n = self.originals.get(o, 0)
        return math.log((c + 0.1) / (n + 1.0)), c > 0

    def save(self, directory: str | Path) -> None:
        with gzip.GzipFile(Path(directory) / CHANNEL_FILE, "wb", mtime=0) as f:
            data = {"swaps": self.swaps, "originals": self.originals, "parts": self.parts}
            f.write(json.dumps(data, sort_keys=True).encode())

    @classmethod
    def load(cls, directory: str | Path) -> Channel:
        path = Path(directory) / CHANNEL_FILE
        if not path.exists():
            return cls()
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("swaps"), dict):
            raise ValueError(f"{path}: expected an object with 'swaps' and 'originals'")
        return cls(
            {str(k): int(v) for k, v in data["swaps"].items()},
            {str(k): int(v) for k, v in data.get("originals", {}).items()},
            {str(k): int(v) for k, v in data.get("parts", {}).items()},
        )


def gold_edits(spun: str, original: str) -> dict[tuple[int, int], tuple[str, ...]]:
    """Word edits that turn `spun` back into `original`: {(first, last) spun token span: original words}.

    Equal-length replacements are split into one-word edits (as `normalizer.metrics` scores them)."""
    import difflib

    from normalizer.edits import tokenize, words

    a, b = [t.text for t in tokenize(spun)], words(original)
    gold = {}
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                gold[(i1 + k, i1 + k + 1)] = (b[j1 + k],)
        else:
            gold[(i1, i2)] = tuple(b[j1:j2])
    return gold


@dataclass
class Ranker:
    """Logistic regression: P(edit restores the original | features)."""

    weights: list[float]
    bias: float
    mean: list[float]
    std: list[float]
    features: tuple[str, ...]
    """The feature names the weights belong to, in order."""
    threshold: float = 0.5
    """Edits are applied at or above this probability (chosen on dev pairs)."""

    def matrix(self, records: list[dict[str, float]]) -> np.ndarray:
        """(N, F) feature matrix of named records, in this ranker's feature order (a missing name is a KeyError)."""
        names = self.features
        get = itemgetter(*names) if len(names) > 1 else (lambda r: tuple(r[name] for name in names))
        return np.array([get(r) for r in records], dtype=np.float64).reshape(len(records), len(self.features))

    def prob_records(self, records: list[dict[str, float]]) -> np.ndarray:
        """(N,) probabilities of named feature records."""
        return self.prob(self.matrix(records))

    def prob(self, x: np.ndarray) -> np.ndarray:
        """(N,) probabilities for an (N, F) feature matrix."""
        z = ((x - np.array(self.mean)) / np.array(self.std)) @ np.array(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, features: tuple[str, ...], l2: float = 1e-3, steps: int = 300) -> Ranker:
        """Fit by Newton's method (IRLS) with a little L2; deterministic."""
        mean, std = x.mean(0), x.std(0) + 1e-6
        z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
        w = np.zeros(z.shape[1])
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
            grad = z.T @ (p - y) + l2 * np.r_[w[:-1], 0.0] * len(x)
            hess = (z * (p * (1 - p))[:, None]).T @ z + l2 * len(x) * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(w[:-1].tolist(), float(w[-1]), mean.tolist(), std.tolist(), tuple(features))

    def save(self, directory: str | Path, name: str = RANKER_FILE) -> None:
        data = {k: v for k, v in self.__dict__.items()}
        data["features"] = list(self.features)
        (Path(directory) / name).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path, features, name: str = RANKER_FILE) -> Ranker:
        """Read and validate a saved ranker (plain JSON numbers; trained on exactly `features`, or on one of the
        feature tuples in `features` when it is a tuple of them)."""
        path = Path(directory) / name
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable ranker ({e})") from None
        expected = {"weights", "bias", "mean", "std", "features", "threshold"}
        if not isinstance(data, dict) or set(data) != expected:
            raise ValueError(f"{path}: expected exactly the keys {sorted(expected)}")
        schemas = [tuple(f) for f in features] if features and not isinstance(features[0], str) else [tuple(features)]
        if not isinstance(data["features"], list) or tuple(data["features"]) not in schemas:
            raise ValueError(f"{path}: trained on features {data['features']}, this version computes {schemas}")
        features = tuple(data["features"])
        n = len(features)
        for key in ("weights", "mean", "std"):
            if not (
                isinstance(data[key], list)
                and len(data[key]) == n
                and all(isinstance(v, (int, float)) for v in data[key])
            ):
                raise ValueError(f"{path}: {key!r} must be {n} numbers")
        if not isinstance(data["bias"], (int, float)) or not isinstance(data["threshold"], (int, float)):
            raise ValueError(f"{path}: 'bias' and 'threshold' must be numbers")
        return cls(
            data["weights"], float(data["bias"]), data["mean"], data["std"], tuple(features), float(data["threshold"])
        )
