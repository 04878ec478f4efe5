#!/bin/bash
# Attack: a tunnel peer (the holder of spoke1's key, root on the spoke)
# sends packets through its tunnel with source addresses that are not its
# own: an admin's, to reach a service the gate opened for that admin; a
# host of the hub's LAN or another spoke's network, to inject forwarded
# traffic into lan-a. And the other way round, a malicious hub sends into
# the spoke's tunnel with sources the spoke never accepted from it.
# docs/security.md "No source spoofing through a tunnel".
#
#    lan-a              hub                               spoke              lan-b
#  +-------+     +---------------+                  +---------------+     +-------+
#  |    va |-----| va        wan |------------------| wan        vb |-----| vb    |
#  +-------+     +---------------+                  +---------------+     +-------+
#  10.10.0.2       10.10.0.1  192.168.50.1       192.168.50.2  10.20.0.1    10.20.0.2
#  fd00:10::2      fd00:10::1                                  fd00:20::1   fd00:20::2
#  admin1 (curl)   gated tcp/2222 (open to          the attacker: raw IPv4/IPv6
#  UDP recorder    10.10.0.2 once admin1 has        packets written on its mtgu
#  :9999           authenticated); a counting       interface (python, SOCK_RAW)
#                  table of the test's own after
#                  inet mtlsgw's chains
#
#  spoke1 enrolled with 10.20.0.0/24 fd00:20::/64; hub routes 10.10.0.0/24
#  fd00:10::/64 (the spoke's accept-routes). rp_filter is off in the hub and
#  lan-a, as on many routers (its loose mode passes any routable source):
#  the daemon's table must not rely on it.
#
# usage: spoof.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../netns/lib-topo.sh" "$@"
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP namespaces and TUN devices need root"; exit 77; }
adv_need ip nft python3 openssl curl ping softhsm2-util

adv_topo_temp spoof
LANA6_NET=fd00:10::/64
LANB6_NET=fd00:20::/64
adv_topo_up
for ns in "$NS_HUB" "$NS_LANA" "$NS_SPOKE" "$NS_LANB"; do
    ip netns exec "$ns" sh -c 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do
        echo 0 >"$f"; done' || { echo "Bail out! rp_filter"; exit 1; }
done
GATED=2222
adv_mtg_fixture '[management]' "listen = $LANA_GW:$MGMT_PORT" '[firewall]' "gate = tcp/$GATED"
adv_p12_peer admin1 admin || { echo "Bail out! admin1 could not be enrolled"; exit 1; }

bail() {
    echo "Bail out! $*"
    tail -n 15 "$T/hub.log" | sed 's/^/# hub: /'
    tail -n 15 "$T/spoke.log" | sed 's/^/# spoke: /'
    exit 1
}

