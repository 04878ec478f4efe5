#!/usr/bin/env python3
"""A scriptable HTTPS/1.1 keep-alive client for the daemon suite.

The shell suite runs it in the background and drives one long-lived connection
through it, one command per line on stdin, one answer per line on stdout:

  (on start)             CONNECTED <local port> | ERROR <what>
  REQ METHOD PATH [BODY] STATUS <code> <body on one line> | CLOSED <t> <why>
  RAW TEXT               sends TEXT (\\r \\n \\x00 escapes) then reads an answer
  WAIT SECONDS           CLOSED <t> <why> when the server ends the connection
                         within SECONDS, OPEN otherwise
  QUIT                   close_notify and exit

<why> is "eof" after a close_notify, else the error seen; <t> is the wall
clock (time.time()) at which the end was seen, so the suite can measure
how long the daemon took after it asked for the end.

usage: tlsclient.py PORT CAFILE [CERT KEY]
       tlsclient.py --tcp-idle PORT SECONDS   (plain TCP, never a ClientHello:
                                               prints CLOSED <elapsed> or OPEN)
"""
import select
import socket
import ssl
import sys
import time


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def tcp_idle(port, limit):
    start = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(limit)
    try:
        data = s.recv(1)
        out("CLOSED %.3f %s" % (time.time() - start, "eof" if not data else "data"))
    except socket.timeout:
        out("OPEN")
    except OSError as e:
        out("CLOSED %.3f %s" % (time.time() - start, type(e).__name__))


class Conn:
    def __init__(self, port, ca, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        # No ragged EOFs: "eof" then means the server sent close_notify.
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                 suppress_ragged_eofs=False)
        self.lport = self.s.getsockname()[1]
        self.buf = b""

    def closed(self, why):
        out("CLOSED %.3f %s" % (time.time(), why))
        sys.exit(0)

    def fill(self, timeout):
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(65536)
        except socket.timeout:
            return False
        except (ssl.SSLError, OSError) as e:
            self.closed(type(e).__name__ + ":" + str(e).replace("\n", " ")[:80])
        if not data:
            self.closed("eof")
        self.buf += data
        return True

    def read_response(self):
        deadline = time.time() + 10
        while b"\r\n\r\n" not in self.buf:
            if time.time() > deadline or not self.fill(deadline - time.time()):
                out("TIMEOUT")
                return
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        code = parts[1] if len(parts) > 1 else "?"
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        body = b""
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while b"\r\n" not in self.buf:
                    self.fill(10)
                size, self.buf = self.buf.split(b"\r\n", 1)
                n = int(size.split(b";")[0], 16)
                while len(self.buf) < n + 2:
                    self.fill(10)
                body += self.buf[:n]
                self.buf = self.buf[n + 2:]
                if n == 0:
                    break
        else:
            n = int(hdrs.get("content-length", "0"))
            while len(self.buf) < n:
                self.fill(10)
            body, self.buf = self.buf[:n], self.buf[n:]
        out("STATUS %s %s" % (code, body.decode("utf-8", "replace").replace("\n", " ")))

    def request(self, method, path, body=""):
        req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
        if body:
            req += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        req += "\r\n" + body
        self.send(req.encode())
        self.read_response()

    def send(self, data):
        try:
            self.s.sendall(data)
        except (ssl.SSLError, OSError) as e:
            self.closed(type(e).__name__)

    def wait(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            # TLS 1.3 session tickets make the socket readable without
            # application data: recv() consumes them and times out again.
            r, _, _ = select.select([self.s], [], [], max(0, deadline - time.time()))
            if r or self.s.pending():
                if self.fill(0.05):
                    out("DATA %r" % self.buf[:60])
                    self.buf = b""
                    return
        out("OPEN")


def main():
    if sys.argv[1] == "--tcp-idle":
        tcp_idle(int(sys.argv[2]), float(sys.argv[3]))
        return
    port, ca = int(sys.argv[1]), sys.argv[2]
    cert = sys.argv[3] if len(sys.argv) > 3 else None
    key = sys.argv[4] if len(sys.argv) > 4 else None
    try:
        c = Conn(port, ca, cert, key)
    except (ssl.SSLError, OSError) as e:
        out("ERROR %s" % str(e).replace("\n", " "))
        return
    out("CONNECTED %d" % c.lport)
    for line in sys.stdin:
        words = line.rstrip("\n").split(" ", 3)
        cmd = words[0]
        if cmd == "REQ":
            c.request(words[1], words[2], words[3] if len(words) > 3 else "")
        elif cmd == "RAW":
            text = line.rstrip("\n").split(" ", 1)[1]
            c.send(text.encode().decode("unicode_escape").encode("latin-1"))
            c.read_response()
        elif cmd == "WAIT":
            c.wait(float(words[1]))
        elif cmd == "QUIT":
            try:
                c.s.unwrap()
            except (ssl.SSLError, OSError):
                pass
            return
        else:
            out("ERROR unknown command %s" % cmd)


if __name__ == "__main__":
    main()
