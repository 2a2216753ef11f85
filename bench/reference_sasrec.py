#!/usr/bin/env python3
"""A plain SASRec with full-softmax cross-entropy: the quality floor ShardRec's model must clear.

Independent of ShardRec's code (it shares nothing with model/ or train/), it reads a ShardRec dataset
file (docs/formats.md) with h5py and follows ShardRec's protocol exactly (io/reader.h,
eval/evaluate.cc):
  - a user with n >= 3 events trains on the first n - 2, validates on event n - 2 given the events
    before it, and is tested on event n - 1 given all events before it; a user with fewer events
    only trains (when it has at least 2);
  - training inputs are the last max_len + 1 training events (next-item targets at every position);
    evaluation histories are the last max_len events before the target;
  - full ranking over the whole catalogue, with the user's earlier items (except the target) removed;
    ties rank by item id; HR@K, NDCG@K and MRR as in eval/metrics.cc.

The model is textbook SASRec (Kang & McAuley, ICDM 2018, in its common PyTorch form): left-padded
sequences, item embeddings scaled by sqrt(d) plus learned absolute positions (so the newest event
always sits at the last position), dropout, blocks of [LayerNorm -> causal multi-head attention with
the normed input as residual -> LayerNorm -> point-wise ReLU feed-forward with residual], padding
zeroed after every block, a final LayerNorm, and dot-product scores against the same item
embeddings. Trained with cross-entropy over the full catalogue at every position (as in Klenitskiy &
Vasilev, RecSys 2023), Adam, early stopping on validation NDCG@10; the test metrics reported are those
of the best validation epoch.

Prints one JSON line per epoch on stderr and the final result on stdout:
  {"best_epoch": E, "valid": {...}, "test": {...}, "seconds": S, "sequences_per_second": R}
"""
import argparse
import json
import math
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    with h5py.File(path, "r") as f:
        off = f["/users/event_offsets"][:].astype(np.int64)
        items = f["/events/item"][:].astype(np.int64) + 1  # 0 = padding
        num_items = int(f.attrs["num_items"])
    return off, items, num_items


def left_pad(rows, width):
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        r = r[-width:]
        if len(r):
            out[i, width - len(r):] = r
    return out


def splits(off, items, max_len):
    train, evals = [], {"valid": ([], []), "test": ([], [])}
    for u in range(len(off) - 1):
        b, e = int(off[u]), int(off[u + 1])
        n = e - b
        end = e - 2 if n >= 3 else e
        if end - b >= 2:
            train.append(items[max(b, end - max_len - 1):end])
        if n >= 3:
            for name, t in (("valid", e - 2), ("test", e - 1)):
                evals[name][0].append(items[b:t])
                evals[name][1].append(int(items[t]))
    return train, evals


class Block(nn.Module):
    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.ln_attn = nn.LayerNorm(dim, eps=1e-8)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ln_ff = nn.LayerNorm(dim, eps=1e-8)
        self.ff1, self.ff2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, causal, keep):
        q = self.ln_attn(x)
        x = q + self.attn(q, x, x, attn_mask=causal, need_weights=False)[0]
        x = self.ln_ff(x)
        x = x + self.dropout(self.ff2(self.dropout(F.relu(self.ff1(x)))))
        return x * keep


class SASRec(nn.Module):
    def __init__(self, num_items, max_len, dim, blocks, heads, dropout):
        super().__init__()
        self.items = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(blocks))
        self.ln = nn.LayerNorm(dim, eps=1e-8)
        self.dim = dim
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)

    def forward(self, seqs):  # [B x L] left-padded -> [B x L x d]
        length = seqs.size(1)
        x = self.items(seqs) * math.sqrt(self.dim) + self.positions.weight[:length].unsqueeze(0)
        keep = (seqs > 0).unsqueeze(-1).to(x.dtype)
        x = self.dropout(x) * keep
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        for block in self.blocks:
            x = block(x, causal, keep)
        return self.ln(x)

    def scores(self, feats):  # [N x d] -> [N x I] (item ids 0 .. I-1)
        return feats @ self.items.weight[1:].t()


@torch.no_grad()
def evaluate(model, histories, targets, max_len, batch=512):
    model.eval()
    ranks, top10 = [], []
    for s in range(0, len(histories), batch):
        h = histories[s:s + batch]
        t = torch.tensor(targets[s:s + batch]) - 1
        scores = model.scores(model(torch.from_numpy(left_pad(h, max_len)))[:, -1])
        for i, hist in enumerate(h):
            seen = torch.from_numpy(np.unique(hist) - 1)
            seen = seen[seen != t[i]]
            scores[i, seen] = -math.inf
        st = scores.gather(1, t.unsqueeze(1))
        ids = torch.arange(scores.size(1)).unsqueeze(0)
        ranks.append(((scores > st) | ((scores == st) & (ids < t.unsqueeze(1)))).sum(1))
        top10.append(scores.topk(10, dim=1).indices)
    model.train()
    r = torch.cat(ranks).double()
    out = {"users": len(histories), "mrr": float((1.0 / (r + 1)).mean())}
    for k in (10, 50, 200):
        hit = r < k
        out[f"hr@{k}"] = float(hit.double().mean())
        out[f"ndcg@{k}"] = float(torch.where(hit, 1.0 / torch.log2(r + 2), torch.zeros_like(r)).mean())
    out["coverage@10"] = float(torch.cat(top10).unique().numel() / (model.items.num_embeddings - 1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a ShardRec dataset file")
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=10, help="validations without improvement before stopping")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    off, items, num_items = load(a.data)
    train, evals = splits(off, items, a.max_len)
    inputs = left_pad([s[:-1] for s in train], a.max_len)
    labels = left_pad([s[1:] for s in train], a.max_len)
    model = SASRec(num_items, a.max_len, a.dim, a.blocks, a.heads, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.98))
    best, best_epoch, since, start, seen = None, 0, 0, time.time(), 0
    train_seconds = 0.0
    for epoch in range(1, a.epochs + 1):
        t0 = time.time()
        order = rng.permutation(len(train))
        total = 0.0
        for s in range(0, len(order), a.batch_size):
            idx = order[s:s + a.batch_size]
            x, y = torch.from_numpy(inputs[idx]), torch.from_numpy(labels[idx])
            feats = model(x)
            mask = y > 0
            loss = F.cross_entropy(model.scores(feats[mask]), y[mask] - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        train_seconds += time.time() - t0
        valid = evaluate(model, *evals["valid"], a.max_len)
        line = {"epoch": epoch, "loss": total / len(order), "valid_ndcg@10": valid["ndcg@10"],
                "valid_hr@10": valid["hr@10"]}
        if best is None or valid["ndcg@10"] > best[0]["ndcg@10"]:
            best = (valid, evaluate(model, *evals["test"], a.max_len))
            best_epoch, since = epoch, 0
            line.update({"test_hr@10": best[1]["hr@10"], "test_ndcg@10": best[1]["ndcg@10"]})
        else:
            since += 1
        line["seconds"] = round(time.time() - start, 1)
        print(json.dumps(line), file=sys.stderr, flush=True)  # test figures on epochs that improve validation
        if since >= a.patience:
            break
    print(json.dumps({"best_epoch": best_epoch, "epochs": epoch, "valid": best[0], "test": best[1],
                      "seconds": round(time.time() - start, 1),
                      "sequences_per_second": round(seen / max(train_seconds, 1e-9), 1)}))


if __name__ == "__main__":
    main()