# ---- the tunnel -------------------------------------------------------------
: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until 5 eval "hub ss -Hltn 'sport = :$TUN_PORT' | grep -q ." || bail "the hub did not start"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ping_ab() { lanb ping -c 1 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
wait_until 15 ping_ab || bail "no traffic through the tunnel"
HUB_IF=$(mtg_ifaces "$NS_HUB" | head -n 1)
SPOKE_IF=$(mtg_ifaces "$NS_SPOKE" | head -n 1)
[ -n "$HUB_IF" ] && [ -n "$SPOKE_IF" ] || bail "no mtg interfaces"
tap_result 0 "spoke1's tunnel is up (hub $HUB_IF, spoke $SPOKE_IF), lan-b reaches lan-a"
# The daemon gives a tunnel device a short queue (NC_TUN_TXQLEN, 32
# packets) so that interactive traffic is not stuck behind a bulk burst;
# each injection below writes up to 33 packets at once, and a loaded
# machine drops the tail of that burst before the daemon reads it (the
# controls, sent last). The attacker is root on the spoke and may lengthen
# its own queue; the hub's is lengthened for the hub's own injection.
spoke ip link set "$SPOKE_IF" txqueuelen 1000 && hub ip link set "$HUB_IF" txqueuelen 1000 ||
    bail "txqueuelen"

# ---- what the attack would hit ------------------------------------------------
# The gated service, and a counting table that runs after inet mtlsgw's
# chains (priority filter + 10): what it counts got through them.
hub python3 -c 'import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 2222))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"gated-hello\n")
    c.close()' >/dev/null 2>&1 &
LOCAL_PIDS="$LOCAL_PIDS $!"
hub nft -f - <<'NFT' || bail "counting table"
table inet spoofwatch {
    counter gate_spoofed { }
    counter ctl_tcp { }
    counter in6_spoofed { }
    counter ctl_in6 { }
    chain input {
        type filter hook input priority filter + 10; policy accept;
        iifname "mtg*" tcp dport 2222 counter name gate_spoofed
        iifname "mtg*" tcp dport 2223 counter name ctl_tcp
        iifname "mtg*" ip6 saddr fd00:10::2 udp dport 9997 counter name in6_spoofed
        iifname "mtg*" ip6 saddr fd00:20::9 udp dport 9997 counter name ctl_in6
    }
}
NFT
counter() { # counter name -> packets
    hub nft -j list counter inet spoofwatch "$1" | python3 -c 'import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "counter" in o:
        print(o["counter"]["packets"])'
}
# Records the source of every UDP datagram to port 9999 (IPv4 and IPv6).
recorder() { # ns file
    ip netns exec "$1" python3 -c 'import select, socket, sys
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s4.bind(("0.0.0.0", 9999))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.bind(("::", 9999))
out = open(sys.argv[1], "a", buffering=1)
print("listening", file=out)
while True:
    for s in select.select([s4, s6], [], [])[0]:
        d, a = s.recvfrom(2048)
        print(a[0], d.decode(errors="replace"), file=out)' "$2" 2>>"$T/rec.err" &
    LOCAL_PIDS="$LOCAL_PIDS $!"
}
: >"$T/lana.rec"
: >"$T/lanb.rec"
recorder "$NS_LANA" "$T/lana.rec"
recorder "$NS_LANB" "$T/lanb.rec"
# (A loaded machine takes seconds to start a python.)
wait_until 15 grep -q listening "$T/lana.rec" && wait_until 15 grep -q listening "$T/lanb.rec" ||
    bail "the UDP recorders did not start: $(cat "$T/lana.rec" "$T/lanb.rec" "$T/rec.err" 2>&1)"
wait_until 15 eval "hub ss -Hltn 'sport = :2222' | grep -q ." || bail "the gated service"

# admin1 authenticates from lan-a: the gate opens for 10.10.0.2.
code=$(lana curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$T/hub/pki/ca.crt" \
    --cert "$T/admin1.crt" --key "$T/admin1.key" "https://$LANA_GW:$MGMT_PORT/api/v1/status")
expect_in 200 "$code" "admin1 authenticates from lan-a ($LANA_HOST)"
ok_if "the gate opened for $LANA_HOST" wait_until 3 eval \
    "nft_elems '$NS_HUB' gate4 | grep -qxF '$LANA_HOST'"
expect_in gated-hello "$(lana python3 -c 'import socket
s = socket.create_connection(("10.10.0.1", 2222), timeout=2)
print(s.recv(64).decode())' 2>&1)" "the gated service answers admin1's address from lan-a"

# ---- the attacker's tool --------------------------------------------------------
# inject.py IFACE SRC,DST,PROTO,DPORT...: three raw IPv4/IPv6 packets per
# spec, in order, with the source given, written on IFACE (SO_BINDTODEVICE),
# header and checksums made here: what root on a peer can always do.
cat >"$T/inject.py" <<'PY'
import ipaddress, socket, struct, sys

def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF

def l4(seq, src, s_ip, d_ip, proto, dport, v6):
    if proto == "tcp":  # a SYN
        h = struct.pack("!HHIIBBHHH", 40000 + seq, int(dport), 1000 + seq, 0, 5 << 4, 0x02,
                        64240, 0, 0)
        n = 6
    else:
        payload = b"spoofed from " + src.encode()
        h = struct.pack("!HHHH", 40000 + seq, int(dport), 8 + len(payload), 0) + payload
        n = 17
    if v6:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!I3xB", len(h), n)
    else:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!BBH", 0, n, len(h))
    c = csum(pseudo + h)
    off = 16 if proto == "tcp" else 6
    return h[:off] + struct.pack("!H", c or 0xFFFF) + h[off + 2:], n

ifname = sys.argv[1]
socks = {}
for spec in sys.argv[2:]:
    src, dst, proto, dport = spec.split(",")
    s_ip, d_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    v6 = s_ip.version == 6
    if v6 not in socks:
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                          socket.IPPROTO_RAW)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, 36, 1)  # IPV6_HDRINCL
        socks[v6] = s
    for i in range(3):
        body, n = l4(i, src, s_ip, d_ip, proto, dport, v6)
        if v6:
            pkt = (struct.pack("!IHBB", 6 << 28, len(body), n, 64) + s_ip.packed + d_ip.packed +
                   body)
            socks[v6].sendto(pkt, (dst, 0, 0, 0))
        else:
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, n, 0,
                              s_ip.packed, d_ip.packed)
            socks[v6].sendto(hdr + body, (dst, 0))
