#!/usr/bin/env python3
"""`shardrec serve` on loopback against `shardrec query --json` (the oracle), then hot reload.

  serve_check.py SHARDREC WORKDIR

1. Two tiny runs of one synthetic dataset; version v1 published from the first.
2. The server (--port 0: any free port, read from its first line) answers 50 requests (known users,
   histories with and without timestamps, `at`, `explain`) exactly as `shardrec query --json` does:
   the same version, the same items in the same order, scores within 1e-6.
   The same 50 sent at once by 16 clients (batched together) get the same answers.
3. Bad requests get a 4xx with a one-line reason, counted in /metrics, and the server keeps serving;
   unknown history items are left out and listed; a stalled client is cut off after --read-timeout
   and connections beyond --threads + --max-queued are answered 503 (a second, one-thread server).
4. Hot reload under load: while 16 clients send requests without pause, 10 versions are published
   (--keep 4 retires old ones) and 2 rolled back: each move of LATEST is served within 2 s, and no
   request fails.
5. SIGTERM: the server drains and exits 0.
Every request goes to 127.0.0.1 and every loop is bounded in count and time.
"""
import concurrent.futures
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from serve_util import fresh_runs, post_json, start_server

BIN, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def run(*args, check=True):
    p = subprocess.run([BIN, *args], cwd=WORK, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: shardrec {' '.join(args)}: exit {p.returncode}: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    return p


def post(port, body, raw=None, timeout=30):
    return post_json(port, "/v1/recommend", body, timeout, raw)


def get(port, path, timeout=30):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def set_latest(root, text):
    with open(os.path.join(root, "LATEST.tmp"), "w") as f:
        f.write(text)
    os.replace(os.path.join(root, "LATEST.tmp"), os.path.join(root, "LATEST"))


def same_answer(served, query, what):
    assert served["version"] == query["version"], (what, served["version"], query["version"])
    a = [(i["item"], i["score"]) for i in served["items"]]
    b = [(i["item"], i["score"]) for i in query["items"]]
    assert [x for x, _ in a] == [x for x, _ in b], (what, a, b)
    assert all(abs(x - y) <= 1e-6 for (_, x), (_, y) in zip(a, b)), (what, a, b)
    for x, y in zip(served["items"], query["items"]):  # explanations: the same events, contributions to 1e-5
        bx, by = x.get("because", []), y.get("because", [])
        assert [r["item"] for r in bx] == [r["item"] for r in by], (what, bx, by)
        assert all(abs(r["contribution"] - q["contribution"]) <= 1e-5 for r, q in zip(bx, by)), (what, bx, by)


def main():
    fresh_runs(run, WORK, users=300, items=200, events=6000)
    run("publish", "--run-dir", "a", "--export-root", "S", "--export-version", "v1", "--force", "--factory", "Flat")

    server, port = start_server(BIN, WORK, "--threads", "20", "--max-history", "100")
    try:
        check_against_query(port)
        check_bad_requests(port)
        check_overload()
        check_reload(port)
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=30)
        assert rc == 0, f"SIGTERM: exit {rc}: {server.stderr.read()[-2000:]}"
    finally:
        if server.poll() is None:
            server.kill()
    print("serve check: OK")


