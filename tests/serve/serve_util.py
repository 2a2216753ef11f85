"""What the server checks (tests/serve/*_check.py) share: a fresh work directory holding a synthetic
dataset and short training runs of it, and `shardrec serve` started on a free loopback port."""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import h5py
import numpy as np


def fresh_runs(run, work, users, items, events, runs=(("a", "1"), ("b", "2"))):
    """Empties `work`, then `run`s (a shardrec runner of the caller's) `data synth` into s.h5 and a
    20-step training run of dim 16 per (run directory, seed)."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    run("data", "synth", "--output", "s.h5", "--users", str(users), "--items", str(items), "--events", str(events))
    for run_dir, seed in runs:
        run("train", "--data", "s.h5", "--run-dir", run_dir, "--max-steps", "20", "--dim", "16", "--blocks", "1",
            "--max-len", "10", "--log-every", "0", "--seed", seed)


def start_server(binary, work, *flags):
    """`shardrec serve --export-root S --port 0 FLAGS` in `work`: (the process, the port it printed)."""
    server = subprocess.Popen([binary, "serve", "--export-root", "S", "--port", "0", *flags], cwd=work,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = server.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", first)
    if not m:
        server.kill()
        sys.exit(f"FAIL: serve {' '.join(flags)}: no address in {first!r}: {server.stderr.read()[-2000:]}")
    return server, int(m.group(1))


def post_json(port, path, body, timeout=30, raw=None):
    """POST `body` as JSON (or the bytes `raw`) to 127.0.0.1:`port` `path`: (status, the decoded JSON answer)."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def model_arrays(ck):
    """Every dense parameter and embedding row of a model or checkpoint directory, by name: each table
    as one [rows x width] array over every rank's shard (NaN where no shard holds a value)."""
    out = {}
    with h5py.File(os.path.join(ck, "dense.h5"), "r") as f:
        f["/dense"].visititems(lambda n, d: out.__setitem__("dense/" + n, d[:]) if isinstance(d, h5py.Dataset) else None)
    parts = {}
    for name in sorted(os.listdir(ck)):
        if name.startswith("embeddings-rank"):
            with h5py.File(os.path.join(ck, name), "r") as f:
                for t in f.get("/tables", {}):
                    g = f[f"/tables/{t}"]
                    parts.setdefault(t, []).append((g["rows"][:], g["vectors"][:], int(g.attrs.get("col_begin", 0))))
    for t, pieces in parts.items():  # every rank's shard into one [rows x width] table
        n = max(int(r.max()) + 1 for r, _, _ in pieces if len(r))
        width = max(c + v.shape[1] for _, v, c in pieces)
        table = np.full((n, width), np.nan, dtype=np.float32)
        for rows, vec, col in pieces:
            table[rows, col:col + vec.shape[1]] = vec
        out["table/" + t] = table
    return out
