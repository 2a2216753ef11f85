#!/usr/bin/env python3
"""`shardrec stream`: an event log learnt exactly once, through kill -9 at random moments.

  stream_check.py SHARDREC WORKDIR [--kills N] [--np2 MPIRUN]

1. A tiny run published as the served version of root S (streams index with IVF4,Flat, every list
   probed: the uninterrupted stream runs twice, over the log half written then whole, so its second
   publish updates the first one's index in place); an event log of 12 segments from two
   producers (known users, new users, and some events of items the catalogue lacks).
2. Uninterrupted: `stream --idle-seconds 1` learns every segment once (events older than the base's
   data skipped) and publishes a version that LATEST names, whose lineage records the stream;
   stream.h5's per-item counts equal the log's. After a rollback its next publish refuses; a
   training run's directory is refused as a stream's.
3. The walk: another copy of S, the stream killed (SIGKILL) at N random moments while it learns and
   publishes every 0.3 s, each time restarted; after each kill LATEST names a complete version
   (`shardrec query` answers from it). Once it ends: every event counted exactly once (per item,
   as in the log) and the model equal, bitwise, to the uninterrupted run's (batches never span
   segments, and a restart resumes at a segment boundary).
5. A new item arriving through POST /v1/events on a server is recommended by /v1/recommend once the
   stream has published (the server swaps the version in), and was not before.
4. With --np2: the same stream on 2 ranks under mpirun: the same counts, and a model within float
   rounding of the 1-rank one (dropout on: masks are keyed by row, not rank).
Every loop is bounded in count and time.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np

from serve_util import fresh_runs, model_arrays, post_json, start_server

BIN, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
KILLS = int(sys.argv[sys.argv.index("--kills") + 1]) if "--kills" in sys.argv else 3
MPIRUN = os.path.abspath(sys.argv[sys.argv.index("--np2") + 1]) if "--np2" in sys.argv else None
LOG = os.path.join(WORK, "log")


def run(*args, check=True, prefix=()):
    p = subprocess.run([*prefix, BIN, *args], cwd=WORK, capture_output=True, text=True, timeout=900)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: shardrec {' '.join(args)}: exit {p.returncode}: {p.stdout[-2000:]} {p.stderr[-3000:]}")
    return p


def strings(f, name):
    off, data = f[name + "/offsets"][:], f[name + "/bytes"][:].tobytes()
    return [data[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]


SEGMENTS = 30 + 1  # and one of events before the base's data
OLD_EVENTS = 10


def make_log():
    """SEGMENTS segments, producers a and b interleaved: [(name, text)] in log order, the events per
    item raw id, and the catalogue's raw ids."""
    with h5py.File(os.path.join(WORK, "s.h5"), "r") as f:
        users, items = strings(f, "/users/raw_ids"), strings(f, "/items/raw_ids")
    rng = random.Random(11)
    counts, segments = {}, []
    # Events older than the base's newest are the base's own (its data was cut after them): skipped.
    old = [json.dumps({"user": users[i], "item": items[i], "ts": 1000 + i}) for i in range(OLD_EVENTS)]
    segments.append((f"{1000 * 1_000_000:016d}-a.jsonl", "\n".join(old) + "\n"))
    t0 = 1_900_000_000
    for s in range(SEGMENTS - 1):
        lines = []
        for i in range(rng.randrange(20, 80)):
            user = rng.choice(users) if rng.random() < 0.8 else f"new-{rng.randrange(30)}"
            item = rng.choice(items) if rng.random() < 0.95 else f"unknown-{rng.randrange(5)}"
            lines.append(json.dumps({"user": user, "item": item, "ts": t0 + 60 * s + i}))
            counts[item] = counts.get(item, 0) + 1
        segments.append((f"{(t0 + 60 * s) * 1_000_000:016d}-{'ab'[s % 2]}.jsonl", "\n".join(lines) + "\n"))
    return segments, counts, items


def write_segments(log, segments, interval=0.0):
    """As a producer does: each under a temporary name, then renamed; `interval` seconds apart."""
    os.makedirs(log, exist_ok=True)
    for name, text in segments:
        with open(os.path.join(log, "." + name + ".open"), "w") as out:
            out.write(text)
        os.rename(os.path.join(log, "." + name + ".open"), os.path.join(log, name))
        time.sleep(interval)


def stream_args(run_dir, root, every, log="log"):
    return ["stream", "--run-dir", run_dir, "--event-log", log, "--export-root", root, "--publish-every", str(every),
            "--idle-seconds", "1", "--stream-batch", "64", "--min-recall", "0", "--factory", "IVF4,Flat", "--nprobe", "4"]


def newest_checkpoint(run_dir):
    d = os.path.join(WORK, run_dir, "checkpoints")
    return os.path.join(d, sorted(n for n in os.listdir(d) if n.startswith("step-"))[-1])


