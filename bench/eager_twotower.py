#!/usr/bin/env python3
"""A straightforward eager PyTorch implementation of ShardRec's two-tower model, for bench/train_bench.py.

The model is the same as model/two_tower.cc: an item tower (id embedding + mean-pooled category
embedding + projected content vector, summed and L2-normalised) and a causal pre-norm Transformer
user tower (learned positions, time-gap buckets, dropout, GELU feed-forward of 4x the width, final
LayerNorm, L2-normalised outputs), trained on next-item prediction at every position with a full
softmax over the catalogue or a sampled softmax (the global batch's targets + shared uniform
negatives, logQ-corrected), temperature-scaled. It is written the way a PyTorch user would write it:
sequences padded to max_len + 1, one nn.Module, Adam over every parameter (dense gradients for the
embedding tables), and (by default) logits computed at every position with padding ignored by the
loss (`--positions real` gathers the real positions first).

Reads the training split of a ShardRec dataset (docs/formats.md) with h5py: for a user with n >= 3
events the training events are the first n - 2, as in io/reader.h.

Prints one JSON line: {"sequences": N, "seconds": S, "sequences_per_second": R, "final_loss": L}.
"""
import argparse
import json
import math
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def gap_bucket(gaps, buckets):
    b = 1 + np.floor(np.log2(1.0 + np.maximum(gaps, 0) / 60.0)).astype(np.int64)
    b[gaps < 0] = 0
    return np.minimum(b, buckets - 1)


def load(path, max_len, time_buckets):
    with h5py.File(path, "r") as f:
        off = f["/users/event_offsets"][:]
        items = f["/events/item"][:].astype(np.int64)
        ts = f["/events/timestamp"][:] if f.attrs["has_timestamps"] else None
        num_items = int(f.attrs["num_items"])
        cats = None
        if "/items/categories/offsets" in f and int(f.attrs.get("num_categories", 0)) > 0:
            cats = (f["/items/categories/offsets"][:], f["/items/categories/values"][:].astype(np.int64),
                    int(f.attrs["num_categories"]))
        content = f["/items/content"][:] if "/items/content" in f else None
    seqs, gaps = [], []
    keep = max_len + 1
    for u in range(len(off) - 1):
        b, e = int(off[u]), int(off[u + 1])
        end = e - 2 if e - b >= 3 else e
        if end - b < 2:
            continue
        s = max(b, end - keep)
        seqs.append(items[s:end])
        if ts is not None and time_buckets > 0:
            g = np.zeros(end - s, dtype=np.int64)
            g[1:] = gap_bucket(np.diff(ts[s:end]), time_buckets)
            gaps.append(g)
    return seqs, gaps if gaps else None, num_items, cats, content


class Block(nn.Module):
    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, l, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        h = x + F.dropout(self.proj(att.transpose(1, 2).reshape(b, l, d)), self.dropout, self.training)
        return h + F.dropout(self.ff2(F.gelu(self.ff1(self.ln2(h)))), self.dropout, self.training)


