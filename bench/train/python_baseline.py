#!/usr/bin/env python3
"""json2vec's model, re-implemented in plain PyTorch, to compare training throughput.

Whole-process timing: from process start (before importing torch) to trained
model, including reading/parsing the file, fitting statistics, tensorizing
every batch (idiomatic Python: dict lookups -> lists -> torch tensors, see
python_tensorize.py) and training.

Model (FT-Transformer-like, as json2vec):
  token(field) = field embedding [d] + state embedding (per field, 5 states)
                 + content embedding (zeroed unless the cell is valued):
      number:   periodic: 16 trainable frequencies c ~ N(0,1),
                [sin(2 pi c x), cos(2 pi c x)] -> Linear(32, d) -> GELU (--plr-activation)
      category: Embedding(V+1, d)   (0 = unknown)
  The target is not an input token.
  n_layers pre-LN blocks: x += Drop(MHSA(LN(x))); x += Drop(FFN(LN(x))), FFN = d->4d->GELU->d
  final LayerNorm; per decoded field a learned query [d] cross-attends over the tokens
  (multi-head, k/v Linear, out Linear), then head LN -> Linear(d,d) -> GELU ->
  Linear(d, 5 state logits + content) with content 1 (number) or V+1 (category).
  Loss = CE(state) + MSE(normalised content) for numbers, CE(state) + CE(class)
  for categories; content loss only on rows whose true state is valued.
  AdamW(lr 1e-3, wd 0.01), linear warmup over 5% of steps then cosine to 0.

Prints one JSON line:
  {"impl":"python","records":N,"epochs":E,"seconds":S,"records_per_second":N*E/S,"final_loss":L}

Usage:
  python_baseline.py --data FILE --target price [--epochs 1] [--batch-size 256]
      [--d-model 64] [--n-layers 2] [--n-heads 4] [--threads 2]
"""
import time

_T_START = time.perf_counter()  # before the heavy imports; interpreter start-up is ~tens of ms

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_tensorize import N_STATES, VALUED, Tensorizer, infer_types, read_records  # noqa: E402


class SelfAttention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        assert d % n_heads == 0, "d_model must be divisible by n_heads"
        self.h = n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):  # [B, T, d]
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.h), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        return self.out(y)


class Block(nn.Module):
    def __init__(self, d, n_heads, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = SelfAttention(d, n_heads)
        self.ln2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, 4 * d)
        self.ff2 = nn.Linear(4 * d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.ff2(F.gelu(self.ff1(self.ln2(x)))))


class Decoder(nn.Module):
    """A learned query cross-attends over the tokens; then the field's head."""

    def __init__(self, d, n_heads, content_width):
        super().__init__()
        self.h = n_heads
        self.query = nn.Parameter(torch.randn(d) * 0.02)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.head_norm = nn.LayerNorm(d)
        self.head_hidden = nn.Linear(d, d)
        self.head_out = nn.Linear(d, N_STATES + content_width)

    def forward(self, x):  # [B, T, d] -> [B, 5 + content]
        b, t, d = x.shape
        dh = d // self.h
        k, v = self.kv(x).view(b, t, 2, self.h, dh).permute(2, 0, 3, 1, 4)  # [B, H, T, dh]
        q = self.query.view(1, self.h, 1, dh)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh), dim=-1)  # [B, H, 1, T]
        y = self.out((att @ v).reshape(b, d))
        return self.head_out(F.gelu(self.head_hidden(self.head_norm(y))))


class NumberEmbedding(nn.Module):
    def __init__(self, d, n_frequencies=16, scale=1.0, activation="gelu"):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_frequencies) * scale)
        self.projection = nn.Linear(2 * n_frequencies, d)
        self.act = F.gelu if activation == "gelu" else F.relu

    def forward(self, x):  # [B] -> [B, d]
        angles = x.unsqueeze(1) * self.frequencies.unsqueeze(0) * (2 * math.pi)
        return self.act(self.projection(torch.cat([torch.sin(angles), torch.cos(angles)], 1)))


