#!/usr/bin/env python3
"""Slowloris against a running `json2vec serve`: N connections each send a request header a
byte at a time (one byte per connection per second) while a probe asks GET /health and POST
/predict every 100 ms on its own keep-alive connection. Prints the probe's latencies and how
the slow connections ended (408 answers, closed); exits non-zero if a probe took longer than
--max-probe-ms or failed.

  python3 bench/serve/slowloris.py PORT [--connections 500] [--seconds 30] [--max-probe-ms 100]
"""
import argparse
import http.client
import socket
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("--connections", type=int, default=500)
parser.add_argument("--seconds", type=float, default=30)
parser.add_argument("--max-probe-ms", type=float, default=100)
parser.add_argument("--record", default='{"carat": 0.5, "cut": "Ideal"}')
args = parser.parse_args()

header = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 4096
slow = []
for _ in range(args.connections):
    s = socket.create_connection(("127.0.0.1", args.port))
    s.setblocking(False)
    slow.append([s, 0, b""])  # socket, bytes sent, bytes received

probe = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
latencies, failures = [], 0
start = time.monotonic()
next_byte = start
while time.monotonic() - start < args.seconds:
    now = time.monotonic()
    if now >= next_byte:
        for conn in slow:
            if conn[0] is None or conn[1] >= len(header):
                continue
            try:
                conn[0].send(header[conn[1]:conn[1] + 1])
                conn[1] += 1
            except OSError:
                conn[0].close()
                conn[0] = None
        next_byte = now + 1.0
    for conn in slow:
        if conn[0] is None:
            continue
        try:
            data = conn[0].recv(65536)
            if data:
                conn[2] += data
            else:
                conn[0].close()
                conn[0] = None
        except BlockingIOError:
            pass
        except OSError:
            conn[0].close()
            conn[0] = None
    for method, path, body in (("GET", "/health", None), ("POST", "/predict", args.record)):
        t0 = time.monotonic()
        try:
            probe.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
            response = probe.getresponse()
            response.read()
            if response.status != 200:
                failures += 1
        except Exception:
            failures += 1
            probe = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
        latencies.append((time.monotonic() - t0) * 1000)
    time.sleep(0.1)

latencies.sort()
answered_408 = sum(1 for c in slow if c[2].startswith(b"HTTP/1.1 408"))
closed = sum(1 for c in slow if c[0] is None)
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"slowloris: {args.connections} slow connections for {args.seconds:.0f} s; probes {len(latencies)}: "
      f"p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {latencies[-1]:.2f} ms, failures {failures}; "
      f"slow connections answered 408: {answered_408}, closed: {closed}")
sys.exit(0 if failures == 0 and latencies[-1] <= args.max_probe_ms else 1)
