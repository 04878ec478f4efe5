#!/usr/bin/env python3
"""Connections that misbehave, for tests/interop/load.sh (one process, many
sockets, no threads).

  flood.py hold PORT IDLE STALL SOURCES WATCH
      IDLE connections that open TCP and never send a byte, then STALL that
      send a ClientHello (made by Python's ssl module on a memory BIO) and
      then nothing, from the source addresses SOURCES (comma-separated,
      round robin). Prints "READY <opened> <failed>" once all are open, then
      watches them for up to WATCH seconds and prints one JSON object:
        {"idle": STATS, "stall": STATS, "connect_failed": N, "ready_s": T}
      STATS: {"n", "closed", "rst", "open", "min", "median", "max"}, the
      times being seconds from each connection's connect to its end.

  flood.py probe PORT N SOURCES WAIT
      N connections that each send a ClientHello at once, kept open for
      WAIT seconds; prints JSON {"n", "handshake", "alert", "eof", "rst",
      "failed", "silent"}: "handshake" got the server's handshake (accepted),
      "alert" a TLS alert record first, "eof" a plain close, "rst" a reset.

The open files limit is raised to the hard limit first.
"""
import json
import resource
import selectors
import socket
import ssl
import statistics
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_hello():
    """The bytes of one ClientHello (a fresh one per call: random, key share)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="gw")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def connect(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def stats(times, n, rst, still_open):
    times = sorted(times)
    return {
        "n": n,
        "closed": len(times),
        "rst": rst,
        "open": still_open,
        "min": round(times[0], 3) if times else None,
        "median": round(statistics.median(times), 3) if times else None,
        "max": round(times[-1], 3) if times else None,
    }


def hold(port, n_idle, n_stall, sources, watch):
    start = time.time()
    sel = selectors.DefaultSelector()
    failed = 0
    conns = []  # [sock, kind, t_open]
    hellos = [client_hello() for _ in range(min(n_stall, 8))]
    for i in range(n_idle + n_stall):
        kind = "idle" if i < n_idle else "stall"
        try:
            s = connect(port, sources[i % len(sources)])
            t = time.time()
            if kind == "stall":
                s.setblocking(True)
                s.sendall(hellos[i % len(hellos)])
                s.setblocking(False)
        except OSError:
            failed += 1
            continue
        conns.append([s, kind, t])
        sel.register(s, selectors.EVENT_READ, len(conns) - 1)
    print("READY %d %d" % (len(conns), failed), flush=True)
    ready_s = time.time() - start
    ended = {"idle": [], "stall": []}
    rst = {"idle": 0, "stall": 0}
    left = len(conns)
    deadline = time.time() + watch
    while left and time.time() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.time()))):
            c = conns[key.data]
            try:
                data = c[0].recv(65536)
                if data:
                    continue  # the server's flight: read, never answered
            except BlockingIOError:
                continue
            except OSError:
                rst[c[1]] += 1
            ended[c[1]].append(time.time() - c[2])
            sel.unregister(c[0])
            c[0].close()
            left -= 1
    still = {"idle": 0, "stall": 0}
    for c in conns:
        if c[0].fileno() >= 0:
            still[c[1]] += 1
            c[0].close()
    n = {"idle": sum(1 for c in conns if c[1] == "idle"),
         "stall": sum(1 for c in conns if c[1] == "stall")}
    print(json.dumps({
        "idle": stats(ended["idle"], n["idle"], rst["idle"], still["idle"]),
        "stall": stats(ended["stall"], n["stall"], rst["stall"], still["stall"]),
        "connect_failed": failed,
        "ready_s": round(ready_s, 3),
    }), flush=True)


def probe(port, n, sources, wait):
    res = {"n": n, "handshake": 0, "alert": 0, "eof": 0, "rst": 0, "failed": 0, "silent": 0}
    socks = []
    hello = client_hello()
    for i in range(n):
        try:
            s = connect(port, sources[i % len(sources)])
            s.setblocking(True)
            s.sendall(hello)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            res["failed"] += 1
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    left = len(socks)
    deadline = time.time() + wait
    while left and time.time() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.time())):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                res["rst"] += 1
            else:
                if not data:
                    res["eof"] += 1
                elif data[0] == 0x15:
                    res["alert"] += 1
                else:
                    res["handshake"] += 1  # 0x16: ServerHello, accepted
            sel.unregister(s)
            left -= 1
    res["silent"] = left
    for s in socks:
        s.close()
    print(json.dumps(res), flush=True)


def main():
    raise_nofile()
    mode = sys.argv[1]
    if mode == "hold":
        hold(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(","),
             float(sys.argv[6]))
    elif mode == "probe":
        probe(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","), float(sys.argv[5]))
    else:
        sys.exit("usage: flood.py hold|probe ...")


if __name__ == "__main__":
    main()
