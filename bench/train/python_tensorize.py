#!/usr/bin/env python3
"""The "idiomatic Python tensorizer": the encode step json2vec replaces.

Reads JSON Lines with json.loads, fits per-field statistics (number mean/std,
category vocabularies), then turns records into per-field torch tensors in
batches of --batch-size with plain dict lookups into Python lists, the way a
typical PyTorch Dataset/collate_fn does it.

Cell states (as in json2vec): 0 valued, 1 null, 2 padded (key missing),
3 masked, 4 other (wrong type / non-finite). Numbers are z-scored with the
data's mean/std (clipped to +-50); categories map to vocabulary index, 0 = unknown.

Prints one JSON line:
  {"impl":"python","records":N,"seconds":...,"records_per_second":...}
where seconds covers reading + json.loads + stats + tensorizing (torch import
excluded); a breakdown is included.

Usage: python_tensorize.py --data FILE [--batch-size 256] [--threads 2]
"""
import argparse
import json
import math
import sys
import time

import torch

VALUED, NULL, PADDED, MASKED, OTHER = range(5)
N_STATES = 5
CLIP = 50.0
_MISSING = object()


def read_records(path):
    records = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records


def infer_types(records, limit=1000):
    """field -> "number" | "category", in first-seen key order."""
    types = {}
    for r in records[:limit]:
        for k, v in r.items():
            if v is None:
                types.setdefault(k, None)
            elif isinstance(v, str):
                types[k] = "category"
            elif isinstance(v, (int, float)) and types.get(k) != "category":
                types[k] = "number"
    return {k: (t or "category") for k, t in types.items()}


def number_of(v):
    """(state, float) for a number cell."""
    if v is _MISSING:
        return PADDED, 0.0
    if v is None:
        return NULL, 0.0
    if isinstance(v, bool):
        return VALUED, 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        x = float(v)
        if math.isnan(x):
            return NULL, 0.0
        return (VALUED, x) if math.isfinite(x) else (OTHER, 0.0)
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return OTHER, 0.0
        if math.isnan(x):
            return NULL, 0.0
        return (VALUED, x) if math.isfinite(x) else (OTHER, 0.0)
    return OTHER, 0.0


def category_of(v):
    """(state, label) for a category cell."""
    if v is _MISSING:
        return PADDED, None
    if v is None:
        return NULL, None
    if isinstance(v, str):
        return VALUED, v
    if isinstance(v, bool):
        return VALUED, "true" if v else "false"
    if isinstance(v, (int, float)):
        return VALUED, json.dumps(v)
    return OTHER, None


class Tensorizer:
    def __init__(self, types):
        self.types = dict(types)
        self.mean, self.std, self.vocab = {}, {}, {}

    def fit(self, records):
        for name, t in self.types.items():
            if t == "number":
                n = s = ss = 0.0
                for r in records:
                    st, x = number_of(r.get(name, _MISSING))
                    if st == VALUED:
                        n += 1
                        s += x
                        ss += x * x
                mean = s / n if n else 0.0
                var = (ss - n * mean * mean) / (n - 1) if n > 1 else 0.0
                self.mean[name] = mean
                self.std[name] = math.sqrt(var) if var > 1e-24 else 1.0
            else:
                vocab = {}
                for r in records:
                    st, label = category_of(r.get(name, _MISSING))
                    if st == VALUED and label not in vocab:
                        vocab[label] = len(vocab) + 1  # 0 = unknown
                self.vocab[name] = vocab
        return self

    def vocab_size(self, name):
        return len(self.vocab[name]) + 1

    def encode(self, batch):
        """dict field -> (state LongTensor [B], values FloatTensor [B] | indices LongTensor [B])."""
        out = {}
        for name, t in self.types.items():
            states, contents = [], []
            if t == "number":
                mean, std = self.mean[name], self.std[name]
                for r in batch:
                    st, x = number_of(r.get(name, _MISSING))
                    states.append(st)
                    if st == VALUED:
                        z = (x - mean) / std
                        contents.append(-CLIP if z < -CLIP else CLIP if z > CLIP else z)
                    else:
                        contents.append(0.0)
                out[name] = (torch.tensor(states, dtype=torch.long),
                             torch.tensor(contents, dtype=torch.float32))
            else:
                vocab = self.vocab[name]
                for r in batch:
                    st, label = category_of(r.get(name, _MISSING))
                    states.append(st)
                    contents.append(vocab.get(label, 0) if st == VALUED else 0)
                out[name] = (torch.tensor(states, dtype=torch.long),
                             torch.tensor(contents, dtype=torch.long))
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    records = read_records(args.data)
    t1 = time.perf_counter()
    tz = Tensorizer(infer_types(records)).fit(records)
    t2 = time.perf_counter()
    n_batches = 0
    for i in range(0, len(records), args.batch_size):
        tz.encode(records[i:i + args.batch_size])
        n_batches += 1
    t3 = time.perf_counter()
    seconds = t3 - t0
    print(json.dumps({
        "impl": "python", "records": len(records), "seconds": round(seconds, 4),
        "records_per_second": round(len(records) / seconds, 1),
        "read_parse_seconds": round(t1 - t0, 4), "fit_seconds": round(t2 - t1, 4),
        "tensorize_seconds": round(t3 - t2, 4),
        "tensorize_records_per_second": round(len(records) / (t3 - t2), 1),
        "batches": n_batches, "fields": len(tz.types)}, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    sys.exit(main())
