"""A self-contained HTML report of what was restored: one file, inline CSS and a little plain JavaScript, no network.

    from normalizer.report import write_html
    write_html(restorer.restore_batch(docs), "report.html")
    normalize --report report.html news.txt > restored.txt

Per document: the input with each applied edit marked (the spun words struck, the restored words highlighted,
coloured by confidence); hovering or focusing an edit shows its confidence, its score parts and the candidates that
were refused there with their reasons. A slider shows what another threshold would have applied (refused candidates
at or above it appear; applied edits below it disappear; overlaps between them are not re-settled). Over the batch:
a histogram of spin scores (inline SVG), the most frequent restored pairs, and the documents by spin score.

Every piece of input text is escaped (a document holding `<script>` renders as text); lone surrogates and control
characters are shown as escapes. The report holds at most `sample` documents in detail (default 200), so a corpus
job cannot write a 10 GB page; the summary counts every document it was given.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from normalizer.restorer import Restoration

DEFAULT_SAMPLE = 200


def clean(text: str) -> str:
    """`text` as safe HTML text: escaped, with lone surrogates and control characters (other than newline and
    tab) written as visible `\\uXXXX` escapes."""
    out = []
    for c in text:
        o = ord(c)
        if 0xD800 <= o <= 0xDFFF or (o < 32 and c not in "\n\t") or 0x7F <= o < 0xA0:
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    return html.escape("".join(out), quote=True)


@dataclass
class Report:
    """Collects restorations (all of them for the summary, the first `sample` in detail) and writes the page."""

    sample: int = DEFAULT_SAMPLE
    title: str = "normalizer: what was restored"
    threshold: float | None = None
    """The threshold the edits were applied at (the slider's starting point)."""
    documents: list[tuple[str, Restoration]] = field(default_factory=list)
    spin_scores: list[float] = field(default_factory=list)
    pairs: Counter = field(default_factory=Counter)
    names: list[str] = field(default_factory=list)

    def add(self, restoration: Restoration, name: str | None = None) -> None:
        name = name if name is not None else f"document {len(self.spin_scores) + 1}"
        self.spin_scores.append(restoration.spin_score)
        self.names.append(name)
        self.pairs.update((e.before.lower(), e.after.lower()) for e in restoration.edits)
        if len(self.documents) < self.sample:
            self.documents.append((name, restoration))

    def render(self) -> str:
        n = len(self.spin_scores)
        edits = sum(self.pairs.values())
        threshold = self.threshold if self.threshold is not None else 0.5
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; img-src data:\">",
            f"<title>{clean(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{clean(self.title)}</h1>",
            f'<p class="summary">{n} documents, {edits} edits applied; {len(self.documents)} shown in detail'
            + (f" (the first {self.sample})" if n > self.sample else "")
            + ".</p>",
            '<div class="controls"><label for="threshold">Threshold</label> '
            f'<input type="range" id="threshold" min="0" max="1" step="0.01" value="{threshold:.2f}"> '
            f'<output id="threshold-value">{threshold:.2f}</output> '
            '<span class="hint">edits at or above it are shown applied</span></div>',
            "<h2>Spin scores</h2>",
            _histogram(self.spin_scores),
            "<h2>Most frequent restorations</h2>",
            _pairs_table(self.pairs),
            "<h2>Documents by spin score</h2>",
            _document_list(self.documents),
            "<h2>Documents</h2>",
        ]
        for k, (name, r) in enumerate(self.documents):
            parts.append(_document(k, name, r))
        parts += [f"<script>{_JS}</script>", "</body></html>"]
        return "\n".join(parts) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the page atomically (a temporary file renamed into place); through a symlink, the file it points to;
        into a target that is not a regular file (`/dev/null`, a pipe) directly, never renamed over it."""
        path = Path(path)
        if path.is_symlink():
            path = path.resolve()
        if path.exists() and not path.is_file() and not path.is_dir():
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.render())
            return path
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".report-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.render())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def write_html(
    restorations: Iterable[Restoration],
    path: str | Path,
    *,
    names: Iterable[str] | None = None,
    sample: int = DEFAULT_SAMPLE,
    threshold: float | None = None,
    title: str = "normalizer: what was restored",
) -> Path:
    """Write the report of `restorations` (from `restore` / `restore_batch`) to `path`; see the module docstring."""
    report = Report(sample=sample, title=title, threshold=threshold)
    names = list(names) if names is not None else None
    for k, r in enumerate(restorations):
        report.add(r, names[k] if names is not None else None)
    return report.write(path)


def _score_title(confidence: float, scores, refused) -> str:
    lines = [f"confidence {confidence:.3f}"]
    lines += [f"{name} {value:+.3f}" for name, value in scores]
    for r in refused:
        lines.append(f"refused: {r.edit.before} -> {r.edit.after} ({r.edit.confidence:.2f}, {r.reason})")
    return "\n".join(lines)


def _band(confidence: float) -> str:
    return "high" if confidence >= 0.9 else "mid" if confidence >= 0.7 else "low"


def _document(k: int, name: str, r: Restoration) -> str:
    text = r.source
    marks = []  # (start, end, html)
    for e in r.edits:
        refused = [x for x in r.rejected if x.edit.start < e.end and e.start < x.edit.end]
        title = clean(_score_title(e.confidence, e.scores, refused))
        marks.append(
            (
                e.start,
                e.end,
                f'<span class="edit {_band(e.confidence)}" data-conf="{e.confidence:.4f}" data-applied="1" '
                f'tabindex="0" title="{title}"><del>{clean(e.before)}</del><ins>{clean(e.after)}</ins></span>',
            )
        )
    taken = [(e.start, e.end) for e in r.edits]
    for x in r.rejected:
        e = x.edit
        if any(e.start < b and a < e.end for a, b in taken):
            continue  # shown in the applied edit's details
        taken.append((e.start, e.end))
        title = clean(_score_title(e.confidence, e.scores, [x]))
        marks.append(
            (
                e.start,
                e.end,
                f'<span class="edit refused {_band(e.confidence)}" data-conf="{e.confidence:.4f}" data-applied="0" '
                f'data-reason="{clean(x.reason)}" tabindex="0" title="{title}"><del>{clean(e.before)}</del>'
                f"<ins>{clean(e.after)}</ins></span>",
            )
        )
    out, pos = [], 0
    for start, end, mark in sorted(marks):
        out += [clean(text[pos:start]), mark]
        pos = end
    out.append(clean(text[pos:]))
    return (
        f'<section class="doc" id="doc-{k}"><h3>{clean(name)} <small>spin score {r.spin_score:.3f}, '
        f'{len(r.edits)} edits</small></h3><p class="text">{"".join(out)}</p></section>'
    )


def _histogram(scores: list[float], bins: int = 20) -> str:
    if not scores:
        return "<p>No documents.</p>"
    counts = [0] * bins
    for s in scores:
        counts[min(int(s * bins / 0.5), bins - 1)] += 1  # 0 to 0.5 (and above, in the last bar)
    top = max(counts)
    width, height = 24 * bins, 120
    bars = []
    for i, c in enumerate(counts):
        h = 0 if top == 0 else round(c / top * (height - 20))
        label = f"{i * 0.5 / bins:.3f}-{(i + 1) * 0.5 / bins:.3f}: {c}"
        bars.append(
            f'<rect x="{i * 24 + 2}" y="{height - 15 - h}" width="20" height="{h}"><title>{label}</title></rect>'
        )
    return (
        f'<svg class="hist" width="{width}" height="{height}" role="img" aria-label="spin score histogram">'
        + "".join(bars)
        + f'<text x="0" y="{height - 2}">0</text><text x="{width - 30}" y="{height - 2}">0.5+</text></svg>'
    )


def _pairs_table(pairs: Counter, top: int = 30) -> str:
    if not pairs:
        return "<p>No edits.</p>"
    rows = "".join(
        f"<tr><td>{clean(b)}</td><td>{clean(a)}</td><td>{n}</td></tr>" for (b, a), n in pairs.most_common(top)
    )
    return f'<table class="pairs"><tr><th>spun</th><th>restored</th><th>count</th></tr>{rows}</table>'


def _document_list(documents: list[tuple[str, Restoration]]) -> str:
    order = sorted(range(len(documents)), key=lambda k: -documents[k][1].spin_score)
    items = "".join(
        f'<li><a href="#doc-{k}">{clean(documents[k][0])}</a> {documents[k][1].spin_score:.3f}</li>' for k in order
    )
    return f'<ol class="docs">{items}</ol>'


_CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
.text{white-space:pre-wrap}
.edit del{color:#888;text-decoration:line-through;margin-right:.2em}
.edit ins{text-decoration:none;border-radius:3px;padding:0 .15em}
.edit.high ins{background:#b7e4b0}.edit.mid ins{background:#fde49c}.edit.low ins{background:#f7c1b5}
.edit.off ins,.edit.refused:not(.on) ins{display:none}
.edit.off del,.edit.refused:not(.on) del{color:inherit;text-decoration:none;margin:0}
.edit.refused:not(.on){border-bottom:1px dotted #999}
.edit:focus{outline:2px solid #3a6fd8}
.hist rect{fill:#5b8bd9}.hist text{font-size:10px}
table.pairs{border-collapse:collapse}table.pairs td,table.pairs th{border:1px solid #ccc;padding:.1em .5em}
.controls{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ddd}
@media print{.controls{display:none}.edit.refused{display:none}}
"""

_JS = """
(function(){
  var slider=document.getElementById('threshold'), shown=document.getElementById('threshold-value');
  function apply(){
    var t=parseFloat(slider.value); shown.textContent=t.toFixed(2);
    var edits=document.querySelectorAll('.edit');
    for(var i=0;i<edits.length;i++){
      var e=edits[i], c=parseFloat(e.getAttribute('data-conf'));
      if(e.getAttribute('data-applied')==='1'){e.classList.toggle('off', c<t);}
      else if(e.getAttribute('data-reason')==='low confidence'){e.classList.toggle('on', c>=t);}
    }
  }
  slider.addEventListener('input', apply); apply();
})();
"""

__all__ = ["Report", "write_html", "clean", "DEFAULT_SAMPLE"]
