#!/usr/bin/env python3
"""Deterministic 60/20/20 split of a JSON Lines file.

Usage: split.py INPUT.jsonl OUTDIR

Non-blank line i (0-based) goes to test.jsonl if i % 5 == 0, validate.jsonl if
i % 5 == 1, otherwise train.jsonl. Lines are copied verbatim.
"""
import os
import sys


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: split.py INPUT.jsonl OUTDIR\n")
        return 2
    src, outdir = argv[1], argv[2]
    os.makedirs(outdir, exist_ok=True)
    names = ("test", "validate", "train")
    outs = {n: open(os.path.join(outdir, n + ".jsonl"), "w", encoding="utf-8", newline="")
            for n in names}
    counts = dict.fromkeys(names, 0)
    try:
        i = 0
        with open(src, "r", encoding="utf-8", newline="") as f:
            for line in f:
                if not line.strip():
                    continue
                r = i % 5
                name = "test" if r == 0 else "validate" if r == 1 else "train"
                if not line.endswith("\n"):
                    line += "\n"
                outs[name].write(line)
                counts[name] += 1
                i += 1
    finally:
        for o in outs.values():
            o.close()
    sys.stderr.write("split %s: train=%d validate=%d test=%d\n"
                     % (src, counts["train"], counts["validate"], counts["test"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