def check_against_query(port):
    rng = random.Random(5)
    # Raw user and item ids from the export's own answers.
    status, seed = post(port, {"user": "1", "k": 10})
    assert status == 200, seed
    items = [i["item"] for i in seed["items"]]
    cases = []
    for u in rng.sample(range(1, 300), 20):
        cases.append(({"user": str(u), "k": 10}, ["--user", str(u), "--k", "10"]))
    for u in rng.sample(range(1, 300), 5):
        cases.append(({"user": str(u), "k": 5, "explain": True}, ["--user", str(u), "--k", "5", "--explain"]))
    for u in rng.sample(range(1, 300), 5):
        cases.append(({"user": str(u), "k": 10, "at": 2000000000}, ["--user", str(u), "--k", "10", "--at", "2000000000"]))
    for n in range(10):
        h = rng.sample(items, 1 + n % 4)
        if n % 3 == 1:  # an item the export does not know: left out, and listed
            h.insert(n % len(h), "not-an-item")
        body, args = {"history": h, "k": 10}, ["--history", ",".join(h), "--k", "10"]
        if n % 4 == 2:  # the history's items may come back
            body["exclude_history"], args = False, args + ["--include-history"]
        cases.append((body, args))
    for n in range(10):
        h = rng.sample(items, 2 + n % 3)
        ts = sorted(rng.randrange(1_000_000_000, 1_100_000_000) for _ in h)
        body = {"history": [{"item": i, "ts": t} for i, t in zip(h, ts)], "k": 10}
        args = ["--history", ",".join(f"{i}@{t}" for i, t in zip(h, ts)), "--k", "10"]
        if n % 2:
            body["at"] = ts[-1] + 3600
            args += ["--at", str(ts[-1] + 3600)]
        cases.append((body, args))
    assert len(cases) == 50
    answers = []
    for body, args in cases:
        status, served = post(port, body)
        assert status == 200, (body, served)
        assert "server_ms" in served, served
        query = json.loads(run("query", "--export", "S", "--json", *args).stdout)
        same_answer(served, query, body)
        assert served.get("ignored") == query.get("ignored"), (body, served, query)
        if "not-an-item" in body.get("history", []):
            assert served["ignored"] == ["not-an-item"], served
        answers.append(served)
    print(f"{len(cases)} requests: the server's answers are `shardrec query --json`'s")
    # All at once from 16 clients, three rounds: batched together, each answer as it was alone.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for _ in range(3):
            for (body, _), alone, (status, together) in zip(cases, answers, pool.map(lambda c: post(port, c[0]), cases)):
                assert status == 200, (body, together)
                same_answer(together, alone, ("batched", body))
    sizes = re.search(r"shardrec_batch_size_sum (\d+)\nshardrec_batch_size_count (\d+)", get(port, "/metrics")[1])
    assert sizes and int(sizes.group(2)) > 0, "no batch counted"
    print(f"the same 50 from 16 clients at once, 3 times: the same answers "
          f"({sizes.group(1)} requests in {sizes.group(2)} batches so far)")


def check_bad_requests(port):
    bad = [
        (None, b"{not json", 400, "invalid JSON"),
        (None, b"[1, 2]", 400, "expected a JSON object"),
        ({"user": "no-such-user"}, None, 404, "unknown user id"),
        ({"user": "1", "k": 0}, None, 400, "k: expected 1 to"),
        ({"user": "1", "k": 10 ** 18}, None, 400, "k: expected 1 to"),
        ({"user": "1", "k": "ten"}, None, 400, "k: expected an integer"),
        ({"user": "1", "bogus": 1}, None, 400, "unknown field"),
        ({"user": "1", "history": ["1"]}, None, 400, "exactly one of"),
        ({"history": []}, None, 400, "at least one item"),
        ({"history": [{"item": "1", "ts": 5}, {"item": "2"}]}, None, 400, "for every item or for none"),
        ({"history": [str(i) for i in range(101)]}, None, 400, "over this server's limit of 100"),
        ({"user": "1", "at": 1}, None, 400, "before the history's last event"),
    ]
    for body, raw, code, fragment in bad:
        status, answer = post(port, body, raw)
        assert status == code and fragment in answer.get("error", ""), (body, raw, status, answer)
        assert "\n" not in answer["error"], answer
    status, answer = post(port, None, b"{\"user\": \"" + b"x" * (2 << 20) + b"\"}")
    assert status == 413 and "over 1048576 bytes" in answer.get("error", ""), (status, answer)
    status, text = get(port, "/v1/nothing-here")
    assert status == 404 and "no such endpoint" in json.loads(text)["error"], (status, text)
    # Unknown history items only: an empty answer, not an error; k over the catalogue: every item.
    status, answer = post(port, {"history": ["no-such-item"]})
    assert status == 200 and answer["items"] == [] and answer["ignored"] == ["no-such-item"], answer
    status, answer = post(port, {"user": "1", "k": 5000})
    assert status == 200 and 0 < len(answer["items"]) <= 200, answer
    status, text = get(port, "/metrics")
    assert status == 200 and 'shardrec_requests_total{endpoint="recommend",code="400"} 11' in text, text
    assert 'shardrec_requests_total{endpoint="recommend",code="404"} 1' in text, text
    assert 'shardrec_requests_total{endpoint="recommend",code="413"} 1' in text, text
    assert 'shardrec_requests_total{endpoint="other",code="404"} 1' in text, text
    assert post(port, {"user": "1"})[0] == 200, "the server stopped serving after bad requests"
    status, item = get(port, "/v1/items/1")
    item = json.loads(item)
    assert status == 200 and item["item"] == "1" and item["trained"] is True and item["categories"], item
    status, found = get(port, "/v1/items?q=" + urllib.request.quote(item["title"][:6]))
    assert status == 200 and "1" in [i["item"] for i in json.loads(found)["items"]], found
    status, page = get(port, "/")
    assert status == 200 and "ShardRec console" in page, page[:200]
    print(f"{len(bad) + 4} bad requests: 4xx each with a one-line reason, counted; unknown items left out; "
          f"items with categories; still serving")


