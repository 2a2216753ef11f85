#!/usr/bin/env python3
"""Python (h5py + faiss) opens an export and its index written by C++ and returns the same top-K as
`shardrec query` for the same user vectors: the export format is usable by a serving tier in any
language (docs/formats.md)."""
import argparse
import json
import os
import subprocess
import sys

import faiss
import h5py
import numpy as np


def strings(g):
    off = g["offsets"][...]
    b = g["bytes"][...].tobytes()
    return [b[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shardrec", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    sh, w = a.shardrec, a.workdir
    subprocess.run(["rm", "-rf", w], check=True)
    os.makedirs(w)
    run = lambda *args: subprocess.run([sh, *args], check=True, capture_output=True, text=True).stdout
    data, rdir, root = f"{w}/s.h5", f"{w}/run", f"{w}/exp"
    run("data", "synth", "--output", data, "--users", "300", "--items", "2000", "--events", "6000")
    run("train", "--data", data, "--run-dir", rdir, "--max-steps", "10", "--dim", "16", "--blocks", "1",
        "--max-len", "10", "--eval-every", "0", "--batch-size", "64")
    run("export", "--run-dir", rdir, "--out", root, "--export-version", "v1")
    run("index", "--export", root, "--factory", "HNSW16")
    version = open(f"{root}/LATEST").read().strip()
    vdir = f"{root}/{version}"
    m = json.load(open(f"{vdir}/manifest.json"))
    assert m["format"] == "shardrec.export" and m["metric"] == "inner_product" and m["normalization"] == "l2"
    idir = f"{vdir}/{m['index']['dir']}"
    ix = json.load(open(f"{idir}/manifest.json"))
    assert ix["format"] == "shardrec.index" and ix["factory"] == "HNSW16" and 0 < ix["recall@10"] <= 1
    # Items and indexes per shard, users, and each user's history (excluded from results).
    shards = []
    raw = []
    for s in m["item_shards"]:
        with h5py.File(f"{vdir}/{s['file']}") as f:
            v = f["vectors"][...]
            assert v.shape == (s["end"] - s["begin"], m["dim"]) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
            raw += strings(f["raw_ids"])
        shard = ix["shards"][len(shards)]
        assert (shard["begin"], shard["end"]) == (s["begin"], s["end"]) and shard["file"] in ix["files"]
        index = faiss.read_index(f"{idir}/{shard['file']}")
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", ix["search"]["ef_search"])
        shards.append((s["begin"], index))
    with h5py.File(f"{vdir}/users-0.h5") as f:
        users, user_raw, uvec = f["ids"][...], strings(f["raw_ids"]), f["vectors"][...]
    with h5py.File(m["data"]) as d:
        off, items = d["users/event_offsets"][...], d["events/item"][...]
    k = 10
    for i in range(0, 40, 4):
        history = set(items[off[users[i]]:off[users[i] + 1]].tolist())
        want = k + len(history)
        hits = []
        for begin, index in shards:
            n = min(want, index.ntotal)
            dist, lab = index.search(uvec[i:i + 1], n)
            hits += [(float(s), begin + int(l)) for s, l in zip(dist[0], lab[0]) if l >= 0 and begin + l not in history]
        hits.sort(key=lambda h: (-h[0], h[1]))
        mine = [raw[h[1]] for h in hits[:k]]
        out = json.loads(run("query", "--export", root, "--user", user_raw[i], "--k", str(k), "--json"))
        theirs = [h["item"] for h in out["items"]]
        assert mine == theirs, (user_raw[i], mine, theirs)
        assert all(abs(h["score"] - s) < 1e-5 for h, (s, _) in zip(out["items"], hits)), out
    print("1 passed, 0 failed")


if __name__ == "__main__":
    sys.exit(main())
