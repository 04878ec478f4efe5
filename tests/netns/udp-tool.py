#!/usr/bin/env python3
"""udp-tool.py: what an attacker on the path does to the UDP data channel
(tests/netns/udp.sh, tests/adversarial/udp-flood.sh). Run inside a namespace.

  capture IFACE SRC DPORT N OUT [SECONDS]  the UDP payloads of N datagrams from
                                           SRC to port DPORT seen on IFACE (an
                                           AF_PACKET socket), one hex line each
  send DST PORT FILE [SPORT]               each line of FILE as one datagram
  garbage DST PORT FILE N                  N datagrams: random bytes, and FILE's
                                           records with a bit flipped (a known
                                           channel id, failing the AEAD check)
  count IFACE SRC SECONDS [READY]          how many UDP datagrams from SRC
                                           IFACE sees in SECONDS (READY: a file
                                           made once it listens; READY.stop
                                           ends it a second later; capture
                                           makes OUT.ready)
  pings SRC SECONDS [READY]                how many ICMP echo requests from SRC
                                           arrive here in SECONDS
"""
import os
import random
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800


def udp_from(frame, src, dport):
    """The UDP payload of an Ethernet frame from src (to dport), or None."""
    if len(frame) < 14 + 20 + 8 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != src:
        return None
    sport, dp, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
    if dport is not None and dp != dport:
        return None
    return ip[ihl + 8:ihl + ulen]


def raw(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    s.bind((iface, 0))
    return s


def capture(iface, src, dport, n, out, seconds=20.0):
    s = raw(iface)
    s.settimeout(0.5)
    open(out + ".ready", "w").close()
    got = []
    end = time.time() + seconds
    while len(got) < n and time.time() < end:
        try:
            frame, addr = s.recvfrom(70000)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        p = udp_from(frame, src, dport)
        if p is not None:
            got.append(p.hex())
    with open(out, "w") as f:
        f.write("".join(x + "\n" for x in got))
    print(len(got))
    return 0 if len(got) == n else 1


def running(end, ready):
    """Until SECONDS passed, or a second after READY.stop appeared."""
    now = time.time()
    if ready and os.path.exists(ready + ".stop"):
        if not hasattr(running, "stop_at"):
            running.stop_at = now + 1.0
        return now < running.stop_at
    return now < end


def records(path):
    with open(path) as f:
        return [bytes.fromhex(x.strip()) for x in f if x.strip()]


def send(dst, port, path, sport=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", sport))
    n = 0
    for r in records(path):
        s.sendto(r, (dst, port))
        n += 1
    print(n)
    return 0


def garbage(dst, port, path, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    known = records(path)
    rnd = random.Random(20)
    for i in range(n):
        if i % 2 == 0 or not known:
            d = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 1500)))
        else:
            d = bytearray(known[i % len(known)])
            # A fresh counter (past the window's top), a flipped byte: the
            # header passes every check before the AEAD, which fails.
            d[8:16] = struct.pack("!Q", (1 << 31) + i)
            d[-1] ^= 0x5A
            d = bytes(d)
        s.sendto(d, (dst, port))
    print(n)
    return 0


def count(iface, src, seconds, ready=None):
    s = raw(iface)
    s.settimeout(0.2)
    if ready:
        open(ready, "w").close()
    n = 0
    end = time.time() + seconds
    while running(end, ready):
        try:
            frame, addr = s.recvfrom(70000)
        except socket.timeout:
            continue
        if addr[2] != socket.PACKET_OUTGOING and udp_from(frame, src, None) is not None:
            n += 1
    print(n)
    return 0


def pings(src, seconds, ready=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.2)
    if ready:
        open(ready, "w").close()
    n = 0
    end = time.time() + seconds
    while running(end, ready):
        try:
            d, addr = s.recvfrom(70000)
        except socket.timeout:
            continue
        ihl = (d[0] & 15) * 4
        if addr[0] == src and d[ihl] == 8:
            n += 1
    print(n)
    return 0


def main(a):
    if a[0] == "capture":
        return capture(a[1], a[2], int(a[3]), int(a[4]), a[5],
                       float(a[6]) if len(a) > 6 else 20.0)
    if a[0] == "send":
        return send(a[1], int(a[2]), a[3], int(a[4]) if len(a) > 4 else 0)
    if a[0] == "garbage":
        return garbage(a[1], int(a[2]), a[3], int(a[4]))
    if a[0] == "pings":
        return pings(a[1], float(a[2]), a[3] if len(a) > 3 else None)
    if a[0] == "count":
        return count(a[1], a[2], float(a[3]), a[4] if len(a) > 4 else None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