def raw_request(port, data, timeout=10):
    """Sends `data` on a fresh connection; returns (status or None when closed unanswered, seconds)."""
    start = time.time()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        try:
            while b"\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except socket.timeout:
            return "timeout", time.time() - start
    m = re.match(rb"HTTP/1\.1 (\d+)", reply)
    return (int(m.group(1)) if m else None), time.time() - start


def check_overload():
    """A one-thread server with one waiting place: a stalled client holds the thread until
    --read-timeout cuts it off, a second connection waits, a third is answered 503 at once."""
    server, port = start_server(BIN, WORK, "--threads", "1", "--max-queued", "1", "--read-timeout", "2")
    body = b'{"user": "1"}'
    request = (b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    try:
        results = {}
        stalled = threading.Thread(target=lambda: results.update(stalled=raw_request(port, request[:30])))
        stalled.start()
        time.sleep(0.3)  # the stalled client holds the only thread
        waiting = threading.Thread(target=lambda: results.update(waiting=raw_request(port, request)))
        waiting.start()
        time.sleep(0.3)  # the second connection takes the waiting place
        busy, seconds = raw_request(port, request)
        assert busy == 503 and seconds < 1.0, (busy, seconds)
        stalled.join(timeout=15)
        waiting.join(timeout=15)
        assert results["stalled"][0] in (None, 400, 408) and 1.5 <= results["stalled"][1] <= 6, results
        assert results["waiting"][0] == 200, results
        # A body that stops short of its Content-Length: cut off after the timeout too.
        short = request.replace(b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 50))
        status, seconds = raw_request(port, short)
        assert status in (None, 400, 408) and seconds >= 1.5, (status, seconds)
        assert post(port, {"user": "1"})[0] == 200, "the one-thread server stopped serving"
        text = get(port, "/metrics")[1]
        assert 'shardrec_requests_total{endpoint="recommend",code="503"} 1' in text, text
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
    print(f"overload: a stalled client cut off after {results['stalled'][1]:.1f} s, the connection over the "
          f"queue answered 503 in {seconds:.2f} s, the one waiting answered; still serving")


def check_reload(port):
    """16 clients without pause while 10 versions are published and 2 rolled back: every move of
    LATEST is answered from within 2 s, and no request fails."""
    stop, failures, answered, seen = threading.Event(), [], [0], []  # seen: (when answered, version)
    lock = threading.Lock()

    def load(c):
        deadline, n = time.time() + 600, 0
        while not stop.is_set() and time.time() < deadline and n < 200000:
            try:
                status, a = post(port, {"user": str(1 + (c * 7919 + n) % 299), "k": 10})
            except OSError as e:  # a connection refused, reset or timed out is a failed request too
                status, a = None, repr(e)
            with lock:
                if status != 200:
                    failures.append((status, a))
                else:
                    seen.append((time.time(), a["version"]))
                answered[0] += 1
            n += 1

    threads = [threading.Thread(target=load, args=(c,)) for c in range(16)]
    for t in threads:
        t.start()
    steps = [f"v{n}" for n in range(2, 12)]
    steps[5:5] = ["rollback"]
    steps.append("rollback")
    root, slowest = os.path.join(WORK, "S"), 0.0
    try:
        for step in steps:
            if step == "rollback":
                run("publish", "--rollback", "--export-root", "S")
            else:  # from the run the served version did not come from (publish refuses a reused run)
                served = open(os.path.join(root, "LATEST")).read().strip()
                source = json.load(open(os.path.join(root, served, "manifest.json")))["source"]
                run_dir = "b" if os.path.basename(os.path.dirname(source)) == "a" else "a"
                run("publish", "--run-dir", run_dir, "--export-root", "S", "--export-version", step, "--force",
                    "--factory", "Flat", "--keep", "4")
            latest = os.path.join(WORK, "S", "LATEST")
            want, moved = open(latest).read().strip(), os.path.getmtime(latest)
            waited = time.time()
            while time.time() - waited < 10 and json.loads(get(port, "/healthz")[1])["version"] != want:
                time.sleep(0.02)
            time.sleep(0.2)  # a few answers of the load threads on the new version
            with lock:
                first = min((t for t, v in seen if v == want and t >= moved), default=float("inf"))
            assert first - moved <= 2.0, f"{step}: {want} first answered {first - moved:.2f} s after LATEST moved"
            slowest = max(slowest, first - moved)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:3]
    print(f"{answered[0]} requests from 16 clients during 10 publishes and 2 rollbacks, none failed; each new "
          f"version answered within {slowest:.2f} s of LATEST moving")
    check_standby(port)
    # A version that does not verify (a copy under another name: its manifest names another) is refused,
    # the served one stays; named again after LATEST came back, it is tried (and refused) again.
    root = os.path.join(WORK, "S")
    shutil.copytree(os.path.join(root, open(os.path.join(root, "LATEST")).read().strip()), os.path.join(root, "bad"))
    for attempt in (1, 2):
        served = open(os.path.join(root, "LATEST")).read()
        set_latest(root, "bad\n")
        time.sleep(1.0)
        assert json.loads(get(port, "/healthz")[1])["version"] == served.strip(), "a damaged version was served"
        assert f'shardrec_reloads_total{{outcome="refused"}} {attempt}' in get(port, "/metrics")[1]
        set_latest(root, served)
        time.sleep(1.0)
    assert post(port, {"user": "1"})[0] == 200
    print("a version that does not verify: refused twice (named, unnamed, named again), the served one stayed")


