#!/bin/bash
# Tunnels between two mtlsgwd in network namespaces, judged by
# docs/tunnel-protocol.md (the contract) and docs/mtlsgwd.md.
#
#    lan-a              hub                               spoke              lan-b
#  +-------+     +---------------+                  +---------------+     +-------+
#  |    va |-----| va        wan |------------------| wan        vb |-----| vb    |
#  +-------+     +------ vo -----+                  +---------------+     +-------+
#  10.10.0.2/24  10.10.0.1/24  192.168.50.1/24   192.168.50.2/24  10.20.0.1/24  10.20.0.2/24
#  (admin, gated     |  [tunnel] 192.168.50.1:4433     [uplink hub]            (traffic
#   tcp/2222 client) |  [management] 10.10.0.1:8443    spoke1, tunnel role      source)
#                +-- vo --+ 192.168.51.2/24: peers that must get nothing:
#                |  out   | mon1 (monitor role, as an uplink), spoke1 of a
#                +--------+ foreign CA (as an uplink), raw1 (malformed frames)
#
#  pool 10.99.0.0/24, hub routes 10.10.0.0/24, spoke1 --network 10.20.0.0/24.
#  No plain route joins lan-a and lan-b: their traffic crosses the tunnel or
#  nothing. Each daemon has its own SoftHSM token and control socket.
#
# usage: tunnel.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-topo.sh" "$@"

topo_need ip nft python3 openssl curl ping softhsm2-util pgrep
topo_temp tunnel

# IPv6 on both LANs too: the hub routes it, spoke1 is enrolled with it.
LANA6_NET=fd00:10::/64
LANB6_NET=fd00:20::/64
LANA6_HOST=fd00:10::2
LANB6_HOST=fd00:20::2
topo_up_or_bail

GATE_TIMEOUT=3
KEEPALIVE=2
mtg_fixture_or_bail "keepalive = $KEEPALIVE" \
    '[management]' "listen = $LANA_GW:$MGMT_PORT" \
    '[firewall]' 'gate = tcp/2222' "gate-timeout = $GATE_TIMEOUT"

# Key-file peers of the hub: admin1 (curl from lan-a), raw1 (python's ssl).
RAW_NET=10.30.0.0/24
{
    mtg_p12_peer admin1 admin && mtg_p12_peer raw1 tunnel --network "$RAW_NET" &&
        # mon1: a monitor with its own token, configured as an uplink.
        mtg_node mon mon mon-pin-0001 && mtg_uplink mon && mtg_device mon hub mon1 monitor &&
        # A foreign CA with the hub's CN, and spoke1 (name, role, network)
        # enrolled there, configured as an uplink to the real hub.
        mtg_node ot ot ot-pin-00001 && mtg_at ot init --cn hub1 --host "$HUB_WAN" >/dev/null &&
        mtg_node fdev fdev fdev-pin-001 && mtg_uplink fdev &&
        mtg_device fdev ot spoke1 tunnel --network "$LANB_NET"
} || { echo "Bail out! fixture: admin1, raw1, mon1 or the foreign peer could not be made"; exit 1; }

# ---- helpers -------------------------------------------------------------------
expect_log() { # log-id ere name   (waits up to 3 s)
    if wait_until 3 nsd_log_has "$1" "$2"; then
        tap_result 0 "$3"
    else
        tap_result 1 "$3" "expected a line matching /$2/ in the $1 log; since the mark:
$(nsd_since "$1" | tail -n 15)"
    fi
}

now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
le() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$1" "$2"; }

# When the kernel deleted a link, as `ip monitor` saw it: a deadline is then
# judged on the kernel's event, not on this script's polling, which a loaded
# machine (CI runs two suites at once) slows by a second or more.
monitor_links() { # ns file   (starts a monitor; its pid in MON_PID)
    ip -n "$1" -ts monitor link >"$2" 2>&1 &
    MON_PID=$!
    LOCAL_PIDS="$LOCAL_PIDS $MON_PID"
}
# The epoch of the first "Deleted N: IFNAME" in a monitor file; waits up to
# SECONDS for it; prints nothing (and fails) when none came.
link_deleted_at() { # file ifname seconds
    wait_until "$3" grep -qE "\] Deleted [0-9]+: $2[:@]" "$1" || return 1
    grep -m1 -E "\] Deleted [0-9]+: $2[:@]" "$1" | python3 -c 'import datetime, sys
ts = sys.stdin.read().split("]")[0].lstrip("[")
print("%.6f" % datetime.datetime.fromisoformat(ts).timestamp())'
}
stop_monitor() { kill "$MON_PID" 2>/dev/null; wait "$MON_PID" 2>/dev/null; }

