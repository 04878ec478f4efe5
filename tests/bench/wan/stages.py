#!/usr/bin/env python3
"""tests/bench/wan/stages.py: where a ping through a tunnel waits (not a test).

  stages.py capture OUT IF...     (in a namespace; until SIGTERM)
  stages.py report SPOKE HUB      (the two captures of one measurement)
  stages.py sample OUT LABEL:PID...   (until SIGTERM; every 20 ms)
  stages.py queues OUT            (what sample saw)

capture: one AF_PACKET socket per interface with a classic BPF filter that
keeps only the frames of an ICMP echo of ping's default size (IP 84 bytes,
frame 98) and the UDP records that carry one (84 + 32 bytes of record
header and tag + 28 = IP 144, frame 158; the bulk's data (1500) and ACKs
(IP 52 -> 112) have other sizes). Each line: the kernel's timestamp
(SO_TIMESTAMPNS: when the frame passed the interface), the interface, in
or out, the frame length, and for an echo its type and sequence number.

report: the host-local stages of each ping, matched in order (a stage keeps
the order of what crosses it; each outer record is paired with the first
inner packet it can belong to):
  spoke out  lan-b's echo request on the spoke's vb -> its record out on wan
             (the spoke's TUN queue, its TX thread, the UDP send)
  hub in     the record in on the hub's wan -> the request out on va
             (the hub's UDP receive queue, its receive thread, the TUN write)
  hub out    lan-a's echo reply in on va -> its record out on wan
  spoke in   the record in on the spoke's wan -> the reply out on vb
prints p50/p99/max ms of each; the rest of a ping's RTT is the WAN's.

sample: the queues around them, read from /proc of each PID (its network
namespace's tables): every UDP socket's send and receive queue (bytes,
/proc/PID/net/udp), every AF_PACKET socket's receive queue (wanem's wire
input, /proc/PID/net/packet), TX drops of each mtg* interface
(/proc/PID/net/dev), and at the start and end each thread's schedstat
(time on a CPU, time waiting for one, times scheduled). queues prints, per
label and queue, p50/p99/max, and per thread the share of its time spent
waiting for a CPU and the mean wait each time it was woken.
"""
import os
import time
import ctypes
import select
import signal
import socket
import struct
import sys

ETH_P_ALL = 3
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
INNER, OUTER = 98, 158


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def attach_filter(s):
    # ld len; jeq INNER -> accept; jeq OUTER -> accept; drop; accept
    prog = [(0x80, 0, 0, 0), (0x15, 2, 0, INNER), (0x15, 1, 0, OUTER), (0x06, 0, 0, 0),
            (0x06, 0, 0, 0xFFFF)]
    arr = (SockFilter * len(prog))(*[SockFilter(*p) for p in prog])
    fprog = SockFprog(len(prog), arr)
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                 bytes(ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog))))


def capture(out, ifaces):
    socks = {}
    for name in ifaces:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        attach_filter(s)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((name, 0))
        socks[s.fileno()] = (s, name)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    with open(out, "w") as f:
        while not stop:
            try:
                r, _, _ = select.select(list(socks), [], [], 0.5)
            except InterruptedError:
                continue
            for fd in r:
                s, name = socks[fd]
                data, anc, _, addr = s.recvmsg(256, socket.CMSG_SPACE(16))
                ts = None
                for lvl, typ, d in anc:
                    if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", d[:16])
                        ts = sec + nsec / 1e9
                if ts is None or len(data) not in (INNER, OUTER):
                    continue
                way = "out" if addr[2] == PACKET_OUTGOING else "in"
                kind, seq = "-", -1
                if len(data) == INNER and data[23] == 1:  # IPv4, ICMP
                    kind = {8: "req", 0: "rep"}.get(data[34], "-")
                    seq = struct.unpack("!H", data[40:42])[0]
                elif len(data) == OUTER and data[23] == 17:
                    kind = "rec"
                f.write("%.9f %s %s %d %s %d\n" % (ts, name, way, len(data), kind, seq))


def load(path):
    ev = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 6:
                ev.append((float(p[0]), p[1], p[2], p[4]))
    return ev


def pair(a, b, limit=1.0):
    """Delays from each a to its b, both in time order, when a stage drops
    len(a) - len(b) of the a's: the drops placed where they make the
    delays' sum least (dynamic programming), so that one drop does not
    shift every later pair by one ping."""
    skips = len(a) - len(b)
    if skips < 0:  # more out than in: pair each b with the last a before it
        return [x - max([t for t in a if t <= x] or [x]) for x in b]
    inf = float("inf")
    # best[k]: the least sum with k of the a's so far skipped
    best, back = [0.0] + [inf] * skips, []
    for i, t in enumerate(a):
        nb, choice = [inf] * (skips + 1), [0] * (skips + 1)
        for k in range(skips + 1):
            j = i - k  # the b this a would take
            if best[k] < inf and 0 <= j < len(b) and 0 <= b[j] - t <= limit:
                nb[k], choice[k] = best[k] + b[j] - t, 1
            if k > 0 and best[k - 1] < nb[k]:
                nb[k], choice[k] = best[k - 1], 2
        best = nb
        back.append(choice)
    k = min(range(skips + 1), key=lambda x: best[x])
    if best[k] == inf:
        return []
    out = []
    for i in range(len(a) - 1, -1, -1):
        if back[i][k] == 1:
            out.append(b[i - k] - a[i])
        else:
            k -= 1
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(len(v) * p + 0.5) - 1))] * 1000 if v else float("nan")