def check_counts(run_dir, want, items, segments):
    """stream.h5 of the newest checkpoint: every event of the log counted once, on the row of its item
    (items the catalogue lacks on the rows held for them, in order of their first event)."""
    with h5py.File(os.path.join(newest_checkpoint(run_dir), "stream.h5"), "r") as f:
        got = f["/item_events"][:]
        state = json.loads(f["/state_json"][:].tobytes())
    new = []
    for _, text in segments:
        for line in text.splitlines():
            if json.loads(line)["ts"] < 1_000_000_000:
                continue
            item = json.loads(line)["item"]
            if item not in items and item not in new:
                new.append(item)
    rows = items + new
    expected = np.zeros(len(got), dtype=np.int64)
    expected[:len(rows)] = [want.get(raw, 0) for raw in rows]
    if not np.array_equal(got, expected):
        bad = np.nonzero(got != expected)[0][:5]
        sys.exit(f"FAIL: {run_dir}: events per item differ from the log's at {[(rows[i] if i < len(rows) else i, got[i], expected[i]) for i in bad]}")
    if state["events"] != sum(want.values()) + OLD_EVENTS or state["before_base"] != OLD_EVENTS or state["unknown_items"] != 0 \
            or state["new_items"] != len(new) or state["segments"] != SEGMENTS:
        sys.exit(f"FAIL: {run_dir}: state {state}; the log has {sum(want.values())} events after the base's and {OLD_EVENTS} "
                 f"before, {len(new)} new items, {SEGMENTS} segments")
    return state


def check_served(root):
    """LATEST names a complete version that answers."""
    latest = open(os.path.join(WORK, root, "LATEST")).read().strip()
    with open(os.path.join(WORK, root, latest, "manifest.json")) as f:
        json.load(f)
    with h5py.File(os.path.join(WORK, root, latest, "users-0.h5"), "r") as f:
        user = strings(f, "/raw_ids")[0]
    run("query", "--export", root, "--user", user, "--k", "3")
    with h5py.File(os.path.join(WORK, root, latest, "items-0.h5"), "r") as f:
        item = strings(f, "/raw_ids")[-1]  # a new item once the stream has published one
    run("query", "--export", root, "--history", item, "--k", "3")  # the model of the version encodes it
    return latest


def call(port, path, body):
    status, answer = post_json(port, path, body)
    assert status == 200, (path, status, answer)
    return answer