class TwoTower(nn.Module):
    def __init__(self, num_items, dim, blocks, heads, max_len, dropout, time_buckets, cats, content):
        super().__init__()
        self.items = nn.Embedding(num_items, dim)
        nn.init.uniform_(self.items.weight, -1 / math.sqrt(dim), 1 / math.sqrt(dim))
        self.cats = None
        if cats is not None:
            offsets, values, n = cats
            self.cats = nn.EmbeddingBag(n, dim, mode="mean")
            nn.init.uniform_(self.cats.weight, -1 / math.sqrt(dim), 1 / math.sqrt(dim))
            self.register_buffer("cat_offsets", torch.from_numpy(offsets.astype(np.int64)))
            self.register_buffer("cat_values", torch.from_numpy(values))
        self.content = None
        if content is not None:
            self.register_buffer("content_vectors", torch.from_numpy(content))
            self.content = nn.Linear(content.shape[1], dim)
        self.positions = nn.Embedding(max_len + 1, dim)
        self.gaps = nn.Embedding(time_buckets, dim) if time_buckets > 0 else None
        self.blocks = nn.ModuleList([Block(dim, heads, dropout) for _ in range(blocks)])
        self.ln_final = nn.LayerNorm(dim)
        self.dropout = dropout

    def encode_items(self, ids):
        v = self.items(ids)
        if self.cats is not None:
            begin, end = self.cat_offsets[ids], self.cat_offsets[ids + 1]
            lengths = end - begin
            idx = torch.repeat_interleave(begin, lengths) + (
                torch.arange(int(lengths.sum())) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths))
            bag_offsets = torch.cumsum(lengths, 0) - lengths
            v = v + self.cats(self.cat_values[idx], bag_offsets)
        if self.content is not None:
            v = v + self.content(self.content_vectors[ids])
        return F.normalize(v, dim=-1)

    def encode_users(self, hist_vectors, gaps):
        l = hist_vectors.shape[1]
        x = hist_vectors + self.positions(torch.arange(l)).unsqueeze(0)
        if self.gaps is not None and gaps is not None:
            x = x + self.gaps(gaps)
        x = F.dropout(x, self.dropout, self.training)
        for blk in self.blocks:
            x = blk(x)
        return F.normalize(self.ln_final(x), dim=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--sequences", type=int, required=True, help="train on this many sequences (whole batches)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--time-buckets", type=int, default=16)
    ap.add_argument("--loss", choices=["full", "sampled"], default="full")
    ap.add_argument("--negatives", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--positions", choices=["all", "real"], default="all")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    seqs, gaps, num_items, cats, content = load(a.data, a.max_len, a.time_buckets)
    model = TwoTower(num_items, a.dim, a.blocks, a.heads, a.max_len, a.dropout, a.time_buckets, cats, content)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    counts = np.bincount(np.concatenate(seqs), minlength=num_items).astype(np.float64)
    pop = torch.from_numpy(counts / counts.sum()).float()
    width = a.max_len + 1
    steps = max(1, a.sequences // a.batch_size)
    order = rng.permutation(len(seqs))
    done, loss_value, start = 0, float("nan"), time.perf_counter()
    for step in range(steps):
        if (step + 1) * a.batch_size > len(order):
            order = np.concatenate([order, rng.permutation(len(seqs))])
        rows = order[step * a.batch_size:(step + 1) * a.batch_size]
        batch = np.full((len(rows), width), -1, dtype=np.int64)
        gap_batch = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            batch[i, :len(seqs[r])] = seqs[r]
            if gaps is not None:
                gap_batch[i, :len(seqs[r])] = gaps[r]
        batch = torch.from_numpy(batch)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        g = torch.from_numpy(gap_batch[:, :-1]) if gaps is not None else None
        mask = targets >= 0
        if a.loss == "full":
            all_items = model.encode_items(torch.arange(num_items))
            hist = all_items[inputs.clamp(min=0)]
            cand, tgt = all_items, targets
        else:
            hist = model.encode_items(inputs.clamp(min=0).reshape(-1)).view(*inputs.shape, -1)
            neg = torch.randint(0, num_items, (a.negatives,))
            ids = torch.unique(torch.cat([targets[mask], neg]))
            cand = model.encode_items(ids)
            tgt = torch.where(mask, torch.searchsorted(ids, targets.clamp(min=0)), torch.full_like(targets, -1))
        users = model.encode_users(hist, g)
        if a.positions == "real":
            users, tgt = users[mask], tgt[mask]
        logits = users @ cand.t() / a.temperature
        if a.loss == "sampled":
            logits = logits - (pop[ids] * int(mask.sum()) + a.negatives / num_items).log()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += len(rows)
        if step == steps - 1:
            loss_value = loss.item()
    seconds = time.perf_counter() - start
    print(json.dumps({"sequences": done, "seconds": seconds, "sequences_per_second": done / seconds,
                      "final_loss": loss_value, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
