#!/usr/bin/env python3
"""Data-path benchmark: `shardrec data convert` and `shardrec data synth`.

Every figure comes with a baseline measured in the same run:
  convert  vs a straightforward Python converter of the same file (parse, intern ids, sort by
           user and time), i.e. what a user would otherwise write;
  synth    peak memory vs the process floor (`shardrec help`, the binary with its libraries
           loaded) and vs the size of the events it wrote (so "bounded memory" is visible).
Prints a Markdown table; --out also writes it to a file.

  python3 bench/data_bench.py --shardrec build/shardrec [--items 1000000 --events 10000000]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time


def run(cmd):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout) of that child alone."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit(f"failed ({status}): {' '.join(cmd)}\n{err.read().decode()}")
        return secs, usage.ru_maxrss / 1024.0, out.read().decode()


def work_seconds(stdout):
    """The command's own timing ("... in 1.23 s"), without process start-up."""
    m = re.search(r" in ([0-9.]+) s ", stdout)
    return float(m.group(1))


def python_convert(path, pairs):
    """Baseline: plain Python reading of 'user item' pairs or 'user,item,timestamp' CSV."""
    t = time.perf_counter()
    users, items, events = {}, {}, []
    with open(path) as f:
        if not pairs:
            next(f)
        for n, line in enumerate(f):
            parts = line.split() if pairs else line.rstrip("\n").split(",")
            u = users.setdefault(parts[0], len(users))
            i = items.setdefault(parts[1], len(items))
            events.append((u, int(parts[2]) if len(parts) > 2 else 0, n, i))
    events.sort()
    return time.perf_counter() - t, len(events)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shardrec", required=True)
    ap.add_argument("--users", type=int, default=500000)
    ap.add_argument("--items", type=int, default=1000000)
    ap.add_argument("--events", type=int, default=10000000)
    ap.add_argument("--csv-events", type=int, default=2000000, help="events in the CSV convert test")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        floor_s, floor_mb, _ = run([args.shardrec, "help"])
        # synth at the requested scale
        out = os.path.join(tmp, "synth.h5")
        wall, mb, so = run([args.shardrec, "data", "synth", "--output", out, "--users", str(args.users),
                        "--items", str(args.items), "--events", str(args.events)])
        secs = work_seconds(so)
        raw_mb = args.events * (4 + 8) / 2**20  # int32 item + int64 timestamp per event
        rows.append(("data synth", f"{args.items:,} items x {args.events:,} events",
                     f"{args.events / secs:,.0f}", f"{secs:.1f}",
                     f"{mb:.0f} MiB peak; {mb - floor_mb:.0f} MiB above the {floor_mb:.0f} MiB process "
                     f"floor = {(mb - floor_mb) / raw_mb:.3f} x the {raw_mb:.0f} MiB of events written"))
        # convert: a synthetic CSV (user,item,timestamp)
        small = os.path.join(tmp, "small.h5")
        n_users = max(1, args.csv_events // 20)
        run([args.shardrec, "data", "synth", "--output", small, "--users", str(n_users),
             "--items", str(max(1000, n_users // 2)), "--events", str(args.csv_events)])
        csv = os.path.join(tmp, "events.csv")
        run([args.shardrec, "demo", "--workdir", os.path.join(tmp, "demo"), "--users", str(n_users),
             "--items", str(max(1000, n_users // 2)), "--events", str(args.csv_events)])
        os.replace(os.path.join(tmp, "demo", "synth_events.csv"), csv)
        inputs = [("csv", csv, False, f"synthetic CSV, {args.csv_events:,} events")]
        here = os.path.dirname(os.path.abspath(__file__))
        video = os.path.join(os.environ.get("SHARDREC_DATA", os.path.join(here, "..", "..", "shared", "data")),
                             "amazon-video-games-sasrec", "Video.txt")
        if os.path.exists(video):
            inputs.append(("seq", video, True, "Amazon Video Games (SASRec pairs), 287,107 events"))
        for fmt, path, pairs, what in inputs:
            wall, mb, so = run([args.shardrec, "data", "convert", "--format", fmt, "--input", path,
                                "--output", os.path.join(tmp, "c.h5")])
            secs = work_seconds(so)
            base_s, n = python_convert(path, pairs)
            rows.append((f"data convert --format {fmt}", what, f"{n / secs:,.0f}", f"{secs:.2f}",
                         f"{base_s / secs:.1f} x plain Python parse+sort without writing ({n / base_s:,.0f} "
                         f"events/s); {mb:.0f} MiB peak"))
    rows.append(("process start-up", "`shardrec help`", "", f"{floor_s:.2f}",
                 f"{floor_mb:.0f} MiB: the binary with LibTorch loaded (not in the figures above)"))
    lines = ["| command | input | events/s | seconds | against the baseline |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
