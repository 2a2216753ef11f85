#!/usr/bin/env python3
"""POST /v1/events on `shardrec serve --event-log DIR`, against the event log read back.

  events_check.py SHARDREC WORKDIR

1. A tiny run published as v1; a server with an event log rolled every 0.3 s.
2. 8 clients send 40 requests of 1-5 events each at once: every answer is 200 {"appended": n},
   and the log's segments (whole files only) hold exactly the events sent, each client's in its
   order; /metrics counts them.
3. Bad bodies get a 400 naming the field at fault; the server keeps taking events.
4. A second server on the same log with the same producer name exits non-zero naming it; a server
   without --event-log answers POST /v1/events with 404.
5. kill -9 right after events were acknowledged, before their segment rolled: a restarted server
   publishes them (nothing acknowledged is lost), then SIGTERM publishes the open segment and exits 0.
6. `shardrec data convert --format events` reads the log into a dataset with every event.
7. Fresh events reach the next answer: a user the export does not know, once their events are
   taken, is answered exactly as a request bringing those events as its history; a known user's
   next answer reads the new event (counted in "recent_events", its item no longer recommended).
Every request goes to 127.0.0.1 and every loop is bounded in count and time.
"""
import concurrent.futures
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from serve_util import fresh_runs, start_server

BIN, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
LOG = os.path.join(WORK, "log")


