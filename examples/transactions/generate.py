#!/usr/bin/env python3
"""Writes the bundled example: card transactions with a learnable fraud signal.

Fraud is likely when a large amount meets a risky merchant category, or at night in an
online shop; a few labels are flipped so the task is not trivially separable. Standard
library only, deterministic for a given seed.
"""
import json
import random
import sys

MERCHANTS = ["books", "coffee", "grocery", "electronics", "travel", "online_shop", "fuel", "jewelry"]
RISKY = {"electronics", "jewelry", "online_shop"}
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES"]


def record(rng):
    merchant = rng.choice(MERCHANTS)
    amount = round(rng.lognormvariate(3.2 if merchant not in RISKY else 4.0, 1.0), 2)
    hour = rng.randrange(24)
    country = rng.choice(COUNTRIES)
    card_present = rng.random() < (0.3 if merchant == "online_shop" else 0.8)
    score = 0.0
    score += 2.2 if (merchant in RISKY and amount > 150) else 0.0
    score += 1.8 if (merchant == "online_shop" and (hour < 5 or hour >= 23)) else 0.0
    score += 0.8 if not card_present else 0.0
    fraud = score + rng.gauss(0, 0.7) > 2.0
    r = {
        "amount": amount,
        "merchant": merchant,
        "hour": hour,
        "country": country,
        "card_present": card_present,
        "fraud": "yes" if fraud else "no",
    }
    if rng.random() < 0.03:
        r["country"] = None  # real data has gaps
    return r


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    rng = random.Random(seed)
    for _ in range(n):
        print(json.dumps(record(rng), separators=(",", ":")))


if __name__ == "__main__":
    main()