class Json2VecModel(nn.Module):
    def __init__(self, tz, target, d, n_layers, n_heads, dropout=0.1, plr_activation="gelu"):
        super().__init__()
        self.tz = tz
        self.target = target
        self.inputs = [f for f in tz.types if f != target]
        self.field_embedding = nn.Parameter(torch.randn(len(self.inputs), d) * 0.02)
        self.state_embedding = nn.ModuleDict({f: nn.Embedding(N_STATES, d) for f in self.inputs})
        self.content = nn.ModuleDict()
        for f in self.inputs:
            if tz.types[f] == "number":
                self.content[f] = NumberEmbedding(d, activation=plr_activation)
            else:
                self.content[f] = nn.Embedding(tz.vocab_size(f), d)
        self.blocks = nn.ModuleList([Block(d, n_heads, dropout) for _ in range(n_layers)])
        self.final_norm = nn.LayerNorm(d)
        width = 1 if tz.types[target] == "number" else tz.vocab_size(target)
        self.decoder = Decoder(d, n_heads, width)

    def forward(self, cells):
        tokens = []
        for i, f in enumerate(self.inputs):
            state, content = cells[f]
            valued = (state == VALUED).unsqueeze(1).to(torch.float32)
            tokens.append(self.field_embedding[i] + self.state_embedding[f](state)
                          + self.content[f](content) * valued)
        x = torch.stack(tokens, 1)  # [B, T, d]
        for block in self.blocks:
            x = block(x)
        return self.decoder(self.final_norm(x))

    def loss(self, out, cells):
        state, content = cells[self.target]
        loss = F.cross_entropy(out[:, :N_STATES], state)
        rows = (state == VALUED).nonzero().squeeze(1)
        if rows.numel():
            if self.tz.types[self.target] == "number":
                pred = out.index_select(0, rows)[:, N_STATES]
                loss = loss + F.mse_loss(pred, content.index_select(0, rows))
            else:
                loss = loss + F.cross_entropy(out.index_select(0, rows)[:, N_STATES:],
                                              content.index_select(0, rows))
        return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=float, default=0.05, help="warmup fraction of all steps")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--plr-activation", choices=["gelu", "relu"], default="gelu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    t_read = time.perf_counter()
    records = read_records(args.data)
    types = infer_types(records)
    if args.target not in types:
        sys.exit("python_baseline.py: target %r not in fields %s" % (args.target, list(types)))
    tz = Tensorizer(types).fit(records)
    t_fit = time.perf_counter()

    model = Json2VecModel(tz, args.target, args.d_model, args.n_layers, args.n_heads,
                          args.dropout, args.plr_activation)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = (len(records) + args.batch_size - 1) // args.batch_size
    total = steps_per_epoch * args.epochs
    warmup = max(1, int(round(args.warmup * total)))

    def lr_lambda(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    model.train()
    order = list(range(len(records)))
    loss_sum = 0.0
    for epoch in range(args.epochs):
        random.shuffle(order)
        loss_sum, n_seen = 0.0, 0
        for i in range(0, len(order), args.batch_size):
            batch = [records[j] for j in order[i:i + args.batch_size]]
            cells = tz.encode(batch)
            loss = model.loss(model(cells), cells)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(batch)
            n_seen += len(batch)
        loss_sum /= max(1, n_seen)
        print("epoch %d loss %.5f (%.1fs)" % (epoch, loss_sum, time.perf_counter() - _T_START),
              file=sys.stderr, flush=True)
    t_end = time.perf_counter()
    seconds = t_end - _T_START
    n = len(records)
    print(json.dumps({
        "impl": "python", "records": n, "epochs": args.epochs, "seconds": round(seconds, 3),
        "records_per_second": round(n * args.epochs / seconds, 1),
        "final_loss": round(loss_sum, 6),
        "startup_seconds": round(t_read - _T_START, 3),
        "read_fit_seconds": round(t_fit - t_read, 3),
        "train_seconds": round(t_end - t_fit, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": args.threads}, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
