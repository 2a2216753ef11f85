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


def post_json(port, path, body, timeout=30):
    """POST `body` as JSON to 127.0.0.1:`port` `path`: (status, the decoded JSON answer)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