def run(*args, check=True):
    p = subprocess.run([BIN, *args], cwd=WORK, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: shardrec {' '.join(args)}: exit {p.returncode}: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    return p


def call(port, path, body, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def post_events(port, body, raw=None):
    return call(port, "/v1/events", body, raw)


def recommend(port, body):
    return call(port, "/v1/recommend", body)


def read_log():
    """Every event of the log's complete segments, in log order."""
    events = []
    for name in sorted(os.listdir(LOG)):
        if name.startswith(".") or not name.endswith(".jsonl"):
            continue
        assert len(name.split("-")[0]) == 16, name
        with open(os.path.join(LOG, name)) as f:
            events += [json.loads(line) for line in f if line.strip()]
    return events


def wait_for(what, cond, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    sys.exit(f"FAIL: {what} within {seconds} s")


def check_concurrent_appends(port):
    rng = random.Random(5)
    requests = []
    for c in range(8):
        for i in range(5):
            requests.append((c, [{"user": f"c{c}", "item": str(rng.randrange(1, 60)), "ts": 1_700_000_000 + 10 * i + j}
                                 for j in range(rng.randrange(1, 6))]))
    new_item = {"user": "c0", "item": "NEW-1", "ts": 1_800_000_000, "title": "A new title", "categories": ["Drama"]}
    requests.append((0, [new_item]))

    def client(c):
        for _, events in [r for r in requests if r[0] == c]:
            status, body = post_events(port, {"events": events})
            assert status == 200 and body == {"appended": len(events)}, (status, body)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    sent = [e for _, events in requests for e in events]
    wait_for("every event in a published segment", lambda: len(read_log()) >= len(sent))
    got = read_log()
    key = lambda e: json.dumps(e, sort_keys=True)
    assert sorted(map(key, got)) == sorted(map(key, sent)), "the log is not the events sent"
    for c in range(8):
        mine = [e for e in sent if e["user"] == f"c{c}"]
        assert [e for e in got if e["user"] == f"c{c}"] == mine, f"client {c}'s events out of order"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        metrics = r.read().decode()
    assert f"shardrec_events_appended_total {len(sent)}" in metrics, metrics[-800:]
    assert 'shardrec_requests_total{endpoint="events",code="200"} ' + str(len(requests)) in metrics
    return len(sent)


def check_bad_bodies(port):
    for raw, fragment in [(b"{", "body"), (b'{"events": []}', "events: expected an array"),
                          (b'{"events": [{"user": "u", "item": "i"}]}', 'events[0]: missing "ts"'),
                          (b'{"events": [{"user": "u", "item": "i", "ts": "soon"}]}', "events[0].ts"),
                          (b'{"events": [{"user": "u", "item": "i", "ts": 1, "rating": 5}]}', "events[0].rating: unknown field")]:
        status, body = post_events(port, None, raw=raw)
        assert status == 400 and fragment in body.get("error", ""), (raw, status, body)
    status, body = post_events(port, {"events": [{"user": "after", "item": "1", "ts": 1}]})
    assert status == 200, (status, body)


def check_recent_events(port):
    status, body = recommend(port, {"user": "newcomer", "k": 10})
    assert status == 404 and "unknown user" in body.get("error", ""), (status, body)
    history = [{"item": "5", "ts": 2000000000}, {"item": "17", "ts": 2000000060}]
    assert post_events(port, {"events": [dict(user="newcomer", **e) for e in history]})[0] == 200
    status, fresh = recommend(port, {"user": "newcomer", "k": 10})
    status2, same = recommend(port, {"history": history, "k": 10})
    assert status == 200 and status2 == 200 and fresh["recent_events"] == 2, (status, fresh, status2, same)
    assert [(i["item"], i["score"]) for i in fresh["items"]] == [(i["item"], i["score"]) for i in same["items"]], (fresh, same)
    status, before = recommend(port, {"user": "3", "k": 10})
    assert status == 200 and "recent_events" not in before, before
    top = before["items"][0]["item"]
    assert post_events(port, {"events": [{"user": "3", "item": top, "ts": 2000000000}]})[0] == 200
    status, after = recommend(port, {"user": "3", "k": 10})
    assert status == 200 and after["recent_events"] == 1, after
    assert top not in [i["item"] for i in after["items"]], (top, after)
    return len(history) + 1


def main():
    fresh_runs(run, WORK, users=200, items=60, events=3000, runs=(("a", "1"),))
    run("publish", "--run-dir", "a", "--export-root", "S", "--export-version", "v1", "--force", "--factory", "Flat")
    server, port = start_server(BIN, WORK, "--event-log", LOG, "--event-roll-seconds", "0.3")
    try:
        sent = check_concurrent_appends(port)
        check_bad_bodies(port)
        sent += 1
        sent += check_recent_events(port)
        wait_for("the last event published", lambda: len(read_log()) == sent)
        second = run("serve", "--export-root", "S", "--port", "0", "--event-log", LOG, check=False)
        assert second.returncode != 0 and "in use" in second.stderr, second.stderr[-1000:]
    finally:
        server.kill()
        server.wait()
    plain, plain_port = start_server(BIN, WORK)
    try:
        status, body = post_events(plain_port, {"events": [{"user": "u", "item": "i", "ts": 1}]})
        assert status == 404 and "--event-log" in body.get("error", ""), (status, body)
    finally:
        plain.kill()
        plain.wait()
    # kill -9 between the acknowledgement and the roll (an hour away), then a restart.
    server, port = start_server(BIN, WORK, "--event-log", LOG, "--event-roll-seconds", "3600")
    acked = [{"user": "k", "item": str(i), "ts": 5 + i} for i in range(7)]
    for e in acked:
        assert post_events(port, {"events": [e]})[0] == 200
    server.send_signal(signal.SIGKILL)
    server.wait()
    assert read_log()[-len(acked):] != acked, "published before the roll: the kill tested nothing"
    server, port = start_server(BIN, WORK, "--event-log", LOG, "--event-roll-seconds", "3600")
    assert read_log()[-len(acked):] == acked, "acknowledged events lost by kill -9"
    assert post_events(port, {"events": [{"user": "k", "item": "99", "ts": 100}]})[0] == 200
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err[-1000:]
    assert read_log()[-1] == {"user": "k", "item": "99", "ts": 100}, "SIGTERM left the open segment unpublished"
    total = len(read_log())
    run("data", "convert", "--format", "events", "--input", LOG, "--output", "from_log.h5")
    stats = json.loads(run("data", "stats", "from_log.h5", "--json").stdout)
    assert stats["events"] == total, (stats["events"], total)
    print(f"events check: OK ({total} events through POST /v1/events, a kill -9 recovered, converted)")


if __name__ == "__main__":
    main()
