#!/usr/bin/env python3
"""Slow clients against a running server (bench/run.sh): /health latency before and while N
connections have each sent half a request line and stalled. Loopback only, bounded in time.

usage: slow_clients.py PORT [N] [HOLD_SECONDS]
prints: slow_conns=N slow_opened=M slow_health_ok=K/T slow_health_p99_ms=X base_health_p99_ms=Y slow_held_after_s=S
"""
import socket
import sys
import time

port = int(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
hold = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0


def health_latencies(count):
    lat, ok = [], 0
    for _ in range(count):
        t = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                ok += 1
                lat.append((time.monotonic() - t) * 1000)
        except OSError:
            pass
        time.sleep(0.01)
    return ok, lat


def p99(v):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * 0.99))]


_, base = health_latencies(100)
slow = []
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /hea")
        slow.append(s)
    except OSError:
        break
time.sleep(1)
ok, lat = health_latencies(200)
# How many of the stalled connections the server still holds after HOLD_SECONDS.
time.sleep(max(0.0, hold - 3))
held = 0
for s in slow:
    s.setblocking(False)
    try:
        data = s.recv(1)
        held += 0 if data == b"" else 1
    except BlockingIOError:
        held += 1
    except OSError:
        pass
for s in slow:
    s.close()
print(
    f"slow_conns={n} slow_opened={len(slow)} slow_health_ok={ok}/200 "
    f"slow_health_p99_ms={p99(lat):.2f} base_health_p99_ms={p99(base):.2f} slow_held_after_{int(hold)}s={held}"
)