def report(spoke, hub):
    s, h = load(spoke), load(hub)

    def sel(ev, ifn, way, kind):
        return [e[0] for e in ev if e[1] == ifn and e[2] == way and e[3] == kind]
    stages = [
        ("spoke out", sel(s, "vb", "in", "req"), sel(s, "wan", "out", "rec")),
        ("hub in", sel(h, "wan", "in", "rec"), sel(h, "va", "out", "req")),
        ("hub out", sel(h, "va", "in", "rep"), sel(h, "wan", "out", "rec")),
        ("spoke in", sel(s, "wan", "in", "rec"), sel(s, "vb", "out", "rep")),
    ]
    for name, a, b in stages:
        d = pair(a, b)
        print("stage %-9s %5d in, %5d out: p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms" %
              (name, len(a), len(b), pct(d, 0.5), pct(d, 0.99), pct(d, 1.0)))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def snap_sched(pid):
    out = {}
    for tid in os.listdir("/proc/%s/task" % pid) if os.path.isdir("/proc/%s/task" % pid) else []:
        v = read("/proc/%s/task/%s/schedstat" % (pid, tid)).split()
        c = read("/proc/%s/task/%s/comm" % (pid, tid)).strip()
        if len(v) == 3:
            out[tid] = (c, int(v[0]), int(v[1]), int(v[2]))
    return out


def sample(out, targets):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    t = [x.split(":", 1) for x in targets]
    with open(out, "w") as f:
        for lbl, pid in t:
            for tid, v in snap_sched(pid).items():
                f.write("sched0 %s %s %s %d %d %d\n" % ((lbl, pid, tid) + v[1:]))
        while not stop:
            for lbl, pid in t:
                for line in read("/proc/%s/net/udp" % pid).splitlines()[1:]:
                    p = line.split()
                    tx, rx = (int(x, 16) for x in p[4].split(":"))
                    f.write("udp %s %s %d %d\n" % (lbl, p[1], tx, rx))
                for line in read("/proc/%s/net/packet" % pid).splitlines()[1:]:
                    p = line.split()
                    f.write("packet %s if%s %s\n" % (lbl, p[4], p[6]))
                for line in read("/proc/%s/net/dev" % pid).splitlines()[2:]:
                    n, _, rest = line.partition(":")
                    if n.strip().startswith("mtg"):
                        f.write("dev %s %s %s\n" % (lbl, n.strip(), rest.split()[11]))
            time.sleep(0.02)
        for lbl, pid in t:
            for tid, v in snap_sched(pid).items():
                f.write("sched1 %s %s %s %d %d %d\n" % ((lbl, pid, tid) + v[1:]))


def queues(path):
    q, dev, s0, s1 = {}, {}, {}, {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if p[0] == "udp" and (int(p[3]) or int(p[4]) or True):
                q.setdefault((p[1], "udp " + p[2] + " sndq"), []).append(int(p[3]))
                q.setdefault((p[1], "udp " + p[2] + " rcvq"), []).append(int(p[4]))
            elif p[0] == "packet":
                q.setdefault((p[1], "packet " + p[2] + " rcvq"), []).append(int(p[3]))
            elif p[0] == "dev":
                dev.setdefault((p[1], p[2]), []).append(int(p[3]))
            elif p[0] in ("sched0", "sched1"):
                (s0 if p[0] == "sched0" else s1)[(p[1], p[3])] = (int(p[4]), int(p[5]),
                                                                  int(p[6]))
    for (lbl, name), v in sorted(q.items()):
        if max(v) == 0:
            continue
        v.sort()
        print("queue %-6s %-32s p50 %8d  p99 %8d  max %8d bytes" %
              (lbl, name, v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))], v[-1]))
    for (lbl, name), v in sorted(dev.items()):
        print("tun   %-6s %-10s TX drops %d" % (lbl, name, v[-1] - v[0]))
    for k, b in sorted(s1.items()):
        a = s0.get(k, (0, 0, 0))
        run, wait, n = b[0] - a[0], b[1] - a[1], b[2] - a[2]
        if run < 50e6:  # threads that ran under 50 ms: idle ones
            continue
        print("sched %-6s tid %-8s on CPU %6.0f ms, waited %6.0f ms (%4.1f %%), %7d times, "
              "mean wait %.3f ms" % (k[0], k[1], run / 1e6, wait / 1e6,
                                     100 * wait / (run + wait), n, wait / 1e6 / max(n, 1)))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "capture":
        capture(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "queues":
        queues(sys.argv[2])
    else:
        sys.exit(__doc__)
