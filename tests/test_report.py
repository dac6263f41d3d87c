"""The HTML report: structure (read back with an HTML parser), escaping of hostile input, the sample cap, the CLI
flag; and, where Chromium is installed, the page opened in a real browser."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from helpers import scripted

from normalizer.edits import TO, Edit
from normalizer.report import Report, write_html
from normalizer.restorer import Rejection, Restoration

HOSTILE = (
    'He mentioned <script>alert(1)</script> and </style><img src=x onerror=alert(2)> "q" javascript:alert(3) \x1b[31m'
)


class Collect(HTMLParser):
    """Tags, the text inside each `.edit` span, and every script's text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.edits, self.scripts = [], [], []
        self._stack, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "span" and "edit" in attrs.get("class", ""):
            self._stack.append({"attrs": attrs, "text": ""})
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "span" and self._stack:
            self.edits.append(self._stack.pop())
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
        for s in self._stack:
            s["text"] += data


def restoration(text: str) -> Restoration:
    k = text.index("mentioned")
    edit = Edit(k, k + 9, "mentioned", "said", 0.93, (("lm_gain", 2.5), ("channel", -1.0)))
    low = Edit(0, 2, "He", "She", 0.3, (("lm_gain", 0.1),))
    return Restoration.of(text, [edit], [Rejection(low, "low confidence")])


def parse(path) -> Collect:
    c = Collect()
    c.feed(path.read_text(encoding="utf-8"))
    return c


def test_edits_are_marked_where_restore_says(tmp_path):
    r = restoration("He mentioned it.\nNext line.")
    page = parse(write_html([r], tmp_path / "r.html", threshold=0.8))
    applied = [e for e in page.edits if e["attrs"]["data-applied"] == "1"]
    assert [e["text"] for e in applied] == ["mentionedsaid"]  # struck spun word, then the restored one
    assert "lm_gain +2.500" in applied[0]["attrs"]["title"] and "confidence 0.930" in applied[0]["attrs"]["title"]
    refused = [e for e in page.edits if e["attrs"]["data-applied"] == "0"]
    assert refused[0]["attrs"]["data-reason"] == "low confidence" and refused[0]["attrs"]["data-conf"] == "0.3000"
    assert any(t == "input" and a.get("type") == "range" and a.get("value") == "0.80" for t, a in page.tags)
    assert any(t == "svg" for t, _ in page.tags)


def test_a_report_through_a_symlink_or_into_a_pipe_keeps_the_link_and_the_pipe(tmp_path):
    import os
    import stat
    import threading

    r = restoration("He mentioned it.")
    real, link = tmp_path / "real.html", tmp_path / "link.html"
    real.write_text("old")
    link.symlink_to(real)
    write_html([r], link, threshold=0.8)
    assert link.is_symlink() and "mentioned" in real.read_text()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # stands in for /dev/null: renaming a file over it would replace the device
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_html([r], fifo, threshold=0.8)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and got and "mentioned" in got[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.html", "pipe", "real.html"]


def test_hostile_input_renders_as_text(tmp_path):
    r = restoration(HOSTILE + "\ud800 end")
    path = write_html([r], tmp_path / "r.html", names=['<b onmouseover="x">name</b>'])
    page = parse(path)
    assert [t for t, _ in page.tags].count("script") == 1  # only the report's own
    assert not any(t in ("img", "b") for t, _ in page.tags)
    assert all("alert" not in s for s in page.scripts)
    raw = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw and "\\u001b" in raw and "\\ud800" in raw
    assert "\x1b" not in raw


def test_at_most_sample_documents_in_detail(tmp_path):
    report = Report(sample=3)
    for k in range(10):
        report.add(restoration(f"Doc {k}: he mentioned it."))
    page = parse(report.write(tmp_path / "r.html"))
    assert sum(1 for t, a in page.tags if t == "section") == 3
    text = (tmp_path / "r.html").read_text()
    assert "10 documents, 10 edits applied; 3 shown in detail" in text
    assert "<td>mentioned</td><td>said</td><td>10</td>" in text


def test_cli_report(tmp_path, normalizer, monkeypatch, saved_model_dir):
    from normalizer import cli

    scripted(normalizer, lambda piece: f"mentioned{TO} said" if "mentioned" in piece else "")
    monkeypatch.setattr(cli, "load", lambda *a, **k: normalizer)
    src = tmp_path / "in.txt"
    src.write_text("He mentioned it.\nNothing.\n<script>x</script> mentioned\n")
    out, html_path = tmp_path / "out.txt", tmp_path / "report.html"
    assert cli.main([str(src), "-o", str(out), "--report", str(html_path), "--no-progress"]) == 0
    assert out.read_text().splitlines()[0] == "He said it."
    page = parse(html_path)
    assert sum(1 for t, _ in page.tags if t == "section") == 3
    assert [e["text"] for e in page.edits if e["attrs"]["data-applied"] == "1"] == ["mentionedsaid"] * 2
    assert cli.main([str(src), "--report", str(tmp_path / "no" / "dir" / "r.html"), "--no-progress"]) == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_report_in_a_real_browser(tmp_path):
    """The page as Chromium builds it: edits where restore() put them, no injected element, the slider works."""
    r = restoration(HOSTILE)
    path = write_html([r], tmp_path / "r.html", threshold=0.8)
    probe = tmp_path / "probe.html"
    probe.write_text(
        path.read_text(encoding="utf-8").replace(
            "</body>",
            "<script>var s=document.getElementById('threshold');s.value='0.2';s.dispatchEvent(new Event('input'));"
            "document.title=JSON.stringify({imgs:document.querySelectorAll('img').length,"
            "scripts:document.scripts.length,"
            "applied:[].map.call(document.querySelectorAll('.edit[data-applied=\"1\"] ins'),e=>e.textContent),"
            "shownAtLow:document.querySelectorAll('.edit.refused.on').length});</script></body>",
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    title = done.stdout.split("<title>")[1].split("</title>")[0]
    import html as html_module
    import json

    state = json.loads(html_module.unescape(title))
    assert state == {"imgs": 0, "scripts": 2, "applied": ["said"], "shownAtLow": 1}