has_line() { printf '%s\n' "$2" | grep -qxF -- "$1"; }     # line text
iface_present() { mtg_ifaces "$1" | grep -qxF -- "$2"; }   # ns ifname
iface_absent() { ! iface_present "$1" "$2"; }
elem_present() { nft_elems "$1" "$2" | grep -qxF -- "$3"; } # ns set value
elem_absent() { ! elem_present "$1" "$2" "$3"; }
# The interface of the route to PREFIX in NS (empty: no route).
route_dev() { # ns prefix
    ip -n "$1" -j route show "$2" 2>/dev/null | python3 -c 'import json, sys
r = json.load(sys.stdin)
print(r[0].get("dev", "") if r else "")'
}
# The hub's one mtg interface other than those given (empty: none yet).
new_hub_iface() { # known...
    local i k skip
    for i in $(mtg_ifaces "$NS_HUB"); do
        skip=0
        for k in "$@"; do [ "$i" = "$k" ] && skip=1; done
        [ "$skip" = 0 ] && { echo "$i"; return 0; }
    done
    return 1
}
hub_has_new_iface() { [ -n "$(new_hub_iface "$@")" ]; }
count_hub_ifaces() { mtg_ifaces "$NS_HUB" | grep -c .; }

ping_ab() { lanb ping -c "${1:-2}" -i 0.2 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
# A TCP connection from NS to ADDR:PORT within a second; prints the greeting.
tcp_try() { # ns addr port
    ip netns exec "$1" python3 -c 'import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.settimeout(1)
print(s.recv(64).decode().strip())' "$2" "$3" 2>&1
}
hub_conf() { mtg_at hub "$@"; }
T_START=$(date +%s.%N)
section() { echo "# --- $* (t=$(elapsed "$T_START" "$(now)") s)"; }

# Passes when the element is there, printing the set when it is not.
expect_elem() { # ns set value name
    if elem_present "$1" "$2" "$3"; then
        tap_result 0 "$4"
    else
        tap_result 1 "$4" "expected '$3' in set $2; got:
$(nft_elems "$1" "$2")"
    fi
}
expect_no_elem() { # ns set value name   (waits up to 2 s)
    if wait_until 2 elem_absent "$1" "$2" "$3"; then
        tap_result 0 "$4"
    else
        tap_result 1 "$4" "expected no '$3' in set $2; got:
$(nft_elems "$1" "$2")"
    fi
}

# Bail out with both logs when nothing can follow.
bail() {
    echo "Bail out! $*"
    echo "# hub log:"; tail -n 20 "$T/hub.log" | sed 's/^/#   /'
    echo "# spoke log:"; tail -n 20 "$T/spoke.log" | sed 's/^/#   /'
    tap_done
    exit 1
}

# Waits for spoke1's session on the hub; sets HUB_IF and SPOKE_IF.
HUB_IF=
SPOKE_IF=
wait_spoke1() { # seconds [old hub iface]
    HUB_IF=
    wait_until "$1" hub_has_new_iface ${2:-} || return 1
    HUB_IF=$(new_hub_iface ${2:-})
    wait_until 3 eval '[ -n "$(mtg_ifaces "$NS_SPOKE")" ]' &&
        SPOKE_IF=$(mtg_ifaces "$NS_SPOKE" | head -n 1)
    # Up on both ends once traffic passes (routes and trust come last).
    wait_until 3 ping_ab 1
}

: >"$T/hub.log"
: >"$T/spoke.log"

# ---- start -----------------------------------------------------------------------
section "start"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
if wait_until 5 eval "hub ss -Hltn 'sport = :$TUN_PORT' | grep -q $HUB_WAN"; then
    tap_result 0 "hub listens on $HUB_WAN:$TUN_PORT"
else
    tap_result 1 "hub listens on $HUB_WAN:$TUN_PORT" "listeners: $(hub ss -ltn)"
    bail "the hub did not start"
fi
expect_elem "$NS_HUB" gated "tcp . 2222" "hub's gated set holds [firewall] gate tcp/2222"
ok_if "hub starts with nothing trusted" test -z "$(nft_elems "$NS_HUB" trusted_ifaces)"

t0=$(now)
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
if wait_spoke1 10; then
    tap_result 0 "spoke1 connects: hub $HUB_IF, spoke $SPOKE_IF (in $(elapsed "$t0" "$(now)") s)"
else
    tap_result 1 "spoke1 connects and traffic passes" "hub ifaces: '$(mtg_ifaces "$NS_HUB")'"
    bail "no tunnel"
fi
expect_log hub "spoke1" "hub log names spoke1's session"

# ---- traffic ----------------------------------------------------------------------
section "traffic"
ok_if "ping lan-b -> lan-a through the tunnel" lanb ping -c 3 -i 0.2 -W 1 "$LANA_HOST"
ok_if "ping lan-a -> lan-b through the tunnel" lana ping -c 3 -i 0.2 -W 1 "$LANB_HOST"

# TCP streams both ways: 8 MiB of random bytes, compared by SHA-256. With
# offloads on, each direction crosses as 64 KiB SEGMENTS trains (the spoke's
# TUN -> the hub's for lan-b -> lan-a, the hub's -> the spoke's back).
head -c $((8 * 1024 * 1024)) /dev/urandom >"$T/stream.bin"
want_sum="$(stat -c %s "$T/stream.bin") $(sha256sum <"$T/stream.bin" | cut -d' ' -f1)"
stream() { # sender-fn sink-ns sink-host label
    local send=$1 ns=$2 host=$3 label=$4 sink t0 t1 got_sum
    : >"$T/stream.out"
    ip netns exec "$ns" python3 -c 'import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001))
s.listen(1)
print("listening", flush=True)
s.settimeout(20)
c, _ = s.accept()
c.settimeout(20)
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest(), flush=True)' "$host" >"$T/stream.out" 2>&1 &
    sink=$!
    LOCAL_PIDS="$LOCAL_PIDS $sink"
    wait_until 5 grep -q listening "$T/stream.out"
    t0=$(now)
    "$send" python3 -c 'import socket, sys
s = socket.create_connection((sys.argv[1], 5001), timeout=20)
with open(sys.argv[2], "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
s.recv(1)' "$host" "$T/stream.bin" 2>"$T/stream.err"
    t1=$(now)
    wait "$sink" 2>/dev/null
    got_sum=$(tail -n 1 "$T/stream.out")
    if [ "$got_sum" = "$want_sum" ]; then
        tap_result 0 "TCP stream $label: 8 MiB intact ($(python3 -c "print('%.0f' % (8 * 8.388608 / ($t1 - $t0)))") Mbit/s)"
    else
        tap_result 1 "TCP stream $label: 8 MiB intact" "expected '$want_sum', got '$got_sum'
$(cat "$T/stream.err")"
    fi
}
stream lanb "$NS_LANA" "$LANA_HOST" "lan-b -> lan-a"
stream lana "$NS_LANB" "$LANB_HOST" "lan-a -> lan-b"
# IPv6 through the same tunnel (TCP over IPv6 crosses as TSO6 trains).
ok_if "IPv6: ping lan-b -> lan-a ($LANA6_HOST) through the tunnel" \
    lanb ping -6 -c 3 -i 0.2 -W 1 "$LANA6_HOST"
ok_if "IPv6: ping lan-a -> lan-b ($LANB6_HOST) through the tunnel" \
    lana ping -6 -c 3 -i 0.2 -W 1 "$LANB6_HOST"
stream lanb "$NS_LANA" "$LANA6_HOST" "over IPv6 lan-b -> lan-a"
stream lana "$NS_LANB" "$LANB6_HOST" "over IPv6 lan-a -> lan-b"

# ---- the hub's kernel state while spoke1 is trusted ----------------------------------
section "kernel state"
ok_if "hub: $HUB_IF is the route to lan-b ($LANB_NET)" test "$(route_dev "$NS_HUB" "$LANB_NET")" = "$HUB_IF"
expect_elem "$NS_HUB" trusted_ifaces "$HUB_IF" "hub: $HUB_IF in trusted_ifaces"
expect_elem "$NS_HUB" allowed4 "$HUB_IF . $LANA_NET" "hub: allowed4 holds $HUB_IF . $LANA_NET ([tunnel] routes)"
ok_if "hub: $HUB_IF is the route to lan-b's IPv6 network ($LANB6_NET)" \
    test "$(ip -n "$NS_HUB" -6 -j route show "$LANB6_NET" | python3 -c 'import json, sys
r = json.load(sys.stdin)
print(r[0].get("dev", "") if r else "")')" = "$HUB_IF"
expect_elem "$NS_HUB" allowed6 "$HUB_IF . $LANA6_NET" "hub: allowed6 holds $HUB_IF . $LANA6_NET ([tunnel] routes)"
HUB_MTU=$(ip -n "$NS_HUB" -j link show "$HUB_IF" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["mtu"])')
ok_if "hub: $HUB_IF has MTU 1400 (got $HUB_MTU)" test "$HUB_MTU" = 1400
addrs=$(ip -n "$NS_HUB" -j addr show dev "$HUB_IF" | python3 -c 'import ipaddress, json, sys
for a in json.load(sys.stdin)[0].get("addr_info", []):
    print(a["local"], a.get("address", ""))')
ok_if "hub: $HUB_IF is a point-to-point pair inside $TUN_POOL (got '$addrs')" python3 -c '
import ipaddress, sys
pool = ipaddress.ip_network(sys.argv[1])
l, p = sys.argv[2].split()
assert ipaddress.ip_address(l) in pool and ipaddress.ip_address(p) in pool' "$TUN_POOL" "$addrs"
ok_if "spoke: $SPOKE_IF is the route to lan-a ($LANA_NET)" test "$(route_dev "$NS_SPOKE" "$LANA_NET")" = "$SPOKE_IF"
expect_elem "$NS_SPOKE" trusted_ifaces "$SPOKE_IF" "spoke: $SPOKE_IF in trusted_ifaces"
expect_elem "$NS_SPOKE" allowed4 "$SPOKE_IF . $LANB_NET" "spoke: allowed4 holds $SPOKE_IF . $LANB_NET (its networks)"
STATUS=$(hub_conf status --json 2>"$T/status.err")
ok_if "hub status --json lists spoke1's session with interface $HUB_IF" python3 -c '
import json, sys
s = json.loads(sys.argv[1])
assert any(x.get("peer") == "spoke1" and x.get("interface") == sys.argv[2]
           for x in s.get("sessions_list", [])), s.get("sessions_list")' "$STATUS" "$HUB_IF"
ok_if "hub status --json: spoke1's tunnel runs with offloads (SEGMENTS frames)" python3 -c '
import json, sys
s = json.loads(sys.argv[1])
assert any(x.get("peer") == "spoke1" and x.get("offload") is True
           for x in s.get("sessions_list", [])), s.get("sessions_list")' "$STATUS"

# ---- peers that get nothing: a monitor, and a foreign CA's "spoke1" --------------------
section "outsiders"
for who in "mon|mon1|mon1.*(role|monitor)|(role|monitor).*mon1" \
    "fdev|foreign spoke1|issuer|unknown.(ca|issuer)|signer|not trusted|untrusted"; do
    id=${who%%|*}
    rest=${who#*|}
    what=${rest%%|*}
    ere=${rest#*|}
    : >"$T/$id.log"
    nsd_mark hub
    nsd_start "$id" "$NS_OUT" "$T/$id/$id.conf"
    expect_log hub "$ere" "$what as an uplink: refused, the hub log says why"
    sleep 0.5
    ok_if "$what: no interface on the hub (only $HUB_IF: '$(mtg_ifaces "$NS_HUB" | tr '\n' ' ')')" \
        test "$(mtg_ifaces "$NS_HUB")" = "$HUB_IF"
    ok_if "$what: trusted_ifaces holds only $HUB_IF" \
        test "$(nft_elems "$NS_HUB" trusted_ifaces)" = "$HUB_IF"
    ok_if "$what: no route to its network on the hub other than $HUB_IF" \
        test "$(route_dev "$NS_HUB" "$LANB_NET")" = "$HUB_IF"
    ok_if "$what: its own side has no tunnel interface" test -z "$(mtg_ifaces "$NS_OUT")"
    nsd_stop "$id"
done

# ---- malformed frames from raw1 ---------------------------------------------------------
section "malformed frames"
# rawpeer.py: TLS with ALPN mtlsgw/1 as raw1; prints "CONFIG <json>" after the
# hub's first frame, waits for $T/raw-go, sends the frame given in hex, then
# prints how the session ended: "CLOSE <reason>" (a CLOSE frame, then EOF),
# "EOF", or "OPEN" (nothing within 5 s).
cat >"$T/rawpeer.py" <<'PY'
import os, socket, ssl, struct, sys, time
host, port, ca, crt, key, frame, go = sys.argv[1:8]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.load_cert_chain(crt, key)
ctx.set_alpn_protocols(["mtlsgw/1"])
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=5),
                    server_hostname=host)
buf = b""
def frame_in(deadline):
    global buf
    while True:
        if len(buf) >= 4:
            t, f, n = struct.unpack(">BBH", buf[:4])
            if len(buf) >= 4 + n:
                p, buf = buf[4:4 + n], buf[4 + n:]
                return t, p
        s.settimeout(max(0.01, deadline - time.time()))
        d = s.recv(65536)
        if not d:
            return None
        buf += d
t, p = frame_in(time.time() + 5)
if t != 1:
    print("NOCONFIG", t, flush=True)
    sys.exit(1)
print("CONFIG", p.decode(), flush=True)
for _ in range(50):
    if os.path.exists(go):
        break
    time.sleep(0.1)
s.sendall(bytes.fromhex(frame))
deadline = time.time() + 5
try:
    while True:
        r = frame_in(deadline)
        if r is None:
            print("EOF", flush=True)
            break
        if r[0] == 4:
            print("CLOSE", r[1].decode(errors="replace"), flush=True)
except (socket.timeout, TimeoutError):
    print("OPEN", flush=True)
except (ssl.SSLError, OSError) as e:
    print("EOF", type(e).__name__, flush=True)
PY

# name | frame (hex: type flags length payload) | ERE of the hub's reason
MALFORMED=(
    "unknown type 9|09000000|type"
    "flags not 0 (a KEEPALIVE with flags 1)|03010000|flag"
    "length over the limit (PACKET of 65535)|0200ffff$(printf '00%.0s' $(seq 64))|length|size|large|long|limit|mtu"
    "CONFIG from the peer|01000002 7b7d|config"
    "SEGMENTS before OFFLOAD|06000014 00000000000000000000 4500001400000000400600000000000000000000|segments|offload"
    "OFFLOAD twice|05000000 05000000|offload"
    "SEGMENTS with UDP segmentation|05000000 06000014 01030000000100140006 4500001400000000401100000a0000020a0a0002|offload type"
    "SEGMENTS whose checksum lies past the packet|05000000 06000014 01010000000100140010 4500001400000000400600000a0000020a0a0002|checksum"
)
for m in "${MALFORMED[@]}"; do
    name=${m%%|*}
    rest=${m#*|}
    frame=${rest%%|*}
    frame=${frame// /}
    ere=${rest#*|}
    rm -f "$T/raw-go"
    : >"$T/raw.out"
    nsd_mark hub
    ip netns exec "$NS_OUT" python3 "$T/rawpeer.py" "$HUB_WAN" "$TUN_PORT" "$T/hub/pki/ca.crt" \
        "$T/raw1.crt" "$T/raw1.key" "$frame" "$T/raw-go" >"$T/raw.out" 2>&1 &
    raw=$!
    LOCAL_PIDS="$LOCAL_PIDS $raw"
    RAW_IF=
    if wait_until 15 grep -q '^CONFIG' "$T/raw.out" && wait_until 5 hub_has_new_iface "$HUB_IF"; then
        RAW_IF=$(new_hub_iface "$HUB_IF")
        tap_result 0 "raw1 ($name): CONFIG received, hub made $RAW_IF"
    else
        tap_result 1 "raw1 ($name): CONFIG received, hub made an interface" \
            "client: $(cat "$T/raw.out"); hub ifaces: $(mtg_ifaces "$NS_HUB" | tr '\n' ' ')"
    fi
    touch "$T/raw-go"
    wait "$raw" 2>/dev/null
    res=$(tail -n 1 "$T/raw.out")
    case "$res" in
    EOF* | CLOSE*) tap_result 0 "raw1 ($name): hub ends the session ($res)" ;;
    *) tap_result 1 "raw1 ($name): hub ends the session" "expected EOF or CLOSE, got: $(cat "$T/raw.out")" ;;
    esac
    expect_log hub "raw1.*($ere)|($ere).*raw1" "raw1 ($name): hub log gives the reason"
    if [ -n "$RAW_IF" ]; then
        ok_if "raw1 ($name): $RAW_IF is gone" wait_until 2 iface_absent "$NS_HUB" "$RAW_IF"
        expect_no_elem "$NS_HUB" trusted_ifaces "$RAW_IF" "raw1 ($name): $RAW_IF untrusted"
        ok_if "raw1 ($name): no route to $RAW_NET left" test -z "$(route_dev "$NS_HUB" "$RAW_NET")"
    fi
    ok_if "raw1 ($name): spoke1's traffic still flows" ping_ab 2
    ok_if "raw1 ($name): spoke1's $HUB_IF untouched" iface_present "$NS_HUB" "$HUB_IF"
done

# ---- kick -------------------------------------------------------------------------------
section "kick"
old=$HUB_IF
nsd_mark hub
monitor_links "$NS_HUB" "$T/kick.mon"
sleep 0.3
t0=$(now)
ok_if "mtlsgw kick spoke1" hub_conf kick spoke1
t_gone=$(link_deleted_at "$T/kick.mon" "$old" 5)
stop_monitor
if [ -n "$t_gone" ] && le "$(elapsed "$t0" "$t_gone")" 1.0; then
    tap_result 0 "kick: $old gone within 1 s (the kernel deleted it $(elapsed "$t0" "$t_gone") s after the command's start)"
else
    tap_result 1 "kick: $old gone within 1 s" "deleted at '${t_gone:-never, in 5 s}', kick at $t0; hub log:
$(nsd_since hub | tail -n 8)"
fi
expect_no_elem "$NS_HUB" trusted_ifaces "$old" "kick: $old no longer in trusted_ifaces"
expect_no_elem "$NS_HUB" allowed4 "$old . $LANA_NET" "kick: allowed4 has nothing for $old"
ok_if "kick: no route to lan-b via $old" test "$(route_dev "$NS_HUB" "$LANB_NET")" != "$old"
if wait_spoke1 10 "$old"; then
    tap_result 0 "kick: spoke1 reconnects by itself ($HUB_IF, $(elapsed "$t0" "$(now)") s)"
else
    tap_result 1 "kick: spoke1 reconnects by itself" "spoke log: $(nsd_since hub | tail -n 5)"
fi
ok_if "kick: traffic flows again" ping_ab 2

# ---- hub restart (SIGTERM, start again) ------------------------------------------------------
section "hub restart"
old=$HUB_IF
nsd_mark hub
nsd_mark spoke
nsd_stop hub
ok_if "hub stop: no mtg interface left on the hub" test -z "$(mtg_ifaces "$NS_HUB")"
ok_if "hub stop: trusted_ifaces empty or table gone" test -z "$(nft_elems "$NS_HUB" trusted_ifaces)"
ok_if "hub stop: no route to lan-b" test -z "$(route_dev "$NS_HUB" "$LANB_NET")"
ok_if "hub stop: the spoke takes its uplink interface down" \
    wait_until 3 eval '[ -z "$(mtg_ifaces "$NS_SPOKE")" ]'
ok_if "hub stop: lan-b cannot reach lan-a" eval '! ping_ab 2'
expect_log spoke "reconnect" "hub stop: the spoke says it will reconnect"
t0=$(now)
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
# The spoke has been failing for as long as the trust timeout: its backoff
# may have reached 32 s or 60 s (+20 % jitter), so it may take that long.
if wait_spoke1 75; then
    tap_result 0 "hub restart: spoke1 reconnects by itself ($HUB_IF, $(elapsed "$t0" "$(now)") s after start)"
else
    tap_result 1 "hub restart: spoke1 reconnects by itself within 12 s" "spoke log:
$(nsd_since spoke | tail -n 10)"
fi
ok_if "hub restart: traffic flows again" ping_ab 2
# Backoff: 1 s doubling to 60 s (+-20 % jitter, so spokes do not return in
# step). The spoke's every "reconnecting in N ms" since it started: the kick,
# the stop and the failed attempts while the hub was down, all within a
# minute, so none of them resets the sequence.
delays=$(grep -oiE 'reconnecting in [0-9]+ ?ms' "$T/spoke.log" | grep -oE '[0-9]+' | tr '\n' ' ')
ok_if "backoff: 1 s, doubling, +-20 % (got ms: $delays)" python3 -c '
import sys
d = [int(x) for x in sys.argv[1].split()]
assert len(d) >= 2, d
for i, ms in enumerate(d):
    want = min(1000 * 2 ** i, 60000)
    assert 0.8 * want <= ms <= 1.2 * want, (i, ms, want)' "$delays"

# ---- revoke: traffic cut within a second ---------------------------------------------------
section "revoke"
old=$HUB_IF
# ip netns exec, not lanb: $! must be ping itself for the kill below.
ip netns exec "$NS_LANB" ping -D -i 0.05 -W 1 "$LANA_HOST" >"$T/ping.out" 2>&1 &
pinger=$!
LOCAL_PIDS="$LOCAL_PIDS $pinger"
monitor_links "$NS_HUB" "$T/revoke.mon"
sleep 0.5
nsd_mark hub
t0=$(now)
ok_if "mtlsgw revoke spoke1" hub_conf revoke spoke1 --reason keyCompromise
t_cmd=$(now)
t_gone=$(link_deleted_at "$T/revoke.mon" "$old" 5)
stop_monitor
sleep 1.2
kill "$pinger" 2>/dev/null
wait "$pinger" 2>/dev/null
ok_if "revoke: the test's pinger is gone after its kill" eval '! pgrep -f "ping -D -i 0.05 -W 1 $LANA_HOST" >/dev/null'
if [ -n "$t_gone" ] && le "$(elapsed "$t0" "$t_gone")" 1.0; then
    tap_result 0 "revoke: $old gone within 1 s of the command's start (the kernel deleted it $(elapsed "$t0" "$t_gone") s after; command $(elapsed "$t0" "$t_cmd") s)"
else
    tap_result 1 "revoke: $old gone within 1 s of the command's start" \
        "deleted at '${t_gone:-never, in 5 s}', revoke at $t0, command done at $t_cmd; hub log:
$(nsd_since hub | tail -n 8)"
fi
replies=$(grep -oE '^\[[0-9.]+\] [0-9]+ bytes from' "$T/ping.out" | grep -oE '^\[[0-9.]+' | tr -d '[')
ok_if "revoke: pings answered before the revocation" test -n "$replies"
last=$(printf '%s\n' "$replies" | tail -n 1)
if [ -n "$last" ] && le "$(elapsed "$t0" "$last")" 1.0; then
    tap_result 0 "revoke: pings fail within 1 s (last answer $(elapsed "$t0" "$last") s after the command's start)"
else
    tap_result 1 "revoke: pings fail within 1 s" "last answer at $last, revoke at $t0"
fi
expect_no_elem "$NS_HUB" trusted_ifaces "$old" "revoke: $old no longer in trusted_ifaces"
expect_no_elem "$NS_HUB" allowed4 "$old . $LANA_NET" "revoke: allowed4 has nothing for $old"
ok_if "revoke: no route to lan-b on the hub" test -z "$(route_dev "$NS_HUB" "$LANB_NET")"
expect_log hub "spoke1.*(ended|closed).*revoked" "revoke: the hub's line ending spoke1's session gives the reason (revoked)"
ok_if "revoke: the spoke takes its uplink interface down" \
    wait_until 3 eval '[ -z "$(mtg_ifaces "$NS_SPOKE")" ]'
sleep 1
ok_if "revoke: spoke1 does not get back in (no mtg on the hub)" test -z "$(mtg_ifaces "$NS_HUB")"
ok_if "revoke: lan-b cannot reach lan-a" eval '! ping_ab 1'

# ---- spoke1 enrolled again, with a new key --------------------------------------------------
section "re-enroll"
expect_exit 1 "re-enroll: the revoked key is refused" \
    hub_conf enroll spoke1 --role tunnel --csr "$T/spoke/spoke1.csr" --out "$T/spoke/again.crt" \
    --network "$LANB_NET"
nsd_stop spoke
ok_if "re-enroll: csr --new-key on the spoke's token" \
    mtg_at spoke csr --cn spoke1 --new-key --out "$T/spoke/spoke1-2.csr"
ok_if "re-enroll: the hub signs the new key" \
    hub_conf enroll spoke1 --role tunnel --csr "$T/spoke/spoke1-2.csr" --out "$T/spoke/spoke1-2.crt" \
    --network "$LANB_NET"
cp "$T/spoke/spoke1-2.crt" "$T/spoke/pki/device.crt"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
if wait_spoke1 10; then
    tap_result 0 "re-enroll: spoke1 connects with its new certificate ($HUB_IF)"
else
    tap_result 1 "re-enroll: spoke1 connects with its new certificate" "$(tail -n 10 "$T/spoke.log")"
fi
ok_if "re-enroll: traffic flows" ping_ab 2

# ---- the gate, and kill -9 of the hub -----------------------------------------------------
section "gate and kill -9"
ip netns exec "$NS_HUB" python3 -c 'import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 2222))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"gated-hello\n")
    c.close()' >/dev/null 2>&1 &
LOCAL_PIDS="$LOCAL_PIDS $!"
wait_until 3 eval "hub ss -Hltn 'sport = :2222' | grep -q ."
expect_in gated-hello "$(tcp_try "$NS_HUB" 127.0.0.1 2222)" "gate: the service answers on the hub's loopback"
expect_not_in gated-hello "$(tcp_try "$NS_LANA" "$LANA_GW" 2222)" "gate: tcp/2222 shut to lan-a before authentication"
# admin1 from lan-a on a keep-alive management connection: one GET a second
# until the connection goes; prints the first status line.
ip netns exec "$NS_LANA" python3 -c 'import socket, ssl, sys, time
host, port, ca, crt, key = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(crt, key)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=5), server_hostname=host)
first = True
while True:
    s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
    b = b""
    while b"\r\n\r\n" not in b:
        d = s.recv(4096)
        if not d:
            sys.exit(0)
        b += d
    h, _, body = b.partition(b"\r\n\r\n")
    n = [int(l.split(b":")[1]) for l in h.split(b"\r\n") if l.lower().startswith(b"content-length")]
    while n and len(body) < n[0]:
        d = s.recv(4096)
        if not d:
            sys.exit(0)
        body += d
    if first:
        print(h.split(b"\r\n")[0].decode(), flush=True)
        first = False
    time.sleep(1)' "$LANA_GW" "$MGMT_PORT" "$T/hub/pki/ca.crt" "$T/admin1.crt" "$T/admin1.key" \
    >"$T/admin.out" 2>&1 &
admin=$!
LOCAL_PIDS="$LOCAL_PIDS $admin"
wait_until 5 grep -q HTTP "$T/admin.out"
expect_in "HTTP/1.1 200" "$(cat "$T/admin.out")" "gate: admin1 authenticates from lan-a"
ok_if "gate: gate4 holds lan-a's address" wait_until 2 elem_present "$NS_HUB" gate4 "$LANA_HOST"
expect_in gated-hello "$(tcp_try "$NS_LANA" "$LANA_GW" 2222)" "gate: tcp/2222 open to lan-a after authentication"
expect_not_in gated-hello "$(tcp_try "$NS_OUT" "$OUT_GW" 2222)" "gate: still shut to another address (out)"
sleep $((GATE_TIMEOUT + 1))
expect_in gated-hello "$(tcp_try "$NS_LANA" "$LANA_GW" 2222)" \
    "gate: still open after gate-timeout while admin1's session lives (refreshed)"
# Sampled, not one try: a refresh that comes too seldom (or queued behind
# another task) shuts the gate for a second now and then, which one try
# finds only by luck. 4 gate-timeouts, every 0.2 s.
gaps=$(ip netns exec "$NS_HUB" python3 -c '
import json, subprocess, sys, time
addr, secs = sys.argv[1], float(sys.argv[2])
end, gaps, last_gap = time.monotonic() + secs, [], None
while time.monotonic() < end:
    r = subprocess.run(["nft", "-j", "list", "set", "inet", "mtlsgw", "gate4"],
                       capture_output=True, text=True)
    here = False
    try:
        for o in json.loads(r.stdout).get("nftables", []):
            for e in o.get("set", {}).get("elem", []):
                v = e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
                here = here or v == addr
    except ValueError:
        pass
    t = round(secs - (end - time.monotonic()), 1)
    if not here and last_gap is None:
        last_gap = t
    elif here and last_gap is not None:
        gaps.append("%s-%s s" % (last_gap, t))
        last_gap = None
    time.sleep(0.2)
if last_gap is not None:
    gaps.append("%s s-end" % last_gap)
print(", ".join(gaps))' "$LANA_HOST" $((4 * GATE_TIMEOUT)) 2>&1)
ok_if "gate: lan-a's opening never lapses while admin1's session lives ($((4 * GATE_TIMEOUT)) s, every 0.2 s; gaps: ${gaps:-none})" \
    test -z "$gaps"
gate_to=$(nft_elem_timeout "$NS_HUB" gate4 "$LANA_HOST")
ok_if "gate: lan-a's opening carries gate-timeout $GATE_TIMEOUT s (got '${gate_to:-none}')" \
    test "${gate_to:-0}" = "$GATE_TIMEOUT"
trust_to=$(nft_elem_timeout "$NS_HUB" trusted_ifaces "$HUB_IF")
ok_if "trust of $HUB_IF carries a timeout of at most 60 s (got '${trust_to:-none}' s)" \
    test "${trust_to:-0}" -gt 0 -a "${trust_to:-0}" -le 60

old=$HUB_IF
pids=$(nsd_pids hub | tr '\n' ' ')
ok_if "hub runs as two processes (got: $pids)" test "$(echo $pids | wc -w)" -ge 2
t0=$(now)
nsd_kill9 hub
ok_if "kill -9: $old gone with its TUN fd" wait_until 2 iface_absent "$NS_HUB" "$old"
ok_if "kill -9: table inet mtlsgw stays (its drops stay in place)" hub nft list table inet mtlsgw
ok_if "kill -9: lan-b cannot reach lan-a" eval '! ping_ab 1'
if wait_until $((GATE_TIMEOUT + 1)) eval '! tcp_try "$NS_LANA" "$LANA_GW" 2222 | grep -q gated-hello'; then
    tap_result 0 "kill -9: gate shut again for lan-a within gate-timeout ($(elapsed "$t0" "$(now)") s)"
else
    tap_result 1 "kill -9: gate shut again for lan-a within gate-timeout $GATE_TIMEOUT s + 1" \
        "gate4: $(nft_elems "$NS_HUB" gate4)"
fi
expect_no_elem "$NS_HUB" gate4 "$LANA_HOST" "kill -9: gate4 no longer holds lan-a"
ok_if "kill -9: the spoke takes its uplink interface down" \
    wait_until 3 eval '[ -z "$(mtg_ifaces "$NS_SPOKE")" ]'
wait_s=$((${trust_to:-0} + 1))
[ "$wait_s" -gt 61 ] && wait_s=61
if wait_until "$wait_s" elem_absent "$NS_HUB" trusted_ifaces "$old"; then
    tap_result 0 "kill -9: trusted element $old expires ($(elapsed "$t0" "$(now)") s after the kill, timeout ${trust_to:-?} s)"
else
    tap_result 1 "kill -9: trusted element $old expires within its timeout" \
        "trusted_ifaces: $(nft_elems "$NS_HUB" trusted_ifaces)"
fi

nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
# The spoke has been failing for as long as the trust timeout: its backoff
# may have reached 32 s or 60 s (+20 % jitter), so it may take that long.
if wait_spoke1 75; then
    tap_result 0 "after kill -9, restart: spoke1 reconnects ($HUB_IF)"
else
    tap_result 1 "after kill -9, restart: spoke1 reconnects" "$(tail -n 10 "$T/hub.log")"
fi
ok_if "after kill -9, restart: traffic flows" ping_ab 2
ok_if "after kill -9, restart: allowed4 holds only $HUB_IF's elements" python3 -c '
import sys
bad = [l for l in sys.argv[2].splitlines() if l.split(" . ")[0] != sys.argv[1]]
assert not bad, bad' "$HUB_IF" "$(nft_elems "$NS_HUB" allowed4)"
expect_not_in gated-hello "$(tcp_try "$NS_LANA" "$LANA_GW" 2222)" \
    "after kill -9, restart: gate shut to lan-a (nothing carried over)"

# ---- stop ---------------------------------------------------------------------------------
section "stop"
old=$HUB_IF
nsd_stop spoke
ok_if "spoke stop: the hub removes $old" wait_until 3 iface_absent "$NS_HUB" "$old"
expect_no_elem "$NS_HUB" trusted_ifaces "$old" "spoke stop: $old no longer trusted on the hub"
nsd_stop hub
ok_if "stop: no mtg interface in the hub or the spoke" \
    test -z "$(mtg_ifaces "$NS_HUB")$(mtg_ifaces "$NS_SPOKE")"
ok_if "stop: nothing trusted on either side" \
    test -z "$(nft_elems "$NS_HUB" trusted_ifaces)$(nft_elems "$NS_SPOKE" trusted_ifaces)"

tap_done