def check_new_item_served(want):
    """5. A server with an event log on root S: an item it has never seen arrives through POST
    /v1/events (200 users who take a popular item X, then it); it is not recommended before, and once
    the stream has learnt the log and published, /v1/recommend for a history [X] recommends it."""
    server, port = start_server(BIN, WORK, "--event-log", "logs", "--event-roll-seconds", "0.2")
    try:
        x = max((raw for raw in want if not raw.startswith("unknown-")), key=lambda r: want[r])
        with h5py.File(os.path.join(WORK, "s.h5"), "r") as f:
            users = strings(f, "/users/raw_ids")[:200]
        events = []
        for i, u in enumerate(users):
            events += [{"user": u, "item": x, "ts": 2_000_000_000 + 2 * i},
                       {"user": u, "item": "NEW-1", "ts": 2_000_000_001 + 2 * i, "title": "A new title"}]
        for b in range(0, len(events), 100):
            assert call(port, "/v1/events", {"events": events[b:b + 100]}) == {"appended": len(events[b:b + 100])}
        before = call(port, "/v1/recommend", {"history": [x], "k": 10})
        assert "NEW-1" not in [r["item"] for r in before["items"]], before
        deadline = time.time() + 20  # every event in a published segment
        while sum(1 for n in os.listdir(os.path.join(WORK, "logs")) if n.endswith(".jsonl") and not n.startswith(".")) == 0 \
                or any(n.endswith(".open") for n in os.listdir(os.path.join(WORK, "logs"))):
            assert time.time() < deadline, "the server's segment was not published"
            time.sleep(0.1)
        p = run("stream", "--run-dir", "sn", "--event-log", "logs", "--export-root", "S", "--publish-every", "0", "--idle-seconds", "1",
                "--stream-batch", "64", "--min-recall", "0")
        version = open(os.path.join(WORK, "S", "LATEST")).read().strip()
        deadline = time.time() + 20
        while (after := call(port, "/v1/recommend", {"history": [x], "k": 10}))["version"] != version:
            assert time.time() < deadline, f"the server did not swap in {version}"
            time.sleep(0.1)
        got = [r["item"] for r in after["items"]]
        if "NEW-1" not in got:
            sys.exit(f"FAIL: after the stream's publish ({p.stdout.strip()}), [{x}] is answered with {got}, not the new item")
        print(f"new item: recommended for [{x}] at rank {got.index('NEW-1') + 1} by {version}, unknown before")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    # Dropout on: its masks are keyed by row, not rank, so 2 ranks are held to the 1-rank model.
    fresh_runs(run, WORK, 300, 200, 6000, runs=())
    run("train", "--data", "s.h5", "--run-dir", "run", "--max-steps", "20", "--dim", "16", "--blocks", "1", "--max-len", "10",
        "--log-every", "0", "--dropout", "0.3")
    run("publish", "--run-dir", "run", "--export-root", "S", "--min-recall", "0")
    segments, want, items = make_log()
    for root in ("A", "B", "C"):
        shutil.copytree(os.path.join(WORK, "S"), os.path.join(WORK, root), symlinks=True)

    # 2. Uninterrupted.
    start = time.time()
    # In two runs (the log half written, then whole): the second publish updates the first's IVF
    # index in place; publishes and restarts do not change what is learnt.
    write_segments(LOG, segments[:SEGMENTS // 2])
    run(*stream_args("sa", "A", 0))
    first = open(os.path.join(WORK, "A", "LATEST")).read().strip()
    write_segments(LOG, segments[SEGMENTS // 2:])
    p = run(*stream_args("sa", "A", 0))
    served = check_served("A")
    with open(os.path.join(WORK, "A", served, "manifest.json")) as f:
        m = json.load(f)
    if m["lineage"]["candidate"].get("stream_step") is None or m["lineage"]["parent"] != first:
        sys.exit(f"FAIL: the stream's version records no stream lineage: {json.dumps(m)[:600]}")
    check_counts("sa", want, items, segments)
    print(f"uninterrupted ({time.time() - start:.1f} s):", p.stdout.strip().splitlines()[-1])

    # A rollback (or the next night) moves LATEST away from the stream: its next publish refuses.
    run("publish", "--rollback", "--export-root", "A")
    with open(os.path.join(LOG, f"{1_950_000_000 * 1_000_000:016d}-a.jsonl"), "w") as out:
        out.write(json.dumps({"user": "late", "item": items[0], "ts": 1_950_000_000}) + "\n")
    p = run(*stream_args("sa", "A", 0), check=False)
    if p.returncode == 0 or "LATEST names" not in p.stderr:
        sys.exit(f"FAIL: a stream published over a rollback: exit {p.returncode}: {p.stderr[-1500:]}")
    os.remove(os.path.join(LOG, f"{1_950_000_000 * 1_000_000:016d}-a.jsonl"))
    # A run directory that is not a stream's is refused, and nothing is written to it.
    before = sorted(os.listdir(os.path.join(WORK, "run")))
    p = run(*stream_args("run", "A", 0), check=False)
    if p.returncode == 0 or "not a stream's run directory" not in p.stderr or sorted(os.listdir(os.path.join(WORK, "run"))) != before:
        sys.exit(f"FAIL: stream took a training run's directory: exit {p.returncode}: {p.stderr[-1500:]}")

    # 3. The kill -9 walk, while a producer adds the segments one by one.
    feeder = threading.Thread(target=write_segments, args=(os.path.join(WORK, "logb"), segments, 2.5 * KILLS / SEGMENTS))
    feeder.start()
    rng = random.Random(KILLS)
    kills, versions = 0, set()
    deadline = time.time() + 60 * max(5, KILLS)
    while (kills < KILLS or feeder.is_alive()) and time.time() < deadline:
        proc = subprocess.Popen([BIN, *stream_args("sb", "B", 0.3, "logb")], cwd=WORK, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.5, 5.0))
        if proc.poll() is not None:  # idle before the producer's next segment: started again
            if proc.returncode != 0:
                sys.exit(f"FAIL: stream exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        versions.add(check_served("B"))
    feeder.join()
    if kills < KILLS:
        sys.exit(f"FAIL: {kills} kills within the time allowed, {KILLS} asked")
    p = run(*stream_args("sb", "B", 0.3, "logb"))
    check_served("B")
    check_counts("sb", want, items, segments)
    a, b = model_arrays(newest_checkpoint("sa")), model_arrays(newest_checkpoint("sb"))
    if a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a):
        diff = {k: float(np.abs(a[k] - b[k]).max()) for k in a if k in b and a[k].shape == b[k].shape}
        sys.exit(f"FAIL: the model after {kills} kills differs from the uninterrupted one: {diff}")
    publishes = []
    for d in ("sa", "sb"):
        with open(os.path.join(WORK, d, "stream-metrics.jsonl")) as f:
            publishes += [json.loads(line) for line in f]
    in_place = [p for p in publishes if p["index_updated_shards"] > 0]
    if not in_place or any(p["index_recall@10"] != 1.0 for p in publishes):
        sys.exit(f"FAIL: no publish updated its parent's IVF index in place, or recall@10 < 1 with every list probed: {publishes}")
    print(f"walk: {kills} kills ({len(versions)} versions served between them), every event once, "
          f"the model bitwise the uninterrupted one; {len(in_place)} of {len(publishes)} publishes updated the index in place")

    # 4. Two ranks.
    if MPIRUN:
        run(*stream_args("sc", "C", 0), prefix=(MPIRUN, "-np", "2"))
        check_served("C")
        check_counts("sc", want, items, segments)
        c = model_arrays(newest_checkpoint("sc"))
        worst = max(float(np.abs(a[k] - c[k]).max()) for k in a)
        if a.keys() != c.keys() or worst > 1e-3:
            sys.exit(f"FAIL: 2 ranks differ from 1 by {worst}")
        print(f"2 ranks: every event once, the model within {worst:.2e} of 1 rank's")
    check_new_item_served(want)
    print("stream check: OK")


if __name__ == "__main__":
    main()