PY
inject() { # ns iface src,dst,proto,dport...
    local ns=$1
    shift
    ip netns exec "$ns" python3 "$T/inject.py" "$@"
}
recorded() { grep -c "^$2 " "$1" 2>/dev/null; }   # file src -> count
# Each attack is followed by a control through the same tunnel (packets
# keep their order in it): once the control has arrived, whatever the
# attack could deliver has been delivered, however loaded the machine is.
more_recorded() { # file src before
    wait_until 15 eval "[ \"\$(recorded '$1' '$2')\" -gt '$3' ]"
}
more_counted() { # counter before
    wait_until 15 eval "[ \"\$(counter '$1')\" -gt '$2' ]"
}

# ---- spoke1 -> hub: the gate ------------------------------------------------------
c0=$(counter ctl_tcp)
inject "$NS_SPOKE" "$SPOKE_IF" "$LANA_HOST,$LANA_GW,tcp,$GATED" "10.20.0.9,$LANA_GW,tcp,2223"
ok_if "control: SYNs from spoke1's network (10.20.0.9) reach the hub's input" \
    more_counted ctl_tcp "${c0:-0}"
got=$(counter gate_spoofed)
ok_if "attack: SYNs to gated tcp/$GATED with admin1's address $LANA_HOST through the tunnel reach nothing (counted after the table: ${got:-?})" \
    test "${got:-1}" = 0

# ---- spoke1 -> lan-a: forwarded traffic with foreign sources, IPv4 and IPv6 -------------
# lan-a's own neighbours, another spoke's network, another tunnel address,
# the hub's WAN; over IPv6 lan-a's, another ULA, link-local. To the hub
# itself: lan-a's IPv6 address.
SPOOF_A="10.10.0.3 10.30.0.5 10.99.0.77 192.168.50.1 fd00:10::3 fd00:30::5 fe80::1"
n4=$(recorded "$T/lana.rec" 10.20.0.9)
n6=$(recorded "$T/lana.rec" fd00:20::9)
c0=$(counter ctl_in6)
specs=()
for src in $SPOOF_A; do
    case $src in *:*) specs+=("$src,fd00:10::2,udp,9999") ;; *) specs+=("$src,$LANA_HOST,udp,9999") ;; esac
