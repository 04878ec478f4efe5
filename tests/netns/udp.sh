#!/bin/bash
# The UDP data channel (issue #20, docs/tunnel-protocol.md "UDP data
# channel") between two mtlsgwd in the namespaces of lib-topo.sh: the hub
# has [tunnel] udp = 4434 on its tunnel listener's address.
#
#  - traffic crosses over UDP (the counters say so), TCP streams intact;
#  - captured UDP records replayed (from the path and from elsewhere) are
#    refused, counted, never answered, and do not move the peer's address;
#  - NAT rebinding: the spoke's source port changes on the way (nft rewrites
#    it), the hub follows after an authentic record;
#  - UDP blocked by an nft drop rule: back on TLS within 2 keepalives, and
#    on UDP again once unblocked;
#  - loss (nft drops 3 % of the spoke's datagrams): the hub reports it,
#    the spoke sends PARITY records, the hub rebuilds what was lost (pings
#    lose at most 1 %); the loss gone, parity stops; with [tunnel] fec = no
#    on the spoke neither side sends any;
#  - a spoke that never probes (udp = no: an older client) works as today;
#  - rekeys (REKEY frames over TLS, fault-injection builds: each epoch
#    starts 300 records short of its 2^31 limit, and the timer is 3 s):
#    traffic keeps flowing over UDP across several epochs, nothing lost,
#    and the epoch shows in status;
#  - revocation ends the UDP channel with the TLS one: records captured
#    before it and never delivered are refused after it.
#
# usage: udp.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-topo.sh"
TOOL=$here/udp-tool.py

topo_need ip nft python3 ping softhsm2-util pgrep
# MTLSGW_TEST_KEEP=1 keeps $T (lib-topo.sh)
topo_temp udp
topo_up_or_bail

KEEPALIVE=2
UDP_PORT=4434
mtg_fixture "keepalive = $KEEPALIVE" "udp = $UDP_PORT"
case $? in
0) ;;
77) echo "1..0 # SKIP no SoftHSM module"; exit 77 ;;
*) echo "Bail out! fixture: tokens, CA or spoke1 could not be made"; exit 1 ;;
esac
cp "$T/spoke/spoke.conf" "$T/spoke/spoke-udp.conf"
{ cat "$T/spoke/spoke-udp.conf"; printf '[tunnel]\nudp = no\n'; } >"$T/spoke/spoke-noudp.conf"
{ cat "$T/spoke/spoke-udp.conf"; printf '[tunnel]\nfec = no\n'; } >"$T/spoke/spoke-nofec.conf"

