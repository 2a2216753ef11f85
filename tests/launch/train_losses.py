#!/usr/bin/env python3
"""Prints the training losses a run logged in RUN/metrics.jsonl, one "step loss" line each at full
precision (repr), for the launch checks that compare two runs bitwise."""
import json
import sys

for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["split"] == "train":
        print(r["step"], repr(r["loss"]))