done
inject "$NS_SPOKE" "$SPOKE_IF" "${specs[@]}" "fd00:10::2,fd00:10::1,udp,9997" \
    "10.20.0.9,$LANA_HOST,udp,9999" "fd00:20::9,fd00:10::2,udp,9999" "fd00:20::9,fd00:10::1,udp,9997"
ok_if "control: datagrams from spoke1's networks reach lan-a (10.20.0.9, fd00:20::9)" \
    eval 'more_recorded "$T/lana.rec" 10.20.0.9 "$n4" && more_recorded "$T/lana.rec" fd00:20::9 "$n6"'
ok_if "control: and the hub's input over IPv6 (fd00:20::9)" more_counted ctl_in6 "${c0:-0}"
for src in $SPOOF_A; do
    n=$(recorded "$T/lana.rec" "$src")
    ok_if "attack: datagrams into lan-a with source $src never arrive (got $n)" test "$n" = 0
done
got=$(counter in6_spoofed)
ok_if "attack: datagrams to the hub with lan-a's fd00:10::2 never reach its input (got ${got:-?})" \
    test "${got:-1}" = 0

# ---- a malicious hub -> the spoke ----------------------------------------------------
# The hub's side sends into spoke1's tunnel: from the networks the spoke
# accepted (lan-a) it passes; the spoke's own LAN or anything else, not.
SPOOF_B="10.20.0.3 172.16.5.5 8.8.8.8 fd00:20::3"
n4=$(recorded "$T/lanb.rec" 10.10.0.9)
n6=$(recorded "$T/lanb.rec" fd00:10::9)
specs=()
for src in $SPOOF_B; do
    case $src in *:*) specs+=("$src,fd00:20::2,udp,9999") ;; *) specs+=("$src,$LANB_HOST,udp,9999") ;; esac
done
inject "$NS_HUB" "$HUB_IF" "${specs[@]}" "10.10.0.9,$LANB_HOST,udp,9999" "fd00:10::9,fd00:20::2,udp,9999"
ok_if "control: datagrams from the hub's lan-a (accepted: 10.10.0.9, fd00:10::9) reach lan-b" \
    eval 'more_recorded "$T/lanb.rec" 10.10.0.9 "$n4" && more_recorded "$T/lanb.rec" fd00:10::9 "$n6"'
for src in $SPOOF_B; do
    n=$(recorded "$T/lanb.rec" "$src")
    ok_if "attack from the hub: datagrams into lan-b with source $src (not in accept-routes) never arrive (got $n)" \
        test "$n" = 0
done

# ---- the elements that did it ----------------------------------------------------------
elems=$(nft_elems "$NS_HUB" sources4 | tr '\n' ',')
ok_if "hub: sources4 holds $HUB_IF's tunnel address and 10.20.0.0/24 (got $elems)" \
    eval "nft_elems '$NS_HUB' sources4 | grep -qxF '$HUB_IF . 10.20.0.0/24' &&
          nft_elems '$NS_HUB' sources4 | grep -qE '^$HUB_IF \\. 10\\.99\\.0\\.[0-9]+\$'"
ok_if "hub: sources6 holds $HUB_IF . fd00:20::/64" \
    eval "nft_elems '$NS_HUB' sources6 | grep -qxF '$HUB_IF . fd00:20::/64'"
elems=$(nft_elems "$NS_SPOKE" sources4 | tr '\n' ',')
ok_if "spoke: sources4 holds $SPOKE_IF . 10.99.0.1 and . 10.10.0.0/24 (got $elems)" \
    eval "nft_elems '$NS_SPOKE' sources4 | grep -qxF '$SPOKE_IF . 10.99.0.1' &&
          nft_elems '$NS_SPOKE' sources4 | grep -qxF '$SPOKE_IF . 10.10.0.0/24'"
nsd_stop spoke
ok_if "spoke1 gone: no source element of $HUB_IF left on the hub" \
    wait_until 3 eval "! nft_elems '$NS_HUB' sources4 | grep -q '^$HUB_IF '"
tap_done