# ---- helpers -------------------------------------------------------------------
now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
T_START=$(now)
section() { echo "# --- $* (t=$(elapsed "$T_START" "$(now)") s)"; }
ping_ab() { lanb ping -c "${1:-2}" -i 0.2 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
bail() {
    echo "Bail out! $*"
    echo "# hub log:"; tail -n 20 "$T/hub.log" | sed 's/^/#   /'
    echo "# spoke log:"; tail -n 20 "$T/spoke.log" | sed 's/^/#   /'
    tap_done
    exit 1
}

# The tunnel session of a daemon (hub: spoke1's; spoke: its uplink), one
# field by a dotted path ("channel", "udp.replays", "udp.peer"); empty when
# there is none.
sess() { # node path
    mtg_at "$1" status --json 2>/dev/null | python3 -c 'import json, sys
s = json.load(sys.stdin)
for x in s.get("sessions_list", []):
    if "interface" in x:
        v = x
        for k in sys.argv[1].split("."):
            v = v.get(k) if isinstance(v, dict) else None
        print("" if v is None else v)
        break' "$2"
}
is_channel() { [ "$(sess "$1" channel)" = "$2" ]; } # node udp|tcp
ge() { [ "${1:-0}" -ge "$2" ] 2>/dev/null; }

wait_tunnel() { # seconds
    wait_until "$1" eval '[ -n "$(mtg_ifaces "$NS_HUB")" ] && [ -n "$(mtg_ifaces "$NS_SPOKE")" ]' &&
        wait_until 5 ping_ab 1
}

stream() { # sender-ns sink-ns sink-host label
    local sink t0 t1 got
    : >"$T/stream.out"
    ip netns exec "$2" python3 -c 'import hashlib, socket, sys
s = socket.socket()
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
print(n, h.hexdigest(), flush=True)' "$3" >"$T/stream.out" 2>&1 &
    sink=$!
    LOCAL_PIDS="$LOCAL_PIDS $sink"
    wait_until 5 grep -q listening "$T/stream.out"
    t0=$(now)
    ip netns exec "$1" python3 -c 'import socket, sys
s = socket.create_connection((sys.argv[1], 5001), timeout=20)
with open(sys.argv[2], "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
s.recv(1)' "$3" "$T/stream.bin" 2>"$T/stream.err"
    t1=$(now)
    wait "$sink" 2>/dev/null
    got=$(tail -n 1 "$T/stream.out")
    if [ "$got" = "$want_sum" ]; then
        tap_result 0 "TCP stream $4: 4 MiB intact ($(python3 -c "print('%.0f' % (4 * 8.388608 / ($t1 - $t0)))") Mbit/s)"
    else
        tap_result 1 "TCP stream $4: 4 MiB intact" "expected '$want_sum', got '$got'
$(cat "$T/stream.err")"
    fi
}
head -c $((4 * 1024 * 1024)) /dev/urandom >"$T/stream.bin"
want_sum="$(stat -c %s "$T/stream.bin") $(sha256sum <"$T/stream.bin" | cut -d' ' -f1)"

: >"$T/hub.log"
: >"$T/spoke.log"

# ---- start ---------------------------------------------------------------------
section "start"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
if wait_until 5 eval "hub ss -Hlun 'sport = :$UDP_PORT' | grep -q $HUB_WAN"; then
    tap_result 0 "hub: UDP socket on $HUB_WAN:$UDP_PORT ([tunnel] udp)"
else
    tap_result 1 "hub: UDP socket on $HUB_WAN:$UDP_PORT" "$(hub ss -lun; tail -n 5 "$T/hub.log")"
    bail "the hub did not start"
fi
nsd_start spoke "$NS_SPOKE" "$T/spoke/${UDP_FIRST:-spoke-udp}.conf"
wait_tunnel 15 || bail "no tunnel"
tap_result 0 "spoke1 connects, traffic passes"

# UDP_ONLY_REVOKE=1: the start and the last section only (re-running it);
# UDP_ONLY_REKEY=1: the start and the rekey section only.
if [ -z "${UDP_ONLY_REVOKE:-}" ] && [ -z "${UDP_ONLY_REKEY:-}" ]; then
# ---- traffic over UDP --------------------------------------------------------------
section "traffic over UDP"
if wait_until 5 is_channel spoke udp && wait_until 5 is_channel hub udp; then
    tap_result 0 "status: channel udp on both sides"
else
    tap_result 1 "status: channel udp on both sides" \
        "hub '$(sess hub channel)', spoke '$(sess spoke channel)'; spoke log:
$(tail -n 5 "$T/spoke.log")"
fi
hub_in0=$(sess hub udp.packets_in)
tcp_in0=$(sess hub tcp.packets_in)
ok_if "ping lan-b -> lan-a" lanb ping -c 5 -i 0.2 -W 1 -q "$LANA_HOST"
ok_if "ping lan-a -> lan-b" lana ping -c 5 -i 0.2 -W 1 -q "$LANB_HOST"
stream "$NS_LANB" "$NS_LANA" "$LANA_HOST" "lan-b -> lan-a over UDP"
stream "$NS_LANA" "$NS_LANB" "$LANB_HOST" "lan-a -> lan-b over UDP"
hub_in1=$(sess hub udp.packets_in)
tcp_in1=$(sess hub tcp.packets_in)
ok_if "hub: the packets came over UDP (udp.packets_in $hub_in0 -> $hub_in1, tcp $tcp_in0 -> $tcp_in1)" \
    eval '[ $((hub_in1 - hub_in0)) -ge 2500 ] && [ $((tcp_in1 - tcp_in0)) -le 10 ]'
ok_if "spoke: the packets came over UDP (udp.packets_in $(sess spoke udp.packets_in))" \
    ge "$(sess spoke udp.packets_in)" 2500
SPOKE_PEER=$(sess hub udp.peer)
ok_if "hub: the peer's UDP address is the spoke's ($SPOKE_PEER)" \
    eval 'case "$SPOKE_PEER" in "$SPOKE_WAN":*) true ;; *) false ;; esac'

# ---- replay -------------------------------------------------------------------------
section "replay"
hub python3 "$TOOL" capture wan "$SPOKE_WAN" "$UDP_PORT" 20 "$T/cap.hex" 15 >/dev/null &
cap=$!
wait_until 10 test -e "$T/cap.hex.ready"
lanb ping -c 40 -i 0.05 -W 1 -q "$LANA_HOST" >/dev/null 2>&1
wait "$cap"
n=$(wc -l <"$T/cap.hex")
ok_if "captured 20 of the spoke's UDP records on the hub's wire (got $n)" test "$n" = 20
rp0=$(sess hub udp.replays)
in0=$(sess hub udp.packets_in)
out python3 "$TOOL" count vo "$HUB_WAN" 30 "$T/answers.ready" >"$T/answers" &
cnt=$!
wait_until 10 test -e "$T/answers.ready"
out python3 "$TOOL" send "$HUB_WAN" "$UDP_PORT" "$T/cap.hex" >/dev/null
spoke python3 "$TOOL" send "$HUB_WAN" "$UDP_PORT" "$T/cap.hex" >/dev/null
touch "$T/answers.ready.stop"
wait "$cnt"
sleep 0.3
rp1=$(sess hub udp.replays)
in1=$(sess hub udp.packets_in)
ok_if "replayed records refused and counted (udp.replays $rp0 -> $rp1: 40 sent)" \
    test $((rp1 - rp0)) = 40
ok_if "no replayed record reached the TUN (udp.packets_in $in0 -> $in1)" test "$in0" = "$in1"
ok_if "no answer to the replays from elsewhere (UDP from the hub seen there: $(cat "$T/answers"))" \
    test "$(cat "$T/answers")" = 0
ok_if "the peer's address did not follow the replays ($(sess hub udp.peer))" \
    test "$(sess hub udp.peer)" = "$SPOKE_PEER"
ok_if "channel still udp, traffic passes" eval 'is_channel hub udp && ping_ab 2'

# ---- NAT rebinding ------------------------------------------------------------------
section "NAT rebinding"
# A NAT between them picks a new source port: the hub sees the spoke's
# datagrams come from port 40000 (and its answers to port 40000 are put back).
sport=${SPOKE_PEER##*:}
hub nft -f - <<NFT
table ip rebind {
    chain pre { type filter hook prerouting priority -300; ip saddr $SPOKE_WAN udp sport $sport udp dport $UDP_PORT udp sport set 40000 notrack; }
    chain post { type filter hook output priority -300; ip daddr $SPOKE_WAN udp sport $UDP_PORT udp dport 40000 udp dport set $sport notrack; }
}
NFT
ok_if "the hub follows the new address ($SPOKE_WAN:40000) after an authentic record" \
    wait_until 15 eval '[ "$(sess hub udp.peer)" = "$SPOKE_WAN:40000" ]'
in0=$(sess hub udp.packets_in)
ok_if "traffic passes over UDP after the rebinding" eval 'ping_ab 5 && is_channel hub udp && is_channel spoke udp'
ok_if "... and came over UDP (udp.packets_in $in0 -> $(sess hub udp.packets_in))" \
    ge "$(sess hub udp.packets_in)" $((in0 + 5))
ok_if "the hub's log names the move" grep -q "UDP address moved from $SPOKE_PEER to $SPOKE_WAN:40000" "$T/hub.log"
hub nft delete table ip rebind
wait_until $((2 * KEEPALIVE + 2)) eval '[ "$(sess hub udp.peer)" = "$SPOKE_PEER" ]'

# ---- UDP blocked: fallback and return ----------------------------------------------
section "UDP blocked"
hub nft -f - <<NFT
table inet blockudp {
    chain in { type filter hook input priority -10; udp dport $UDP_PORT drop; }
}
NFT
t0=$(now)
if wait_until 20 eval '! is_channel spoke udp'; then
    t1=$(now)
    # The daemon's own measure: how long after the last authentic datagram
    # it moved: 2 keepalives (the TX thread wakes for that moment, udp.c
    # udp_tx_timeout), and up to 1 s more for a loaded machine's scheduling
    # (before the TX thread woke for it, a 1 s tick measured 5001 ms there).
    quiet=$(grep -o "UDP stopped answering (nothing for [0-9]* ms)" "$T/spoke.log" |
        tail -n 1 | grep -o "[0-9]*")
    ok_if "spoke: back on TLS ${quiet:-?} ms after the last UDP answer (keepalive $KEEPALIVE s; status saw it $(elapsed "$t0" "$t1") s after the block)" \
        test "${quiet:-99999}" -le $((2 * KEEPALIVE * 1000 + 1000))
else
    tap_result 1 "spoke: back on TLS within 2 keepalives" "channel $(sess spoke channel)"
fi
ok_if "hub: back on TLS too" wait_until 10 is_channel hub tcp
tin0=$(sess hub tcp.packets_in)
ok_if "traffic passes while UDP is blocked" ping_ab 5
ok_if "... over TLS (hub tcp.packets_in $tin0 -> $(sess hub tcp.packets_in))" \
    ge "$(sess hub tcp.packets_in)" $((tin0 + 5))
ok_if "the spoke's log says why" grep -q "UDP stopped answering" "$T/spoke.log"
hub nft delete table inet blockudp
t0=$(now)
if wait_until 40 eval 'is_channel spoke udp && is_channel hub udp'; then
    tap_result 0 "unblocked: back on UDP after $(elapsed "$t0" "$(now)") s (probes with backoff)"
else
    tap_result 1 "unblocked: back on UDP" "spoke '$(sess spoke channel)' hub '$(sess hub channel)'"
fi
ok_if "traffic passes over UDP again" ping_ab 3

# ---- loss: parity records (FEC) --------------------------------------------------------
section "FEC"
# 3 % of the spoke's datagrams are lost on the way to the hub. The hub
# reports it (LOSS, once a second), the spoke then sends a PARITY record
# every 3 records (10 % / loss), and the hub rebuilds what was lost.
hub nft -f - <<NFT
table inet lossy {
    chain in { type filter hook input priority -10; udp dport $UDP_PORT numgen random mod 100 < 3 drop; }
}
NFT
# A steady 500 pings a second keep the reports coming (parity lives on
# them: docs/tunnel-protocol.md); the measured flood runs beside it.
# (ip netns exec, not lanb: $! is then ping itself, which kill reaches.)
ip netns exec "$NS_LANB" ping -i 0.002 -w 40 -q "$LANA_HOST" >/dev/null 2>&1 &
flood=$!
ok_if "the hub measures the loss and the spoke hears of it (spoke udp.fec.peer_loss_percent 1 to 10)" \
    wait_until 10 eval 'python3 -c "import sys; sys.exit(not 1 <= float(sys.argv[1]) <= 10)" "$(sess spoke udp.fec.peer_loss_percent)"'
ok_if "after 3 lossy reports the spoke sends parity (udp.fec.parity_every 2 or more)" \
    wait_until 8 eval 'ge "$(sess spoke udp.fec.parity_every)" 2'
rec0=$(sess hub udp.fec.recovered)
out=$(lanb ping -f -c 2000 -q "$LANA_HOST" 2>&1)
lost=$(echo "$out" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
rec1=$(sess hub udp.fec.recovered)
ok_if "the hub rebuilt lost records (udp.fec.recovered $rec0 -> $rec1)" ge "${rec1:-0}" $((${rec0:-0} + 10))
ok_if "2000 pings lose ${lost:-?} % with 3 % of the spoke's datagrams dropped (at most 1 %)" \
    python3 -c "import sys; sys.exit(not float(sys.argv[1]) <= 1.0)" "${lost:-100}"
ok_if "the hub counts the parity it got (udp.fec.parity_in $(sess hub udp.fec.parity_in))" \
    ge "$(sess hub udp.fec.parity_in)" 100
ok_if "the spoke's log says parity started" grep -q "of our UDP records: a parity record every" "$T/spoke.log"
hub nft delete table inet lossy
# Loss gone: after 10 reports under 0.05 % the spoke stops (the steady
# pings still going: parity does not stop for want of reports).
ok_if "the loss gone, parity stops (spoke udp.fec.parity_every 0)" \
    wait_until 25 eval '[ "$(sess spoke udp.fec.parity_every)" = 0 ]'
kill "$flood" 2>/dev/null
wait "$flood" 2>/dev/null
ok_if "... and its log says so" grep -q "UDP loss is under 0.05 %: parity off" "$T/spoke.log"

# ---- a spoke that never probes (an older client) -------------------------------------
section "older client"
nsd_stop spoke
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke-noudp.conf"
wait_until 10 eval '[ -z "$(mtg_ifaces "$NS_HUB")" ]'
wait_tunnel 15 && tap_result 0 "a spoke with udp = no connects" ||
    tap_result 1 "a spoke with udp = no connects" "$(tail -n 5 "$T/spoke.log")"
ok_if "traffic passes" ping_ab 5
stream "$NS_LANB" "$NS_LANA" "$LANA_HOST" "lan-b -> lan-a over TLS"
ok_if "channel tcp on both sides, nothing over UDP (hub udp.packets_in '$(sess hub udp.packets_in)')" \
    eval 'is_channel hub tcp && is_channel spoke tcp && [ "$(sess hub udp.packets_in)" = 0 ]'
ok_if "the spoke keeps its offloads (SEGMENTS over TLS, as before)" \
    test "$(sess spoke offload)" = True

# ---- fec = no on the spoke: neither side sends parity ---------------------------------
section "fec = no"
nsd_stop spoke
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke-nofec.conf"
wait_until 10 eval '[ -z "$(mtg_ifaces "$NS_HUB")" ]'
wait_tunnel 15 && wait_until 10 eval 'is_channel spoke udp && is_channel hub udp' ||
    bail "no UDP tunnel with fec = no"
hub nft -f - <<NFT
table inet lossy {
    chain in { type filter hook input priority -10; udp dport $UDP_PORT numgen random mod 100 < 3 drop; }
}
NFT
lanb ping -f -c 3000 -q "$LANA_HOST" >/dev/null 2>&1
hub nft delete table inet lossy
ok_if "with [tunnel] fec = no the spoke sent no parity (udp.fec.parity_out '$(sess spoke udp.fec.parity_out)', enabled '$(sess spoke udp.fec.enabled)')" \
    eval '[ "$(sess spoke udp.fec.parity_out)" = 0 ] && [ "$(sess spoke udp.fec.enabled)" = False ]'
ok_if "... and the hub rebuilt nothing (udp.fec.recovered '$(sess hub udp.fec.recovered)')" \
    test "$(sess hub udp.fec.recovered)" = 0

fi # UDP_ONLY_REVOKE, UDP_ONLY_REKEY

# ---- rekey ------------------------------------------------------------------------------
if [ -z "${UDP_ONLY_REVOKE:-}" ] && [ "${FAULT_INJECTION:-0}" = 1 ]; then
section "rekey"
nsd_stop spoke
nsd_stop hub
hub_l0=$(wc -l <"$T/hub.log")
spoke_l0=$(wc -l <"$T/spoke.log")
# Read by fault-injection builds only (udp.c, rekey_knobs).
export MTLSGW_UDP_REKEY_AFTER=${UDP_REKEY_AFTER:-300} MTLSGW_UDP_REKEY_MS=${UDP_REKEY_MS:-3000}
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until 5 eval "hub ss -Hlun 'sport = :$UDP_PORT' | grep -q $HUB_WAN"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke-udp.conf"
unset MTLSGW_UDP_REKEY_AFTER MTLSGW_UDP_REKEY_MS
wait_tunnel 15 && wait_until 10 eval 'is_channel spoke udp && is_channel hub udp' ||
    bail "no UDP tunnel for the rekey"
e0=$(sess hub udp.epoch)
in0=$(sess hub udp.packets_in)
tin0=$(sess hub tcp.packets_in)
stream "$NS_LANB" "$NS_LANA" "$LANA_HOST" "lan-b -> lan-a across rekeys"
stream "$NS_LANA" "$NS_LANB" "$LANB_HOST" "lan-a -> lan-b across rekeys"
e1=$(sess hub udp.epoch)
ok_if "the records' limit drove rekeys during the streams (hub epoch $e0 -> $e1)" \
    eval '[ "${e1:-0}" -ge $((${e0:-0} + 4)) ]'
in1=$(sess hub udp.packets_in)
tin1=$(sess hub tcp.packets_in)
ok_if "... and the data stayed on UDP (udp.packets_in $in0 -> $in1, tcp $tin0 -> $tin1)" \
    eval '[ $((in1 - in0)) -ge 2500 ] && [ $((tin1 - tin0)) -le 10 ]'
# Idle: the timer alone (3 s here, 10 minutes by default).
sleep 12
e2=$(sess hub udp.epoch)
ok_if "the timer drives rekeys on an idle tunnel (hub epoch $e1 -> $e2 in 12 s)" \
    eval '[ "${e2:-0}" -ge $((e1 + 2)) ]'
ok_if "traffic passes over UDP after the rekeys" \
    eval 'ping_ab 5 && is_channel hub udp && is_channel spoke udp'
# Both sides went through the same epochs, in order (from their logs: a
# status call takes seconds here and the timer runs on).
epochs() { tail -n +$(($2 + 1)) "$T/$1.log" | sed -n 's/.*: UDP epoch \([0-9]*\) (.*/\1/p' |
    tr '\n' ' '; }
same_epochs() {
    eh=$(epochs hub "$hub_l0") es=$(epochs spoke "$spoke_l0")
    [ "$eh" = "$es" ] && [ "$eh" = "$(seq -s ' ' 1 "$(echo "$eh" | wc -w)") " ]
}
if wait_until 10 same_epochs; then
    tap_result 0 "both sides went through the same epochs, 1 to $(echo "$eh" | wc -w)"
else
    tap_result 1 "both sides went through the same epochs" "hub: $eh
spoke: $es"
fi
# Epoch and rekeys from one status call.
er=$(mtg_at hub status --json 2>/dev/null | python3 -c 'import json, sys
for x in json.load(sys.stdin).get("sessions_list", []):
    if "udp" in x:
        print(x["udp"].get("epoch"), x["udp"].get("rekeys"))')
ok_if "status shows the epoch and counts the rekeys (hub epoch/rekeys: $er)" \
    eval '[ "${er% *}" = "${er#* }" ] && [ "${er% *}" -ge 8 ]'
af_h=$(sess hub udp.auth_failures) af_s=$(sess spoke udp.auth_failures)
rp_h=$(sess hub udp.replays) rp_s=$(sess spoke udp.replays)
ok_if "no record refused across the epochs (auth_failures $af_h/$af_s, replays $rp_h/$rp_s)" \
    eval '[ "$af_h$af_s$rp_h$rp_s" = 0000 ]'
ok_if "the tunnel never fell back to TLS" \
    eval '! { tail -n +$((hub_l0 + 1)) "$T/hub.log"; tail -n +$((spoke_l0 + 1)) "$T/spoke.log"; } |
        grep -q "UDP stopped answering\|used up\|rekey.*failed"'
fi

if [ -z "${UDP_ONLY_REKEY:-}" ]; then
# ---- revocation ends both channels ---------------------------------------------------
section "revoke"
nsd_stop spoke
nsd_stop hub
# The teardown after a kill held 15 s (tunnel.c, fault point tunnel-finish):
# the TUN is still open then, and the UDP channel must already be closed.
if [ "${FAULT_INJECTION:-0}" = 1 ]; then
    MTLSGW_FAULT=tunnel-finish:15000 nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
else
    nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
fi
wait_until 5 eval "hub ss -Hlun 'sport = :$UDP_PORT' | grep -q $HUB_WAN"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke-udp.conf"
wait_tunnel 15 && wait_until 10 eval 'is_channel spoke udp && is_channel hub udp' ||
    bail "no UDP tunnel for the revocation"
# Records the hub never opened: captured on its wire, dropped before its
# socket. Half are sent before the revocation (they pass: the test can see
# a delivery), half after (they must not).
# (Held for 1.5 s: less than the 2 keepalives after which the spoke would
# move to TLS.)
hub python3 "$TOOL" capture wan "$SPOKE_WAN" "$UDP_PORT" 30 "$T/held.hex" 6 >/dev/null &
cap=$!
wait_until 10 test -e "$T/held.hex.ready"
hub nft -f - <<NFT
table inet hold {
    chain pre { type filter hook prerouting priority -300; ip saddr $SPOKE_WAN udp dport $UDP_PORT drop; }
}
NFT
lanb ping -c 30 -i 0.05 -W 0.1 -q "$LANA_HOST" >/dev/null 2>&1
hub nft delete table inet hold
wait "$cap"
# The pings' records: DATA (type 1), 84 bytes of ICMP and 32 of record.
python3 - "$T/held.hex" "$T/early.hex" "$T/late.hex" <<'PY'
import sys
recs = [l.strip() for l in open(sys.argv[1]) if l.strip()]
pings = [r for r in recs if len(r) // 2 == 32 + 84 and r[:2] == "11"]
half = len(pings) // 2
open(sys.argv[2], "w").write("".join(r + "\n" for r in pings[:half]))
open(sys.argv[3], "w").write("".join(r + "\n" for r in pings[half:]))
PY
early=$(wc -l <"$T/early.hex")
lana python3 "$TOOL" pings "$LANB_HOST" 30 "$T/early.ready" >"$T/early.got" &
cnt=$!
wait_until 10 test -e "$T/early.ready"
rp0=$(sess hub udp.replays) af0=$(sess hub udp.auth_failures)
spoke python3 "$TOOL" send "$HUB_WAN" "$UDP_PORT" "$T/early.hex" >/dev/null
touch "$T/early.ready.stop"
wait "$cnt"
echo "# hub: replays $rp0 -> $(sess hub udp.replays), auth failures $af0 -> $(sess hub udp.auth_failures), recovered $(sess hub udp.fec.recovered), spoke parity_every $(sess spoke udp.fec.parity_every)"
ok_if "held records sent before the revocation reach lan-a ($(cat "$T/early.got") of $early)" \
    eval '[ "$early" -ge 5 ] && [ "$(cat "$T/early.got")" -ge "$early" ]'
hub_if=$(mtg_ifaces "$NS_HUB" | head -n 1)
# What the hub's TUN took in (the kernel's count: the nft rules on the
# interface, which the revocation also changes, come after it).
rx_of() { ip -n "$NS_HUB" -s -j link show "$1" 2>/dev/null | python3 -c 'import json, sys
print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'; }
lana python3 "$TOOL" pings "$LANB_HOST" 60 "$T/late.ready" >"$T/late.got" &
cnt=$!
wait_until 10 test -e "$T/late.ready"
ok_if "mtlsgw revoke spoke1" mtg_at hub revoke spoke1 --reason keyCompromise
if [ "${FAULT_INJECTION:-0}" = 1 ]; then
    ok_if "the teardown is held: $hub_if still there" eval '[ -n "$(mtg_ifaces "$NS_HUB")" ]'
fi
rx0=$(rx_of "$hub_if")
spoke python3 "$TOOL" send "$HUB_WAN" "$UDP_PORT" "$T/late.hex" >/dev/null
out python3 "$TOOL" send "$HUB_WAN" "$UDP_PORT" "$T/late.hex" >/dev/null
rx1=$(rx_of "$hub_if")
touch "$T/late.ready.stop"
wait "$cnt"
ok_if "held records sent after the revocation reach nothing ($(cat "$T/late.got") at lan-a)" \
    test "$(cat "$T/late.got")" = 0
if [ "${FAULT_INJECTION:-0}" = 1 ]; then
    ok_if "... not even $hub_if, still up meanwhile (its rx packets $rx0 -> $rx1)" \
        eval '[ -n "$rx1" ] && [ "$rx0" = "$rx1" ]'
fi
ok_if "the hub's tunnel interface goes" wait_until 25 eval '[ -z "$(mtg_ifaces "$NS_HUB")" ]'
ok_if "the hub's log: $hub_if down" grep -q "tunnel $hub_if down" "$T/hub.log"
fi # UDP_ONLY_REKEY

tap_done
