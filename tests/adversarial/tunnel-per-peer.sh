#!/bin/bash
# Attack: drain the hub's [tunnel] pool with one stolen tunnel key, so that
# other peers get no tunnel. Each connection of the key used to get its own
# interface and pool address; now a second tunnel of the same peer
# supersedes the first (docs/security.md "Revocation cannot be dodged").
#
#    lan-a              hub                               spoke              lan-b
#  +-------+     +---------------+                  +---------------+     +-------+
#  |    va |-----| va        wan |------------------| wan        vb |-----| vb    |
#  +-------+     +------ vo -----+                  +---------------+     +-------+
#                    |  [tunnel] 192.168.50.1:4433, pool 10.99.0.0/29
#                +-- vo --+     (5 addresses for peers: .2 to .6)
#                |  out   | 192.168.51.2: the attacker, tunnel peer "multi"
#                +--------+ (a key file, no networks), 6 connections at once
#
# usage: tunnel-per-peer.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../netns/lib-topo.sh" "$@"
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP namespaces and TUN devices need root"; exit 77; }
adv_need ip nft python3 openssl ping softhsm2-util

adv_topo_temp perpeer
TUN_POOL=10.99.0.0/29
adv_topo_up
adv_mtg_fixture
adv_p12_peer multi tunnel || { echo "Bail out! fixture: multi could not be enrolled"; exit 1; }

ping_ab() { lanb ping -c "${1:-2}" -i 0.2 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
count_hub_ifaces() { mtg_ifaces "$NS_HUB" | grep -c .; }
spoke_up() { [ -n "$(mtg_ifaces "$NS_SPOKE")" ] && ping_ab 1; }

: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
if wait_until 15 spoke_up; then
    tap_result 0 "spoke1's tunnel is up (one of the pool's 5 addresses)"
else
    echo "Bail out! spoke1 got no tunnel"
    tail -n 20 "$T/hub.log"
    exit 1
fi

# multi.py: N tunnel connections as the same peer, one after the other,
# each kept open. Prints "I CONFIG <address>" (or CLOSE/EOF) as each starts,
# then, once all are made, how each earlier one ended: "I LATER CLOSE
# <reason>", "I LATER EOF" or "I LATER OPEN". Holds them until $go exists.
cat >"$T/multi.py" <<'PY'
import json, os, select, socket, ssl, struct, sys, time
host, port, ca, crt, key, n, go = sys.argv[1:8]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.load_cert_chain(crt, key)
ctx.set_alpn_protocols(["mtlsgw/1"])
socks = []
def first_frame(s, timeout):
    buf, end = b"", time.time() + timeout
    try:
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">H", buf[2:4])[0]:
            s.settimeout(max(0.01, end - time.time()))
            d = s.recv(65536)
            if not d:
                return "EOF"
            buf += d
    except (socket.timeout, TimeoutError):
        return "OPEN"
    except (ssl.SSLError, OSError) as e:
        return "EOF " + type(e).__name__
    p = buf[4:4 + struct.unpack(">H", buf[2:4])[0]].decode(errors="replace")
    if buf[0] == 1:
        return "CONFIG " + json.loads(p).get("address", "?")
    return ("CLOSE " if buf[0] == 4 else "FRAME%d " % buf[0]) + p
for i in range(int(n)):
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10),
                        server_hostname=host)
    print(i + 1, first_frame(s, 10), flush=True)
    socks.append(s)
time.sleep(1)
for i, s in enumerate(socks[:-1]):
    print(i + 1, "LATER", first_frame(s, 2), flush=True)
print("DONE", flush=True)
for _ in range(300):
    if os.path.exists(go):
        break
    time.sleep(0.1)
PY
N=6
ip netns exec "$NS_OUT" python3 "$T/multi.py" "$HUB_WAN" "$TUN_PORT" "$T/hub/pki/ca.crt" \
    "$T/multi.crt" "$T/multi.key" "$N" "$T/go" >"$T/multi.out" 2>&1 &
LOCAL_PIDS="$LOCAL_PIDS $!"
wait_until 60 grep -q DONE "$T/multi.out"
got=$(grep -cE '^[0-9]+ CONFIG' "$T/multi.out")
ok_if "each of multi's $N connections got its CONFIG (got $got: $(grep -E '^[0-9]+ [A-Z]' "$T/multi.out" | grep -v LATER | tr '\n' ';'))" \
    test "$got" = "$N"
sup=$(grep -cE '^[0-9]+ LATER CLOSE superseded by session [0-9]+' "$T/multi.out")
ok_if "the $((N - 1)) older ones were ended with CLOSE \"superseded by session N\" (got $sup: $(grep LATER "$T/multi.out" | tr '\n' ';'))" \
    test "$sup" = "$((N - 1))"
ok_if "the hub holds 2 tunnel interfaces, spoke1's and multi's newest (got: $(mtg_ifaces "$NS_HUB" | tr '\n' ' '))" \
    test "$(count_hub_ifaces)" = 2
ok_if "the hub's log names the superseding session" \
    grep -qE "multi .*session [0-9]+ ended: superseded by session [0-9]+" "$T/hub.log"
ok_if "spoke1's traffic flows all along" ping_ab 2

# spoke1 connects again while multi still holds its connections: the pool
# must have an address for it.
old=$(mtg_ifaces "$NS_HUB" | sort | head -n 1)
mtg_at hub kick spoke1 >/dev/null 2>&1
if wait_until 10 spoke_up && [ "$(count_hub_ifaces)" = 2 ]; then
    tap_result 0 "spoke1 reconnects while multi holds $N connections: the pool is not drained"
else
    tap_result 1 "spoke1 reconnects while multi holds $N connections: the pool is not drained" \
        "hub interfaces: $(mtg_ifaces "$NS_HUB" | tr '\n' ' '); hub log:
$(grep -iE 'pool|spoke1' "$T/hub.log" | tail -n 5)"
fi
touch "$T/go"

tap_done
