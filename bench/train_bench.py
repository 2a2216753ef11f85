#!/usr/bin/env python3
"""Training-step benchmark: ShardRec against a straightforward eager PyTorch implementation of the
same model (bench/eager_twotower.py), one after the other in one run, on the same data, the same
number of sequences, the same model size and loss, both with every core.

Rows (when the data is there; ML-100K and Video Games come from --shared-data):
  ml100k   MovieLens 100K, full softmax, max-len 200, batch 128 (configs/ml100k.yaml)
  video    Amazon Video Games, full softmax, max-len 50, batch 256
  video    Amazon Video Games, sampled softmax (512 negatives), max-len 50, batch 256
  synth1m  synthetic, 1,000,000 items, sampled softmax (512 negatives), max-len 50, batch 256

The eager side runs twice: as PyTorch users usually write it (logits at every padded position,
padding ignored by the loss: "eager") and with the real positions gathered first ("eager, real
positions only"). ShardRec runs in float32 and in bfloat16. Ratios are ShardRec / eager, each
measured here. Then 1 -> 2 rank scaling of ShardRec on Video Games: one rank on one core against two
ranks under mpirun on one core each, with the same global batch (strong) and with the same batch
per rank (weak), beside two independent one-core runs at once (what the two cores deliver
together, the ceiling for any 2-rank run here) and one rank on every core.
Prints a Markdown table; --out also writes it.

  /opt/shardrec/py/bin/python bench/train_bench.py --shardrec build/shardrec
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def shardrec_rate(binary, data, work, row, precision, ranks=1, one_core=False):
    run_dir = os.path.join(work, f"run-{row['name']}-{row['loss']}-{precision}-{ranks}-{row['batch']}"
                                 f"{'-1core' if one_core else ''}")
    cmd = [binary, "train", "--data", data, "--run-dir", run_dir, "--max-steps", str(row["steps"]),
           "--batch-size", str(row["batch"]), "--max-len", str(row["max_len"]), "--dim", "64", "--blocks", "2",
           "--heads", "1", "--dropout", str(row["dropout"]), "--loss", row["loss"], "--negatives", "512",
           "--temperature", "0.05", "--eval-every", "0", "--checkpoint-every", "0", "--precision", precision,
           "--log-every", "1000", "--context=false"]  # the eager twin has no context features
    env = None
    if ranks > 1:
        cmd = [os.path.join(ROOT, "launch", "mpirun.sh"), "-np", str(ranks)] + cmd
    elif one_core:
        cmd = ["taskset", "-c", "0"] + cmd
        env = dict(os.environ, OMP_NUM_THREADS="1")
    out = sh(cmd, env)
    m = re.search(r"trained (\d+) steps .*?, ([0-9.]+) sequences/s", out)
    if not m:
        sys.exit(f"no summary line in:\n{out}")
    return float(m.group(2))


def two_independent_rates(binary, data, work, row):
    """Two 1-rank runs at once, one per core: what two cores deliver together to independent work
    (shared caches and memory bandwidth included), the ceiling of any 2-rank run on this machine."""
    procs = []
    for core in (0, 1):
        run_dir = os.path.join(work, f"run-independent-{row['loss']}-{core}")
        cmd = ["taskset", "-c", str(core), binary, "train", "--data", data, "--run-dir", run_dir,
               "--max-steps", str(row["steps"]), "--batch-size", str(row["batch"]), "--max-len", str(row["max_len"]),
               "--dim", "64", "--blocks", "2", "--heads", "1", "--dropout", str(row["dropout"]), "--loss", row["loss"],
               "--negatives", "512", "--eval-every", "0", "--checkpoint-every", "0", "--log-every", "1000",
               "--context=false"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1")))
    total = 0.0
    for p in procs:
        out = p.communicate()[0]
        total += float(re.search(r"trained .*?, ([0-9.]+) sequences/s", out).group(1))
    return total


def eager_rate(python, data, row, positions):
    out = sh([python, os.path.join(ROOT, "bench", "eager_twotower.py"), "--data", data,
              "--sequences", str(row["steps"] * row["batch"]), "--batch-size", str(row["batch"]),
              "--max-len", str(row["max_len"]), "--dropout", str(row["dropout"]), "--loss", row["loss"],
              "--negatives", "512", "--positions", positions])
    return json.loads(out.strip().splitlines()[-1])["sequences_per_second"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shardrec", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--shared-data", default=os.environ.get("SHARDREC_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--rows", default="ml100k,video-full,video-sampled,synth1m,scaling")
    ap.add_argument("--out")
    a = ap.parse_args()
    wanted = set(a.rows.split(","))
    work = tempfile.mkdtemp(prefix="train_bench.")
    data = {}
    ml = os.path.join(a.shared_data, "ml-100k")
    if os.path.isdir(ml):
        data["ml100k"] = os.path.join(work, "ml100k.h5")
        sh([a.shardrec, "data", "convert", "--format", "movielens", "--input", ml, "--output", data["ml100k"]])
    video = os.path.join(a.shared_data, "amazon-video-games-sasrec", "Video.txt")
    if os.path.isfile(video):
        data["video"] = os.path.join(work, "video.h5")
        sh([a.shardrec, "data", "convert", "--format", "seq", "--input", video, "--output", data["video"]])
    if "synth1m" in wanted:
        data["synth1m"] = os.path.join(work, "synth1m.h5")
        sh([a.shardrec, "data", "synth", "--output", data["synth1m"], "--users", "100000", "--items", "1000000",
            "--events", "2000000", "--seed", "7"])
    rows = [
        dict(key="ml100k", name="ml100k", loss="full", max_len=200, batch=128, dropout=0.2, steps=16),
        dict(key="video-full", name="video", loss="full", max_len=50, batch=256, dropout=0.3, steps=24),
        dict(key="video-sampled", name="video", loss="sampled", max_len=50, batch=256, dropout=0.3, steps=48),
        dict(key="synth1m", name="synth1m", loss="sampled", max_len=50, batch=256, dropout=0.2, steps=16),
    ]
    lines = ["| data | loss | max-len | sequences | eager | eager, real positions only | ShardRec float32 | "
             "ShardRec bfloat16 | float32 / eager | float32 / eager-real | bfloat16 / eager | bfloat16 / eager-real |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["key"] not in wanted or row["name"] not in data:
            print(f"skipped {row['key']}: no data", file=sys.stderr)
            continue
        d = data[row["name"]]
        eager = eager_rate(a.python, d, row, "all")
        real = eager_rate(a.python, d, row, "real")
        f32 = shardrec_rate(a.shardrec, d, work, row, "float32")
        bf16 = shardrec_rate(a.shardrec, d, work, row, "bfloat16")
        lines.append(f"| {row['name']} | {row['loss']} | {row['max_len']} | {row['steps'] * row['batch']} | "
                     f"{eager:.0f} | {real:.0f} | {f32:.0f} | {bf16:.0f} | {f32 / eager:.2f}x | {f32 / real:.2f}x | "
                     f"{bf16 / eager:.2f}x | {bf16 / real:.2f}x |")
        print(lines[-1], file=sys.stderr)
    if "scaling" in wanted and "video" in data:
        # Scaling with the hardware: one rank on one core against two ranks on one core each
        # (mpirun binds each rank to a core). One rank on every core is shown for reference.
        # Two ways to count: the same global batch split over the ranks (strong scaling: each rank
        # does half the rows of a step), and the same batch per rank (weak scaling, how data-parallel
        # training is scaled in practice: twice the global batch, each rank's step unchanged).
        lines += ["", "| data | loss | sequences | 1 rank, 1 core | 2 ranks, 1 core each, same global batch (mpirun) | "
                      "scaling | 2 ranks, same batch per rank | scaling | "
                      "two independent 1-core runs at once (sum) | their scaling (the machine's ceiling) | "
                      "1 rank, all cores |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for loss in ("sampled", "full"):
            row = dict(key="scaling", name="video", loss=loss, max_len=50, batch=256, dropout=0.3,
                       steps=96 if loss == "sampled" else 24)
            one = shardrec_rate(a.shardrec, data["video"], work, row, "float32", one_core=True)
            two = shardrec_rate(a.shardrec, data["video"], work, row, "float32", ranks=2)
            weak_row = dict(row, batch=row["batch"] * 2, steps=row["steps"] // 2)
            weak = shardrec_rate(a.shardrec, data["video"], work, weak_row, "float32", ranks=2)
            every = shardrec_rate(a.shardrec, data["video"], work, row, "float32")
            ceiling = two_independent_rates(a.shardrec, data["video"], work, row)
            lines.append(f"| video | {loss} | {row['steps'] * row['batch']} | {one:.0f} | {two:.0f} | {two / one:.2f}x | "
                         f"{weak:.0f} | {weak / one:.2f}x | {ceiling:.0f} | {ceiling / one:.2f}x | {every:.0f} |")
            print(lines[-1], file=sys.stderr)
    table = "\n".join(lines)
    print(table)
    if a.out:
        with open(a.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
