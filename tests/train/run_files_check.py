#!/usr/bin/env python3
"""A training run's files, read the way people and programs read them: config.yaml, metrics.jsonl
(one JSON record per logged step or evaluation), TensorBoard event files (through TensorBoard's
own reader, i.e. what `tensorboard --logdir RUN` shows) and eval.json."""
import argparse
import glob
import json
import os
import subprocess
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shardrec", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    data = os.path.join(a.workdir, "s.h5")
    run = os.path.join(a.workdir, "run")
    subprocess.run(["rm", "-rf", run], check=True)
    sh = a.shardrec
    subprocess.run([sh, "data", "synth", "--output", data, "--users", "300", "--items", "200", "--events", "4000"],
                   check=True, capture_output=True)
    subprocess.run([sh, "train", "--data", data, "--run-dir", run, "--epochs", "2", "--batch-size", "64",
                    "--dim", "16", "--blocks", "1", "--max-len", "10", "--log-every", "0"], check=True, capture_output=True)
    cfg = open(os.path.join(run, "config.yaml")).read()
    assert "epochs: 2" in cfg and "dim: 16" in cfg and "max-len: 10" in cfg, cfg
    records = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    assert train and all({"step", "epoch", "loss"} <= set(r) for r in train), records[:2]
    assert len(valid) == 2 and all({"step", "epoch", "ndcg@10", "hr@10"} <= set(r) for r in valid), valid
    events = glob.glob(os.path.join(run, "events.out.tfevents.*"))
    assert len(events) == 1, events
    ea = EventAccumulator(events[0])
    ea.Reload()
    tags = ea.Tags()["scalars"]
    assert "train/loss" in tags and "valid/ndcg@10" in tags, tags
    losses = [e.value for e in ea.Scalars("train/loss")]
    assert len(losses) == len(train) and abs(losses[0] - train[0]["loss"]) < 1e-4, (losses, train[0])
    out = subprocess.run([sh, "eval", "--run-dir", run], check=True, capture_output=True, text=True).stdout
    ev = json.load(open(os.path.join(run, "eval.json")))
    for k in ["hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200", "mrr", "coverage@10", "novelty@10",
              "users", "items", "protocol"]:
        assert k in ev, k
    assert ev["users"] == 300 and ev["items"] == 200, ev
    assert json.loads(out.strip().splitlines()[-1])["hr@10"] == ev["hr@10"]
    print("1 passed, 0 failed")


if __name__ == "__main__":
    sys.exit(main())
