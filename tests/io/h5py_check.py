#!/usr/bin/env python3
"""h5py reads dataset files written by shardrec and sees the same counts (docs/formats.md).

Writes a synthetic dataset (and converts ../shared/data/ml-100k when present) with the shardrec
binary, then checks every documented object and invariant with h5py/numpy only.
"""
import argparse
import json
import os
import subprocess
import sys

import h5py
import numpy as np


def strings(group, start=0, stop=None):
    off = group["offsets"][...]
    data = group["bytes"][...].tobytes()
    stop = len(off) - 1 if stop is None else stop
    return [data[off[i]:off[i + 1]].decode("utf-8") for i in range(start, stop)]


def check(path, stats):
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "shardrec.dataset", a["format"]
        assert a["format_version"] == 1
        users, items, events = int(a["num_users"]), int(a["num_items"]), int(a["num_events"])
        assert (users, items, events) == (stats["users"], stats["items"], stats["events"]), (users, items, events, stats)
        off = f["users/event_offsets"][...]
        assert off.shape == (users + 1,) and off[0] == 0 and off[-1] == events
        assert np.all(np.diff(off) >= 0)
        item = f["events/item"][...]
        assert item.shape == (events,) and item.dtype == np.int32
        assert item.min() >= 0 and item.max() < items
        if a["has_timestamps"]:
            ts = f["events/timestamp"][...]
            for u in range(users):  # sorted by time within each user
                assert np.all(np.diff(ts[off[u]:off[u + 1]]) >= 0), u
        assert len(strings(f["users/raw_ids"])) == users
        raw_items = strings(f["items/raw_ids"])
        assert len(raw_items) == items and len(set(raw_items)) == items
        if "items/titles" in f:
            assert len(strings(f["items/titles"])) == items
        if "items/categories" in f:
            c = f["items/categories/offsets"][...]
            assert c.shape == (items + 1,)
            vals = f["items/categories/values"][...]
            assert vals.shape == (c[-1],) and (vals.size == 0 or vals.max() < a["num_categories"])
        if a["content_dim"] > 0:
            assert f["items/content"].shape == (items, a["content_dim"])
        # A rank's slice without reading the rest: chunked storage.
        assert f["events/item"].chunks is not None and f["events/item"].compression == "gzip"
        return users, items, events, raw_items


def stats_of(shardrec, path):
    out = subprocess.run([shardrec, "data", "stats", "--json", path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shardrec", required=True)
    p.add_argument("--workdir", required=True)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    synth = os.path.join(args.workdir, "synth.h5")
    subprocess.run([args.shardrec, "data", "synth", "--output", synth, "--users", "500",
                    "--items", "400", "--events", "6000"], check=True, capture_output=True)
    print("synth:", check(synth, stats_of(args.shardrec, synth))[:3])
    with h5py.File(synth, "r") as f:
        assert 0 < f["oracle"].attrs["hr@10"] <= 1

    here = os.path.dirname(os.path.abspath(__file__))
    data = os.environ.get("SHARDREC_DATA", os.path.join(here, "..", "..", "..", "shared", "data"))
    ml = os.path.join(data, "ml-100k")
    if os.path.isdir(ml):
        out = os.path.join(args.workdir, "ml100k.h5")
        subprocess.run([args.shardrec, "data", "convert", "--format", "movielens", "--input", ml,
                        "--output", out], check=True, capture_output=True)
        users, items, events, raw_items = check(out, stats_of(args.shardrec, out))
        assert (users, items, events) == (943, 1682, 100000), (users, items, events)
        with h5py.File(out, "r") as f:
            assert strings(f["items/titles"], 0, 1) == ["Toy Story (1995)"]
        print("ml-100k:", users, items, events)
    else:
        print("ml-100k: skipped (../shared/data not found)")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    sys.exit(main())
