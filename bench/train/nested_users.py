#!/usr/bin/env python3
"""Synthetic users with a transaction history: the nested training benchmark's data.
Each user: age, plan, and a history branch of 5-50 items (amount, kind, hour, online);
`churned` depends on risk, late-night activity in the last ten items and history length.
Usage: nested_users.py ROWS SEED > users.jsonl
"""
import json, random, sys
n = int(sys.argv[1]); seed = int(sys.argv[2]); rnd = random.Random(seed)
kinds = ["grocery", "fuel", "travel", "dining", "online", "cash", "utilities", "other"]
for u in range(n):
    length = rnd.randint(5, 50)
    risk = rnd.random()
    hist = []
    for i in range(length):
        kind = rnd.choice(kinds)
        amount = round(rnd.lognormvariate(3 + (1.0 if kind == "travel" else 0), 0.8), 2)
        hist.append({"amount": amount, "kind": kind, "hour": rnd.randint(0, 23), "online": rnd.random() < 0.3 + 0.4 * risk})
    late = sum(1 for h in hist[-10:] if h["hour"] < 5)
    churned = (risk > 0.6 and late >= 2) or (len(hist) < 10 and risk > 0.4)
    print(json.dumps({"user_id": u, "age": rnd.randint(18, 80), "plan": rnd.choice(["basic", "plus", "pro"]), "history": hist, "churned": churned}))
