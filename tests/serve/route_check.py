#!/usr/bin/env python3
"""More than one machine, on loopback: two shard servers (`shardrec serve --shards 0` and `--shards 1`)
and a router (`--route A,B`) answer exactly what one server with every shard answers.

  route_check.py SHARDREC WORKDIR MPIRUN

1. A synthetic run exported on 2 ranks (2 item shards) with a Flat index, published as v1.
2. 50 requests (known users, histories with timestamps and unknown items, `at`, `explain`,
   `exclude_history`, k from 1 to 60) to the router and to the full server: the same items in the
   same order, scores within 1e-6, the same explanations. A shard server's own answers cover its
   shard; the two merged by score are the full server's.
3. v2 published (2 shards, HNSW32): every server follows LATEST and the router still equals the
   full server.
4. Mistakes: a shard out of range, a route missing a shard or naming a dead port, --route with
   --shards: exit 2 with the reason. A shard server that dies: the router answers 502 naming it.
Every request goes to 127.0.0.1; every loop is bounded.
"""
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

BIN, WORK, MPIRUN = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
servers = []


def run(*args, mpi=False):
    cmd = [MPIRUN, "-np", "2", BIN, *args] if mpi else [BIN, *args]
    p = subprocess.run(cmd, cwd=WORK, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}: exit {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}")
    return p


def serve(*flags):
    p, port = start_server(BIN, WORK, *flags)
    servers.append(p)
    return p, port


