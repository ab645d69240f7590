#!/usr/bin/env python3
"""Checks that the service answers what batch prediction writes for the same records.

usage: compare.py HOST PORT RECORDS.jsonl PREDICTIONS.jsonl

PREDICTIONS.jsonl is `json2vec predict --prediction_writer.format=jsonl` output for RECORDS.jsonl.
Sends the records once as one list (one forward pass, like the predict command's batch)
and once one per request; prints how many numbers are bit-identical and the largest
difference (a different batch can sum floats in another order).
"""
import http.client
import json
import sys


def walk(a, b, stats, at):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        stats["numbers"] += 1
        if a == b:
            stats["identical"] += 1
        else:
            stats["max_absolute"] = max(stats["max_absolute"], abs(a - b))
            if abs(b) >= 1e-3:  # relative differences of near-zero probabilities mean nothing
                stats["max_relative"] = max(stats["max_relative"], abs(a - b) / abs(b))
        return
    if type(a) is not type(b):
        raise SystemExit(f"{at}: {a!r} vs {b!r}")
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise SystemExit(f"{at}: keys {sorted(a)} vs {sorted(b)}")
        for k in a:
            walk(a[k], b[k], stats, f"{at}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            raise SystemExit(f"{at}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, stats, f"{at}[{i}]")
    elif a != b:
        raise SystemExit(f"{at}: {a!r} vs {b!r}")


def main():
    host, port, records_path, predictions_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    records = [l.strip() for l in open(records_path) if l.strip()]
    expected = [json.loads(l) for l in open(predictions_path) if l.strip()]
    for row in expected:  # the JSON Lines writer keeps inputs as JSON text
        if isinstance(row.get("inputs"), str):
            row["inputs"] = json.loads(row["inputs"])
    conn = http.client.HTTPConnection(host, port)
    headers = {"Content-Type": "application/json"}
    conn.request("POST", "/predict", "[" + ",".join(records) + "]", headers)
    response = conn.getresponse()
    listed = json.loads(response.read())
    assert response.status == 200, listed
    singles = []
    for r in records:
        conn.request("POST", "/predict", r, headers)
        response = conn.getresponse()
        singles.append(json.loads(response.read()))
        assert response.status == 200, singles[-1]
    out = {}
    for name, got in (("one_list", listed), ("one_per_request", singles)):
        stats = {"numbers": 0, "identical": 0, "max_absolute": 0.0, "max_relative": 0.0}
        walk(got, expected, stats, name)
        out[name] = stats
    print(json.dumps({"records": len(records), **out}))


if __name__ == "__main__":
    main()