def metric(port, name):
    for line in get(port, "/metrics")[1].splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def check_standby(port):
    """Each rollback swapped in the version served before (the standby) without loading it; a version
    re-indexed after it was loaded ahead is loaded again, and its new index is what answers."""
    assert metric(port, 'shardrec_reloads_total{outcome="standby"}') >= 2, get(port, "/metrics")[1]
    root = os.path.join(WORK, "S")
    served = open(os.path.join(root, "LATEST")).read().strip()
    run("publish", "--rollback", "--export-root", "S")  # the standby is now the version just left
    back = open(os.path.join(root, "LATEST")).read().strip()
    deadline = time.time() + 10
    while time.time() < deadline and json.loads(get(port, "/healthz")[1])["version"] != back:
        time.sleep(0.02)
    assert post(port, {"user": "1"})[1]["version"] == back
    # After the rollback the watcher may load the newest version ahead (the one published last):
    # wait until it has settled for a second.
    ahead, settled, deadline = -1, time.time(), time.time() + 30
    while time.time() < deadline and time.time() - settled < 1.0:
        now = metric(port, 'shardrec_standby_loads_total{outcome="loaded"}')
        if now != ahead:
            ahead, settled = now, time.time()
        time.sleep(0.05)
    loaded, swapped = (metric(port, f'shardrec_reloads_total{{outcome="{o}"}}') for o in ("loaded", "standby"))
    # The standby's version re-indexed: its manifest is now newer than the served one's, so it is
    # loaded ahead again (its old content no longer matches), and LATEST moving to it swaps that one in.
    run("index", "--export", os.path.join("S", served), "--factory", "HNSW16")
    deadline = time.time() + 20
    while time.time() < deadline and metric(port, 'shardrec_standby_loads_total{outcome="loaded"}') == ahead:
        time.sleep(0.05)
    assert metric(port, 'shardrec_standby_loads_total{outcome="loaded"}') > ahead, "the re-indexed version was not loaded ahead"
    time.sleep(0.5)  # the load ahead counted is the re-indexed version's (nothing newer is left)
    set_latest(root, served + "\n")
    deadline = time.time() + 10
    while time.time() < deadline and json.loads(get(port, "/healthz")[1])["version"] != served:
        time.sleep(0.02)
    answer = post(port, {"user": "1"})[1]
    assert answer["version"] == served and "HNSW16" in answer["search"], answer
    assert metric(port, 'shardrec_reloads_total{outcome="standby"}') == swapped + 1, get(port, "/metrics")[1]
    assert metric(port, 'shardrec_reloads_total{outcome="loaded"}') == loaded
    print(f"{swapped:.0f} of {swapped + loaded:.0f} moves of LATEST swapped in a standby (the rollbacks, and publishes "
          f"loaded ahead during their gate); a re-indexed version was loaded ahead again and swapped in ({answer['search']} answers)")


if __name__ == "__main__":
    main()