def post(port, body, path="/v1/recommend"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def health(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        return json.loads(r.read())


def same(a, b, what):
    assert a["version"] == b["version"] and a["search"] == b["search"], (what, a, b)
    assert [i["item"] for i in a["items"]] == [i["item"] for i in b["items"]], (what, a["items"], b["items"])
    assert all(abs(x["score"] - y["score"]) <= 1e-6 for x, y in zip(a["items"], b["items"])), what
    assert [i.get("because") for i in a["items"]] == [i.get("because") for i in b["items"]] or all(
        abs(r["contribution"] - q["contribution"]) <= 1e-5 and r["item"] == q["item"]
        for x, y in zip(a["items"], b["items"]) for r, q in zip(x.get("because", []), y.get("because", []))), what
    assert a.get("ignored") == b.get("ignored"), what


def cases(items, rng):
    out = []
    for n in range(50):
        k = [1, 5, 10, 25, 60][n % 5]
        if n % 5 < 2:
            body = {"user": str(rng.randrange(1, 300)), "k": k}
            if n % 10 == 1:
                body["explain"] = True
            if n % 10 == 0:
                body["at"] = 2_000_000_000
        else:
            h = rng.sample(items, 1 + n % 6)
            ts = sorted(rng.randrange(1_000_000_000, 1_100_000_000) for _ in h)
            body = {"history": [{"item": i, "ts": t} for i, t in zip(h, ts)], "k": k}
            if n % 7 == 3:
                body["history"].append({"item": "not-an-item", "ts": ts[-1] + 1})
            if n % 4 == 0:
                body["exclude_history"] = False
            if n % 6 == 2:
                body["explain"] = True
        out.append(body)
    return out


def main():
    fresh_runs(run, WORK, users=300, items=400, events=6000)
    run("publish", "--run-dir", "a", "--export-root", "S", "--export-version", "v1", "--force", "--factory", "Flat",
        mpi=True)
    manifest = json.load(open(os.path.join(WORK, "S", "v1", "manifest.json")))
    assert len(manifest["item_shards"]) == 2, manifest["item_shards"]
    try:
        check(manifest)
    finally:
        for p in servers:
            if p.poll() is None:
                p.kill()
    print("route check: OK")


def check(manifest):
    a, port_a = serve("--shards", "0")
    b, port_b = serve("--shards", "1")
    _, full = serve()
    _, router = serve("--route", f"127.0.0.1:{port_a},127.0.0.1:{port_b}")
    assert health(port_a)["shards"] == [0] and health(port_b)["shards"] == [1] and health(full)["shards"] == [0, 1]
    rng = random.Random(3)
    items = [i["item"] for i in post(full, {"user": "1", "k": 100})[1]["items"]]
    for body in cases(items, rng):
        s1, one = post(full, body)
        s2, routed = post(router, body)
        assert s1 == 200 and s2 == 200, (body, one, routed)
        same(routed, one, body)
    print("50 requests: the router over two shard servers answers what one server with both shards answers")

    # A shard server's own answers: its shard's items; both merged by score: the full answer.
    begin1 = manifest["item_shards"][1]["begin"]
    for u in ("3", "77", "150"):
        parts = [post(p, {"user": u, "k": 10})[1]["items"] for p in (port_a, port_b)]
        merged = sorted(parts[0] + parts[1], key=lambda i: -i["score"])[:10]
        assert [i["item"] for i in merged] == [i["item"] for i in post(full, {"user": u, "k": 10})[1]["items"]], u
    status, answer = post(port_a, {"version": "v1", "k": 5, "queries": [{"vector": [0.25] * 16, "exclude": []}]}, "/v1/search")
    assert status == 200 and all(h["id"] < begin1 for h in answer["hits"][0]), answer
    status, answer = post(port_a, {"version": "v0", "k": 5, "queries": [{"vector": [0.25] * 16, "exclude": []}]}, "/v1/search")
    assert status == 409 and "is not served here" in answer["error"], answer
    # A malformed search body names the field at fault.
    for body, field in (({"k": 5, "queries": []}, "version"), ({"version": "v1", "k": "5", "queries": []}, "k"),
                        ({"version": "v1", "k": 5, "queries": [{"vector": [0.25] * 16}]}, "exclude"),
                        ({"version": "v1", "k": 5, "queries": [{"vector": ["x"] * 16, "exclude": []}]}, "vector"),
                        ({"version": "v1", "k": 5, "queries": [{"vector": [0.25] * 16, "exclude": [1.5]}]}, "exclude")):
        status, answer = post(port_a, body, "/v1/search")
        assert status == 400 and answer["error"].startswith(field + ":"), (body, status, answer)
    print("each shard server answers over its own shard; merged, the full server's answer")

    # v2 on 2 shards with HNSW: everyone follows LATEST; the router still equals the full server.
    run("publish", "--run-dir", "b", "--export-root", "S", "--export-version", "v2", "--force", "--factory", "HNSW32",
        mpi=True)
    deadline = time.time() + 20
    while time.time() < deadline and {health(p)["version"] for p in (port_a, port_b, full, router)} != {"v2"}:
        time.sleep(0.1)
    assert {health(p)["version"] for p in (port_a, port_b, full, router)} == {"v2"}
    for body in cases(items, random.Random(4))[:20]:
        s1, one = post(full, body)
        s2, routed = post(router, body)
        assert s1 == 200 and s2 == 200 and one["search"].startswith("HNSW"), (body, one, routed)
        same(routed, one, body)
    print("v2 (HNSW32) published: every server follows, the router still answers as the full server")

    # Mistakes.
    for flags, reason in ((["--shards", "2"], "shard 2 out of range"),
                          (["--route", f"127.0.0.1:{port_a}"], "no shard server holds item shard 1"),
                          (["--route", f"127.0.0.1:{port_a},127.0.0.1:1"], "no shard server answers there"),
                          (["--route", f"127.0.0.1:{port_a}", "--shards", "0"], "a router holds no shards")):
        p = subprocess.run([BIN, "serve", "--export-root", "S", "--port", "0", *flags], cwd=WORK, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 2 and reason in p.stderr, (flags, p.returncode, p.stderr[-500:])
    b.send_signal(signal.SIGTERM)
    b.wait(timeout=30)
    status, answer = post(router, {"user": "3", "k": 10})
    assert status == 502 and f"shard server 127.0.0.1:{port_b}: unreachable" in answer["error"], (status, answer)
    print("mistakes refused with their reason; a dead shard server: 502 naming it")


if __name__ == "__main__":
    main()
