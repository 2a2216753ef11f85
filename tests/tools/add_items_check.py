#!/usr/bin/env python3
"""`shardrec export --add-items`: an item new since training, with a title only, is recalled for a
history of items with similar titles.

The flow a user follows: sequences and an item catalogue (tab-separated id, title) are converted
with `data convert --items`, the titles are encoded by tools/embed_item_text.py, a model trains with
id dropout; later the catalogue gains items, the same two steps make the new catalogue, and the
export embeds the new items from their titles without retraining. Data: `shardrec data synth`,
whose titles are words of each item's topic, written out as a sequence file and a catalogue.
Oracle: the new item's title is made of the words of one topic; a history of that topic's items
must recall it in the top 20 of the whole catalogue (242 items), and a history of another topic must not.
"""
import argparse
import collections
import os
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EMBED = os.path.join(HERE, "..", "..", "tools", "embed_item_text.py")


def strings(group):
    off = group["offsets"][...]
    raw = group["bytes"][...].tobytes()
    return [raw[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shardrec", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    w = a.workdir
    subprocess.run(["rm", "-rf", w], check=True)
    os.makedirs(w)
    env = dict(os.environ, HF_HUB_OFFLINE="1")

    def run(*args):
        r = subprocess.run(list(args), capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"failed: {' '.join(args)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r.stdout

    def sh(*args):
        return run(a.shardrec, *args)

    synth = os.path.join(w, "synth.h5")
    sh("data", "synth", "--output", synth, "--users", "800", "--items", "240", "--events", "16000", "--topics", "8",
       "--content-dim", "0", "--categories", "0", "--seed", "3")
    with h5py.File(synth, "r") as f:
        off = f["users/event_offsets"][...]
        items = f["events/item"][...]
        item_ids = strings(f["items/raw_ids"])
        titles = strings(f["items/titles"])
        users = strings(f["users/raw_ids"])
    with open(os.path.join(w, "seq.txt"), "w") as out:
        for u in range(len(users)):
            out.write(users[u] + " " + " ".join(item_ids[i] for i in items[off[u]:off[u + 1]]) + "\n")

    def catalogue(path, extra):
        with open(path, "w") as out:
            out.write("item\ttitle\n")
            for i, t in zip(item_ids, titles):
                out.write(f"{i}\t{t}\n")
            for i, t in extra:
                out.write(f"{i}\t{t}\n")

    # The generator's titles (io/synth.cc): two words of the item's topic (topic t owns theme words
    # 4t .. 4t+3 of its list) or, one time in five each, any theme word; then a form word and a number.
    topic_words = ["ocean", "harbor", "storm", "island"]     # topic 0
    other_words = ["galaxy", "planet", "rocket", "star"]     # topic 2
    def of(ws):
        return [item_ids[i] for i, t in enumerate(titles) if all(x in ws for x in t.split()[:2])]
    topic_items, other_items = of(topic_words), of(other_words)
    assert len(topic_items) >= 5 and len(other_items) >= 5, (topic_items, other_items)

    train_data = os.path.join(w, "train.h5")
    catalogue(os.path.join(w, "items.tsv"), [])
    sh("data", "convert", "--format", "seq", "--input", os.path.join(w, "seq.txt"), "--items", os.path.join(w, "items.tsv"),
       "--output", train_data)
    run(sys.executable, EMBED, "--data", train_data, "--text", "title")
    runs = os.path.join(w, "run")
    sh("train", "--data", train_data, "--run-dir", runs, "--dim", "32", "--blocks", "1", "--max-len", "20", "--epochs", "8",
       "--eval-every", "0", "--id-dropout", "0.5", "--score", "dot", "--dropout", "0.2", "--untrained-items", "neighbours")

    # Later: the catalogue gains an item with a title only (its words from the topic), and another.
    new_title = "storm harbor tales 9001"
    later = os.path.join(w, "later.h5")
    catalogue(os.path.join(w, "later.tsv"), [("9001", new_title), ("9002", "rocket galaxy diary 9002")])
    sh("data", "convert", "--format", "seq", "--input", os.path.join(w, "seq.txt"), "--items", os.path.join(w, "later.tsv"),
       "--output", later)
    run(sys.executable, EMBED, "--data", later, "--text", "title")
    exports = os.path.join(w, "exports")
    out = sh("export", "--run-dir", runs, "--out", exports, "--add-items", later)
    assert "2 items new since training" in out, out
    with h5py.File(os.path.join(exports, open(os.path.join(exports, "LATEST")).read().strip(), "items-0.h5"), "r") as f:
        exported = strings(f["raw_ids"])
    assert "9001" in exported and "9002" in exported, exported[-5:]
    # Evaluating through this index against the training data is refused: its rows are another catalogue.
    r = subprocess.run([a.shardrec, "eval", "--run-dir", runs, "--ann", "--export", exports], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "--add-items" in r.stderr + r.stdout, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])

    def top20(history):
        q = sh("query", "--export", exports, "--exact", "--history", ",".join(history), "--k", "20", "--json")
        import json
        return [h["item"] for h in json.loads(q)["items"]]

    hits = top20(topic_items[:5])
    assert "9001" in hits, (new_title, topic_items[:5], hits)
    hits_other = top20(other_items[:5])
    assert "9001" not in hits_other, (new_title, other_items[:5], hits_other)
    assert "9002" in hits_other, ("rocket galaxy diary 9002", other_items[:5], hits_other)
    assert "9002" not in hits, hits
    print(f"ok: '{new_title}' (added after training) is in the top 20 of 242 items for a history of its topic: {hits}")


if __name__ == "__main__":
    main()
