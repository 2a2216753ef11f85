#!/usr/bin/env python3
"""Freshness: wall seconds from an event sent to `POST /v1/events` to the first `/v1/recommend`
answer for that user that reflects it (the event's item's successor recommended).

  freshness.py --shardrec build/shardrec [--work DIR] [--trials 20]

A synthetic dataset (io/synth: items have successors, which a trained model learns), a model
trained on it and published, and `shardrec serve --event-log` at its defaults. The items used are
those whose most frequent successor in the data the model recommends for a one-item history of
them (so a reflected event is recognisable); for each trial a user the export does not know sends
one event on such an item, and the bench polls its recommendations (every 5 ms, for at most 60 s)
until the successor is among the top 10. Prints the median, the 90th percentile and the worst, and
the one-request round trip measured the same way as the floor. Talks to 127.0.0.1 only.

  freshness.py --shardrec build/shardrec --model-path [--trials 5] [--publish-every S]

The model path instead: `shardrec stream` runs beside the server on its event log at its defaults
(or --publish-every S); each trial sends one event on an item nobody has seen, and the bench polls
(every 50 ms, for at most 180 s) until the served version knows the item (a history of it is no
longer ignored): the event's segment rolled, learnt, published, gated and swapped in.
"""
import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import h5py
import numpy as np


def call(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def top_successors(path):
    """Each item's most frequent next item in the data (raw ids)."""
    with h5py.File(path, "r") as f:
        items = f["events/item"][:]
        offsets = f["users/event_offsets"][:]
        raw = f["items/raw_ids/bytes"][:].tobytes()
        roff = f["items/raw_ids/offsets"][:]
    raw_ids = [raw[roff[i]:roff[i + 1]].decode() for i in range(len(roff) - 1)]
    follow = collections.defaultdict(collections.Counter)
    for u in range(len(offsets) - 1):
        seq = items[offsets[u]:offsets[u + 1]]
        for a, b in zip(seq[:-1], seq[1:]):
            follow[int(a)][int(b)] += 1
    return {raw_ids[a]: raw_ids[c.most_common(1)[0][0]] for a, c in follow.items() if c}


def model_path(binary, a, port):
    """Event -> a served version that has learnt it, through `shardrec stream`."""
    every = ["--publish-every", a.publish_every] if a.publish_every else []
    stream = subprocess.Popen([binary, "stream", "--run-dir", "stream", "--event-log", "log", "--export-root", "S", *every],
                              cwd=a.work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    waits = []
    try:
        for t in range(a.trials):
            item = f"fresh-item-{t}"
            start = time.perf_counter()
            status, _ = call(port, "/v1/events", {"events": [{"user": f"fresh-{t}", "item": item, "ts": 1900000000 + t}]})
            assert status == 200, status
            while True:
                status, r = call(port, "/v1/recommend", {"history": [item], "k": 10})
                if status == 200 and not r.get("ignored"):
                    waits.append(time.perf_counter() - start)
                    break
                if time.perf_counter() > start + 180 or stream.poll() is not None:
                    waits.append(float("inf"))
                    break
                time.sleep(0.05)
    finally:
        stream.terminate()
        err = stream.communicate(timeout=120)[1]
    waits.sort()
    print(f"model-path freshness over {len(waits)} events (POST /v1/events -> the served version knows the new item), "
          f"stream {' '.join(every) or 'at its defaults'}: median {statistics.median(waits):.1f} s, worst {waits[-1]:.1f} s")
    print("stream:", err.strip().splitlines()[-1] if err.strip() else "")
    return 0 if waits[-1] <= 60 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shardrec", required=True)
    ap.add_argument("--work", default="freshness-work")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--model-path", action="store_true")
    ap.add_argument("--publish-every", default="")
    a = ap.parse_args()
    binary = os.path.abspath(a.shardrec)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)

    def run(*args):
        p = subprocess.run([binary, *args], cwd=a.work, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            sys.exit(f"shardrec {' '.join(args)}: exit {p.returncode}: {p.stderr[-2000:]}")
        return p.stdout

    run("data", "synth", "--output", "s.h5", "--users", "2000", "--items", "500")
    run("train", "--data", "s.h5", "--run-dir", "run", "--epochs", "10", "--dim", "32", "--max-len", "20", "--log-every", "0")
    run("publish", "--run-dir", "run", "--export-root", "S", "--export-version", "v1", "--force")
    server = subprocess.Popen([binary, "serve", "--export-root", "S", "--port", "0", "--event-log", "log"], cwd=a.work,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        m = re.search(r"http://127\.0\.0\.1:(\d+)", server.stdout.readline())
        if not m:
            sys.exit("serve printed no address: " + server.stderr.read()[-2000:])
        port = int(m.group(1))
        if a.model_path:
            return model_path(binary, a, port)
        succ = top_successors(os.path.join(a.work, "s.h5"))
        usable = []
        for item, nxt in sorted(succ.items(), key=lambda kv: int(kv[0])):
            _, r = call(port, "/v1/recommend", {"history": [{"item": item, "ts": 1900000000}], "k": 10})
            if nxt in [i["item"] for i in r.get("items", [])]:
                usable.append((item, nxt))
            if len(usable) >= a.trials:
                break
        if not usable:
            sys.exit("no item whose successor the model recommends")
        waits, floors = [], []
        for t, (item, nxt) in enumerate(usable):
            user = f"fresh-{t}"
            start = time.perf_counter()
            status, _ = call(port, "/v1/events", {"events": [{"user": user, "item": item, "ts": 1900000000 + t}]})
            assert status == 200, status
            deadline = start + 60
            while True:
                status, r = call(port, "/v1/recommend", {"user": user, "k": 10})
                if status == 200 and nxt in [i["item"] for i in r["items"]]:
                    waits.append(time.perf_counter() - start)
                    break
                if time.perf_counter() > deadline:
                    waits.append(float("inf"))
                    break
                time.sleep(0.005)
            f0 = time.perf_counter()
            call(port, "/v1/recommend", {"user": user, "k": 10})
            floors.append(time.perf_counter() - f0)
    finally:
        server.terminate()
        server.wait(timeout=60)
    waits.sort()
    p90 = waits[min(len(waits) - 1, int(0.9 * len(waits)))]
    print(f"freshness over {len(waits)} events (POST /v1/events -> first /v1/recommend answer with the item's successor): "
          f"median {statistics.median(waits) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, worst {waits[-1] * 1000:.1f} ms; "
          f"one /v1/recommend round trip {statistics.median(floors) * 1000:.1f} ms (median)")
    return 0 if waits[-1] <= 60 else 1


if __name__ == "__main__":
    sys.exit(main())
