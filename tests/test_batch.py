"""`normalize-batch` on an embedded Ray (2 workers, this machine's CPUs): nothing lost, nothing twice, in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from normalizer.batch import JobMismatch, run  # noqa: E402

# The restorers below travel to Ray's workers by value: the workers cannot import this test module.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class SwapRestorer:
    """Restores "mentioned" to "said"; fails on texts holding BOOM; `exit_marker`: the first call in a process
    that finds no marker file creates it and kills the process (a worker lost mid-shard)."""

    def __init__(self, exit_marker: str | None = None, delay: float = 0.0):
        self.exit_marker, self.delay = exit_marker, delay

    def restore_batch(self, texts, batch_size=None):
        from normalizer.edits import Edit
        from normalizer.restorer import Restoration

        if self.exit_marker and not os.path.exists(self.exit_marker):
            open(self.exit_marker, "w").close()
            os._exit(1)
        time.sleep(self.delay)
        out = []
        for text in texts:
            if "BOOM" in text:
                raise RuntimeError("boom")
            k = text.find("mentioned")
            edits = [Edit(k, k + 9, "mentioned", "said", 0.9)] if k >= 0 else []
            out.append(Restoration.of(text, edits, []))
        return out


def factory(**kwargs):
    return lambda: SwapRestorer(**kwargs)


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def texts(n: int) -> list[str]:
    return [
        f"Record {i}: the minister mentioned {i} jobs." if i % 3 == 0 else f"Record {i} is clean." for i in range(n)
    ]


def read_parquet_dir(path) -> list[dict]:
    rows = []
    for f in sorted(path.glob("part-*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return rows


def test_jsonl_two_workers_keeps_every_record_in_order(tmp_path, ray_session):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "text": t, "tags": ["x"] * (i % 2)}) + "\n" for i, t in enumerate(texts(500)))
    )
    summary = run([src], tmp_path / "out", workers=2, shard_size=100, restorer_factory=factory(), progress=False)
    rows = read_parquet_dir(tmp_path / "out")
    assert summary.records == len(rows) == 500 and summary.shards == 5 and summary.errors == 0
    assert [r["position"] for r in rows] == list(range(500)) == [r["id"] for r in rows]
    assert rows[3]["restored"] == "Record 3: the minister said 3 jobs." and rows[3]["text"] == texts(500)[3]
    assert rows[4]["restored"] == rows[4]["text"] and rows[4]["edits"] == "[]" and rows[4]["error"] is None
    assert rows[1]["tags"] == ["x"] and json.loads(rows[0]["edits"])[0]["after"] == "said"
    assert summary.edits == 167 and rows[3]["spin_score"] > 0
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["shards"]) == 5
    assert manifest["job"]["sources"][0]["records"] == 500 and len(manifest["job"]["sources"][0]["sha256"]) == 64


def test_parquet_in_jsonl_out_round_trip(tmp_path, ray_session):
    table = pa.table({"body": texts(250), "n": pa.array(range(250), pa.int32()), "when": pa.array([1.5] * 250)})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=60)  # shards cut across row groups
    run(
        [tmp_path / "in.parquet"],
        tmp_path / "out",
        field="body",
        format="jsonl",
        workers=2,
        shard_size=100,
        restorer_factory=factory(),
        progress=False,
    )
    rows = [json.loads(line) for f in sorted((tmp_path / "out").glob("part-*.jsonl")) for line in f.open()]
    assert [r["n"] for r in rows] == list(range(250)) == [r["position"] for r in rows]
    assert all(r["body"] == t and r["when"] == 1.5 for r, t in zip(rows, texts(250)))
    assert rows[0]["restored"] == "Record 0: the minister said 0 jobs." and rows[0]["edits"][0]["before"] == "mentioned"
    # Parquet out keeps the input's column types.
    run(
        [tmp_path / "in.parquet"],
        tmp_path / "out2",
        field="body",
        workers=1,
        shard_size=100,
        restorer_factory=factory(),
        progress=False,
    )
    schema = pq.read_table(sorted((tmp_path / "out2").glob("part-*.parquet"))[0]).schema
    assert schema.field("n").type == pa.int32() and schema.field("position").type == pa.int64()


def test_bad_records_pass_through_with_an_error(tmp_path, ray_session):
    lines = [
        json.dumps({"text": "She mentioned it."}).encode(),
        b'{"text": "caf\xe9 mentioned"}',  # invalid UTF-8
        b"not json at all",
        b"[1, 2]",
        json.dumps({"text": 42}).encode(),
        json.dumps({"other": "x"}).encode(),
        json.dumps({"text": "x" * 500}).encode(),  # over --max-chars
        json.dumps({"text": "BOOM mentioned"}).encode(),  # the restorer fails on it
        json.dumps({"text": "He mentioned more."}).encode(),
        json.dumps({"text": "a", "edits": 1}).encode(),  # clashes with an output column
        b'{"text": "one\rline"}',  # a lone CR is no line break
        json.dumps({"text": "CRLF mentioned"}).encode() + b"\r",  # a CRLF ending
        b'{"text": "a\\ud800b mentioned"}',  # a lone surrogate escape: Parquet cannot hold it as text
        b"null",
        b'{"text": "ok", "note": "\\udfff"}',  # in another field
    ]
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b"\n".join(lines))  # and no newline at the end
    summary = run(
        [src], tmp_path / "out", workers=2, shard_size=4, max_chars=100, restorer_factory=factory(), progress=False
    )
    rows = read_parquet_dir(tmp_path / "out")
    assert len(rows) == summary.records == len(lines) and [r["position"] for r in rows] == list(range(len(lines)))
    errors = [r["error"] for r in rows]
    assert errors[0] is None and errors[8] is None and rows[8]["restored"] == "He said more."
    assert errors[1].startswith("invalid UTF-8") and rows[1]["raw"] == lines[1]
    assert errors[2].startswith("not JSON") and errors[3].startswith("a JSON array")
    assert "not a string" in errors[4] and errors[5] == "no field 'text'" and errors[6].startswith("over-long")
    assert rows[6]["restored"] == "x" * 500  # passed through unchanged
    assert errors[7].startswith("restoration failed") and rows[7]["restored"] == "BOOM mentioned"
    assert "clashes" in errors[9] and rows[9]["raw"] == lines[9]
    assert errors[10].startswith("not JSON") and rows[10]["raw"] == lines[10]  # a raw CR is not valid JSON
    assert rows[11]["restored"] == "CRLF said" and errors[11] is None
    assert errors[12].startswith("holds a lone surrogate") and rows[12]["raw"] == lines[12]
    assert errors[13] == "a JSON null, not an object" and errors[14].startswith("holds a lone surrogate")
    assert summary.errors == 12


def test_a_worker_lost_mid_shard_is_retried_without_duplicates(tmp_path, ray_session):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts(300)) + "\n")
    marker = tmp_path / "died-once"
    summary = run(
        [src],
        tmp_path / "out",
        workers=2,
        shard_size=50,
        restorer_factory=factory(exit_marker=str(marker)),
        progress=False,
    )
    assert marker.exists()  # a worker did die
    rows = read_parquet_dir(tmp_path / "out")
    assert [r["position"] for r in rows] == list(range(300)) and summary.records == 300
    assert [r["text"] for r in rows] == texts(300) and len(list((tmp_path / "out").glob("part-*"))) == 6
    assert not list((tmp_path / "out").glob(".part-*"))  # no temporary file left


def test_a_killed_job_resumes_where_it_stopped(tmp_path, ray_session):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(400)))
    out = tmp_path / "out"
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_batch import factory
        from normalizer.batch import run
        run([{str(src)!r}], {str(out)!r}, workers=1, shard_size=50, restorer_factory=factory(delay=0.3),
            progress=False)
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    manifest = out / "_manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and len(json.loads(manifest.read_text())["shards"]) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the job ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = json.loads(manifest.read_text())["shards"]
    assert 2 <= len(finished) < 8
    before = {e["file"]: (out / e["file"]).stat().st_mtime_ns for e in finished.values()}

    summary = run([src], out, workers=2, shard_size=50, restorer_factory=factory(delay=0.3), progress=False)
    assert summary.skipped == len(finished) and summary.records == 400
    assert {f: (out / f).stat().st_mtime_ns for f in before} == before  # finished shards untouched
    rows = read_parquet_dir(out)
    assert [r["position"] for r in rows] == list(range(400)) and [r["text"] for r in rows] == texts(400)
    # Another job in the same folder is refused before anything runs.
    with pytest.raises(JobMismatch):
        run([src], out, field="body", shard_size=50, restorer_factory=factory(), progress=False)


def test_command_runs_the_saved_model_in_the_workers(tmp_path, ray_session, saved_model_dir, capsys):
    from normalizer.batch import main

    src = tmp_path / "in.txt"
    src.write_bytes("\n".join(texts(30)).encode() + b"\n\xff\xfe broken line\n")
    code = main(
        [
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(saved_model_dir),
            "--engine",
            "seq2seq",
            "--shard-size",
            "16",
            "--no-progress",
        ]
    )
    assert code == 0
    rows = read_parquet_dir(tmp_path / "out")
    assert [r["text"] for r in rows[:30]] == texts(30) and all(isinstance(r["restored"], str) for r in rows[:30])
    assert rows[30]["error"].startswith("invalid UTF-8") and rows[30]["raw"] == b"\xff\xfe broken line"
    assert "31 records in 2 shards" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o2")]) == 2
    assert "input not found" in capsys.readouterr().err


def test_hugging_face_dataset_shard_without_ray(tmp_path):
    datasets = pytest.importorskip("datasets")
    from normalizer.batch import Settings, plan_shards, process_shard, scan

    datasets.Dataset.from_dict({"text": texts(25), "k": list(range(25))}).save_to_disk(str(tmp_path / "ds"))
    src = scan(tmp_path / "ds", 10)
    shards = plan_shards([src], 10)
    assert src.kind == "hf" and src.records == 25 and [s.count for s in shards] == [10, 10, 5]
    out = tmp_path / "out"
    out.mkdir()
    result = process_shard(SwapRestorer(), src, shards[1], Settings(shard_size=10), out)
    rows = pq.read_table(out / result["file"]).to_pylist()
    assert [r["k"] for r in rows] == list(range(10, 20)) == [r["position"] for r in rows]
    assert rows[2]["restored"] == "Record 12: the minister said 12 jobs." and result["edits"] == 3  # rows 12, 15, 18


def test_dictionaries_are_part_of_the_job_and_checked_before_any_work(tmp_path, saved_model_dir, capsys):
    from normalizer.batch import Settings, main, model_fingerprint

    good = tmp_path / "spinner.txt"
    good.write_text("said|mentioned\n")
    fingerprint = model_fingerprint(Settings(model=str(saved_model_dir), dictionaries=[str(good)]))
    assert list(fingerprint["dictionaries"].values())[0] == sha256_of(good)  # a changed dictionary is another job
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "He mentioned it."}\n')
    bad = tmp_path / "binary.txt"
    bad.write_bytes(b"said|\x00\x01")
    code = main([str(src), "-o", str(tmp_path / "out"), "--model", str(saved_model_dir), "--dictionary", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "NUL" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_lm_dtype_reaches_the_workers_restorer_and_an_older_jobs_manifest_still_matches(tmp_path, monkeypatch):
    from normalizer import api
    from normalizer.batch import Settings, load_restorer, run

    asked = {}
    monkeypatch.setattr(api, "load", lambda *a, **kw: asked.update(kw))
    load_restorer(Settings(lm_dtype="int8"))
    assert asked["lm_dtype"] == "int8"
    assert Settings(lm_dtype="float32").as_job()["lm_dtype"] == "float32"  # another precision is another job
    older = Settings().as_job()  # what a job started before the setting existed recorded
    assert "lm_dtype" not in older and Settings(**older) == Settings()
    with pytest.raises(ValueError, match="lm_dtype must be one of"):
        run([tmp_path / "in.jsonl"], tmp_path / "out", lm_dtype="int4")
    assert not (tmp_path / "out").exists()


def sha256_of(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_job_report_reads_the_finished_shards(tmp_path, fmt):
    from html.parser import HTMLParser

    from normalizer.batch import Settings, plan_shards, process_shard, scan, write_job_report

    src_path = tmp_path / "in.jsonl"
    src_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in [*texts(12), "<script>alert(1)</script>"]))
    src = scan(src_path, 5)
    shards = plan_shards([src], 5)
    out = tmp_path / "out"
    out.mkdir()
    settings = Settings(shard_size=5, format=fmt)
    for shard in shards:
        process_shard(SwapRestorer(), src, shard, settings, out)
    page = write_job_report(out, shards, settings, sample=3).read_text(encoding="utf-8")
    assert "13 documents, 4 edits applied; 3 shown in detail (the first 3)" in page
    path = write_job_report(out, shards, settings, sample=20)
    page = path.read_text(encoding="utf-8")
    assert path.name == "report.html" and "13 documents, 4 edits applied; 13 shown in detail" in page
    assert "<del>mentioned</del><ins>said</ins>" in page and "&lt;script&gt;alert(1)" in page

    tags = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attrs: tags.append(tag)
    parser.feed(page)
    assert tags.count("section") == 13 and tags.count("script") == 1


def test_a_second_job_on_the_same_folder_is_refused_and_a_stale_lock_taken_over(tmp_path):
    import socket

    from normalizer.batch import JobLock, JobRunning

    out = tmp_path / "out"
    out.mkdir()
    held = JobLock.acquire(out)
    with pytest.raises(JobRunning, match="another normalize-batch job"):
        JobLock.acquire(out)  # this very process holds it: alive
    held.release()
    (out / ".lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))  # a killed job
    JobLock.acquire(out).release()
    assert not (out / ".lock").exists()


def test_a_closed_address_fails_in_one_line_quickly(tmp_path, capsys):
    from normalizer.batch import main

    src = tmp_path / "in.txt"
    src.write_text("He mentioned it.\n")
    t = time.time()
    code = main([str(src), "-o", str(tmp_path / "out"), "--address", "127.0.0.1:1", "--engine", "seq2seq"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in err and time.time() - t < 60
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["--batch-size", "-1"], ["--cpus-per-worker", "-1"], ["--gpus-per-worker", "-1"], ["--max-chars", "0"]]
)
def test_bad_numbers_are_one_line(tmp_path, capsys, args):
    from normalizer.batch import main

    src = tmp_path / "in.txt"
    src.write_text("He mentioned it.\n")
    assert main([str(src), "-o", str(tmp_path / "out"), *args]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_gpus_asked_for_where_the_cluster_has_none(tmp_path, ray_session):
    src = tmp_path / "in.txt"
    src.write_text("He mentioned it.\n")
    with pytest.raises(ValueError, match="the Ray cluster has 0 GPUs"):
        run([src], tmp_path / "out", gpus_per_worker=1, restorer_factory=factory(), progress=False)


@pytest.mark.parametrize("case", ["file", "input inside", "unwritable"])
def test_an_output_folder_that_cannot_be_one_is_refused_before_any_work(tmp_path, capsys, case):
    from normalizer.batch import main

    src, out = tmp_path / "in.txt", tmp_path / "out"
    src.write_text("He mentioned it.\n")
    if case == "file":
        out.write_text("mine\n")
    elif case == "input inside":
        out.mkdir()
        src = out / "in.txt"
        src.write_text("He mentioned it.\n")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        out.mkdir()
        out.chmod(0o500)
    expected = {"file": "is a file, not a folder", "input inside": "inside the output folder"}
    code = main([str(src), "-o", str(out), "--engine", "seq2seq"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert expected.get(case, "cannot write to the output folder") in err
    if case == "file":
        assert out.read_text() == "mine\n"


def test_a_damaged_manifest_and_foreign_shard_files_are_refused_and_overwrite_spares_a_users_files(tmp_path):
    from normalizer.batch import MANIFEST, Manifest

    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text('{"job": {"sources": [')  # cut short
    with pytest.raises(JobMismatch, match="is damaged"):
        Manifest.open(out, {"job": 1})
    (out / MANIFEST).write_text("[1, 2]")
    with pytest.raises(JobMismatch, match="is damaged"):
        Manifest.open(out, {"job": 1})
    Manifest.open(out, {"job": 1}, overwrite=True)  # --overwrite starts afresh
    (out / MANIFEST).unlink()
    (out / "part-000000.parquet").write_text("someone's file")
    with pytest.raises(JobMismatch, match="no _manifest.json"):
        Manifest.open(out, {"job": 1})
    # A job's own shards go on --overwrite; a user's part-notes.txt (not a shard name) and unlisted files stay.
    (out / "part-notes.txt").write_text("mine")
    (out / MANIFEST).write_text(
        json.dumps({"job": {"old": 1}, "shards": {"part-000000": {"file": "part-000000.parquet"}}})
    )
    (out / "part-000001.jsonl").write_text("not listed")
    Manifest.open(out, {"job": 1}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "part-000001.jsonl", "part-notes.txt"]


def test_sigterm_stops_a_job_like_ctrl_c():
    from normalizer.batch import Terminated, _catch_sigterm

    previous = _catch_sigterm()
    try:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    finally:
        _catch_sigterm(previous)
    assert signal.getsignal(signal.SIGTERM) is previous


def prior_restorer():
    """A restorer with a document prior that proposes "stated" -> "said" at 0.5 (under the threshold alone, above
    it once a corpus shows the swap everywhere) and "plain" -> "simple" at 0.02."""
    from normalizer.edits import Edit
    from normalizer.restorer import DocumentPrior, Restorer

    class Toy(Restorer):
        threshold = 0.8
        document_prior = DocumentPrior(rate=0.05, strength=5.0, max_shift=3.0, pair_strength=1.0)

        def piece_tokens(self, text):
            return len(text.split())

        def propose(self, pieces, *, batch_size=None, progress=False, documents=None):
            out = []
            for piece in pieces:
                found = []
                for word, after, p in (("stated", "said", 0.5), ("plain", "simple", 0.02)):
                    k = piece.find(word)
                    if k >= 0:
                        found.append(Edit(k, k + len(word), word, after, p))
                out.append(found)
            return out

    return Toy()


def test_adapt_learns_once_and_a_resumed_job_reuses_what_it_learnt(tmp_path, ray_session):
    from normalizer.batch import ADAPTED, MANIFEST

    src = tmp_path / "in.jsonl"
    lines = [{"text": f"He stated it on day {k}." + " The plain fact stood." * 3} for k in range(30)]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    kw = dict(format="jsonl", shard_size=10, restorer_factory=prior_restorer, progress=False)
    plain = run([src], tmp_path / "plain", **kw)
    assert plain.edits == 0  # each document alone: "stated" stays under the threshold
    run([src], out, adapt=20, **kw)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["adapted"]["documents"] == 20 and (out / ADAPTED).is_file()
    first = {p.name: p.read_text() for p in out.glob("part-*")}
    restored = [json.loads(line)["restored"] for text in first.values() for line in text.splitlines()]
    assert len(restored) == 30 and all(r.startswith("He said it") for r in restored)  # learnt from 20, used on 30
    learnt = (out / ADAPTED).read_bytes()
    # Learnt once on a feed, reused on another job with --channel: the same output.
    reused = tmp_path / "reused"
    run([src], reused, channel=out / ADAPTED, **kw)
    assert {p.name: p.read_text() for p in reused.glob("part-*")} == first
    with pytest.raises(ValueError, match="give one of them"):
        run([src], tmp_path / "both", channel=out / ADAPTED, adapt=20, **kw)
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ValueError, match="corpus estimate"):
        run([src], tmp_path / "bad", channel=tmp_path / "bad.json", **kw)
    # A job stopped after its first shard: the rerun learns nothing new and restores exactly as the first run.
    for name in ("part-000001.jsonl", "part-000002.jsonl"):
        (out / name).unlink()
    resumed = run([src], out, adapt=20, **kw)
    assert resumed.skipped == 1 and (out / ADAPTED).read_bytes() == learnt
    assert {p.name: p.read_text() for p in out.glob("part-*")} == first
    (out / ADAPTED).write_text("{}")  # tampered with: refused, not silently relearnt
    (out / "part-000002.jsonl").unlink()
    with pytest.raises(JobMismatch, match="changed since this job learnt it"):
        run([src], out, adapt=20, **kw)


def test_rays_harmless_actor_line_is_dropped_from_fd_2_and_everything_else_kept():
    """Ray's C++ core worker writes straight to fd 2; the filter must drop only its known line, keep the rest (whole
    lines, partial progress-bar updates, Python's own writes) in order, and give fd 2 back."""
    script = r"""
import os, sys
from normalizer.batch import QuietStderr
noise = (b"[2026-12-01 13:37:40,934 E 13247 13247] core_worker.cc:2465: Actor with class name: 'MapWorker(X)' "
         b"and ID: 'ab' has constructor arguments in the object store and max_restarts > 0. If the arguments go\n")
with QuietStderr() as q:
    os.write(2, b"before\n" + noise)
    os.write(2, b"\rprogress 50%")
    print("from python", file=sys.stderr, flush=True)
    os.write(2, b"[worker] a real error\n")
os.write(2, b"after\n")
print("dropped", q.dropped)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "dropped 1"
    assert done.stderr == b"before\n\rprogress 50%from python\n[worker] a real error\nafter\n"


def test_a_ray_job_prints_no_core_worker_noise(tmp_path, ray_session, capfd):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(20)))
    run([src], tmp_path / "out", workers=1, shard_size=10, restorer_factory=factory(), progress=False)
    err = capfd.readouterr().err
    assert "max_restarts" not in err and "core_worker" not in err
