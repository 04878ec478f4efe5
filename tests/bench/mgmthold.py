#!/usr/bin/env python3
"""mgmthold: N management sessions held open, for tests/bench/run footprint.

    mgmthold.py HOST PORT CA CERT KEY N

Opens N mutual-TLS connections (OpenSSL, through Python's ssl module) to the
management listener one after the other, sends a keep-alive
`GET /api/v1/status` on each and reads the answer, prints "held=N err=E"
and keeps every connection open, with one more GET on each every 60 s,
until stdin closes. Not a test.
"""
import select
import socket
import ssl
import sys
import time

REQ = b"GET /api/v1/status HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n"


def get(s):
    """One keep-alive request and its whole answer (Content-Length)."""
    s.sendall(REQ)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed before the answer's head")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError("answer: " + head.split(b"\r\n", 1)[0].decode(errors="replace"))
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed in the answer's body")
        body += chunk


def main():
    host, port, ca, cert, key, n = sys.argv[1:7]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    held, err, last = [], 0, ""
    for _ in range(int(n)):
        try:
            raw = socket.create_connection((host, int(port)), timeout=30)
            s = ctx.wrap_socket(raw, server_hostname=host)
            get(s)
            held.append(s)
        except (OSError, ssl.SSLError) as e:
            err += 1
            last = str(e)
    print("held=%d err=%d%s" % (len(held), err, (" last: " + last) if last else ""), flush=True)
    t = time.monotonic()
    while True:
        r, _, _ = select.select([sys.stdin], [], [], 5)
        if r and not sys.stdin.buffer.read1(4096):
            break
        if time.monotonic() - t >= 60:
            t = time.monotonic()
            for s in held:
                try:
                    get(s)
                except (OSError, ssl.SSLError):
                    pass
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
