#!/usr/bin/env python3
"""Sequential single-record /predict latency over one keep-alive connection.

usage: latency.py HOST PORT RECORDS.jsonl N [WARMUP]

A raw socket with the request bytes prepared in advance, so the figures are the
service's and the loopback's, not an HTTP library's (http.client parses headers with
the email package: ~50 us per response). Prints one JSON line.
"""
import json
import socket
import sys
import time


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        rest += chunk
    return status, rest[:length], rest[length:]


def main():
    host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 500
    records = [line.strip() for line in open(path) if line.strip()][:2000]
    requests = []
    for r in records:
        body = r.encode()
        requests.append(b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body))
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    times = []
    for i in range(warmup + n):
        req = requests[i % len(requests)]
        start = time.perf_counter_ns()
        sock.sendall(req)
        status, body, buf = read_response(sock, buf)
        elapsed = time.perf_counter_ns() - start
        if status != 200:
            raise SystemExit(f"request {i}: HTTP {status}: {body[:200]!r}")
        if i >= warmup:
            times.append(elapsed / 1e6)
    sock.close()
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
    print(json.dumps({"requests": n, "p50_ms": round(q(0.50), 3), "p90_ms": round(q(0.90), 3),
                      "p99_ms": round(q(0.99), 3), "p999_ms": round(q(0.999), 3),
                      "max_ms": round(times[-1], 3), "mean_ms": round(sum(times) / n, 3)}))


if __name__ == "__main__":
    main()
