#!/usr/bin/env python3
"""tools/load_milvus.py into the embedded Milvus (milvus-lite), against `shardrec serve`.

  milvus_check.py SHARDREC WORKDIR

1. A tiny synthetic run published as v1 with a Flat index; loaded into a milvus-lite file.
2. For 20 users (on the version served last), Milvus's exact top 10 for the user's exported vector equals the server's answer
   for that user with the history kept in (`"exclude_history": false`): the same items in the same
   order, scores within 1e-5.
3. Loading v1 again is refused (exit 2, the collection untouched) unless --replace; a second
   version gets its own collection and the `latest` alias moves to it; a damaged manifest is
   refused before anything is created.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

from serve_util import fresh_runs, start_server

BIN, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
PY = sys.executable
LOADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "load_milvus.py")


def run(*args):
    p = subprocess.run([BIN, *args], cwd=WORK, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"FAIL: shardrec {' '.join(args)}: exit {p.returncode}: {p.stderr[-2000:]}")


def loader(*args):
    return subprocess.run([PY, LOADER, *args], cwd=WORK, capture_output=True, text=True, timeout=600)


def user_vectors(version_dir):
    import h5py
    out = {}
    manifest = json.load(open(os.path.join(version_dir, "manifest.json")))
    for shard in manifest["user_shards"]:
        with h5py.File(os.path.join(version_dir, shard["file"]), "r") as f:
            offsets, data = f["raw_ids/offsets"][:], f["raw_ids/bytes"][:].tobytes()
            for i, v in enumerate(f["vectors"][:]):
                out[data[offsets[i]:offsets[i + 1]].decode()] = v.tolist()
    return out


def main():
    fresh_runs(run, WORK, users=200, items=300, events=4000)
    run("publish", "--run-dir", "a", "--export-root", "S", "--export-version", "v1", "--force", "--factory", "Flat")
    db = os.path.join(WORK, "recall.db")
    p = loader("--export", "S", "--uri", db)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report == {"collection": "shardrec_v1", "alias": "shardrec_latest", "items": 300, "dim": 16,
                      "version": "v1", "index": "FLAT"}, report
    print(f"v1 loaded: {report}")

    p = loader("--export", "S/v1", "--uri", db)
    assert p.returncode == 2 and "collection shardrec_v1 exists" in p.stderr, (p.returncode, p.stderr)
    assert loader("--export", "S/v1", "--uri", db, "--replace", "--no-alias").returncode == 0
    run("publish", "--run-dir", "b", "--export-root", "S", "--export-version", "v2", "--force", "--factory", "Flat")
    p = loader("--export", "S", "--uri", db)
    assert p.returncode == 0, p.stderr
    shutil.copytree(os.path.join(WORK, "S", "v2"), os.path.join(WORK, "v3"))
    p = loader("--export", "v3", "--uri", db, "--prefix", "other_")
    assert p.returncode == 2 and "is not its directory's name" in p.stderr, p.stderr
    shutil.copytree(os.path.join(WORK, "S", "v2"), os.path.join(WORK, "damaged", "v2"))
    with open(os.path.join(WORK, "damaged", "v2", "manifest.json"), "r+b") as f:
        f.seek(40)
        f.write(b"#")
    p = loader("--export", "damaged/v2", "--uri", db, "--prefix", "other_")
    assert p.returncode == 2 and "checksum mismatch" in p.stderr, p.stderr

    from pymilvus import MilvusClient  # milvus-lite: one process at a time opens the file, so last
    client = MilvusClient(uri=db)
    assert sorted(client.list_collections()) == ["shardrec_v1", "shardrec_v2"], client.list_collections()
    assert client.describe_alias("shardrec_latest")["collection_name"] == "shardrec_v2"
    client.close()
    print("v1 again: refused without --replace, reloaded with it; v2 loaded beside it, the alias moved to v2; "
          "a copied version and a damaged manifest refused, nothing created")
    vectors = user_vectors(os.path.join(WORK, "S", "v2"))
    server, port = start_server(BIN, WORK)
    try:
        client = MilvusClient(uri=db)
        client.load_collection("shardrec_v2")  # milvus-lite: each process loads what it searches
        users = [str(u) for u in range(1, 200, 10)]
        assert len(users) == 20
        for u in users:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/recommend",
                                         data=json.dumps({"user": u, "k": 10, "exclude_history": False}).encode(),
                                         headers={"Content-Type": "application/json"})
            served = json.loads(urllib.request.urlopen(req, timeout=30).read())
            hits = client.search("shardrec_latest", data=[vectors[u]], limit=10, output_fields=["item"],
                                 search_params={"metric_type": "IP"})[0]
            got = [(h["entity"]["item"], h["distance"]) for h in hits]
            want = [(i["item"], i["score"]) for i in served["items"]]
            assert [g for g, _ in got] == [w for w, _ in want], (u, got, want)
            assert all(abs(a - b) <= 1e-5 for (_, a), (_, b) in zip(got, want)), (u, got, want)
        print(f"{len(users)} users: Milvus's exact top 10 equals the server's (Flat), scores within 1e-5")
        client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    print("milvus check: OK")


if __name__ == "__main__":
    main()
