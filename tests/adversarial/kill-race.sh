#!/bin/bash
# Attack: keep a tunnel that revoke and kick cannot end, by landing in the
# window between the handshake's end and the tunnel threads owning the
# connection (docs/security.md "Revocation cannot be dodged"). A peer can
# time that window from outside: its own handshake ends it. The hub is
# started with fault injection widening the window to 3 s:
#
#   handshake-verdict:3000  between the verdict and the session counting as open
#   tunnel-setup:3000       between "open" and the tunnel threads owning it
#
#    lan-a              hub                               spoke              lan-b
#  +-------+     +---------------+                  +---------------+     +-------+
#  |    va |-----| va        wan |------------------| wan        vb |-----| vb    |
#  +-------+     +------ vo -----+                  +---------------+     +-------+
#  10.10.0.2/24  10.10.0.1/24  192.168.50.1/24   192.168.50.2/24  10.20.0.1/24  10.20.0.2/24
#                    |  [tunnel] 192.168.50.1:4433   [uplink hub] spoke1
#   victim: an admin with a key file, on [management] 10.10.0.1:8443 from
#   lan-a, revoked while its verdict is being taken
#
# (c) the tick's deadline lands in the window (for a tunnel it was "now"),
#     then a kick ends the tunnel within a second;
# (b) a kick in the window: the session never gets an interface;
# (e) the tick's deadline lands in the window, then a revoke ends the
#     tunnel within a second (before the fix: the kill recorded by the tick
#     made every later kill a no-op, and revoke said "ended 1 session(s)");
# (a) a revoke in the window (spoke1 enrolled again with a new key): no
#     interface, route, nft element or traffic within a second of the
#     window's end, and revoke says what it ended;
# (d) an admin revoked between its verdict and "open" gets no answer.
#
# usage: kill-race.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../netns/lib-topo.sh" "$@"
. "$here/lib.sh"

[ "${FAULT_INJECTION:-0}" = 1 ] || { echo "1..0 # SKIP needs -Dfault_injection=true"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP namespaces and TUN devices need root"; exit 77; }
adv_need ip nft python3 openssl ping softhsm2-util

adv_topo_temp killrace
adv_topo_up
adv_mtg_fixture '[management]' "listen = $LANA_GW:$MGMT_PORT"
adv_p12_peer victim admin || { echo "Bail out! fixture: victim could not be enrolled"; exit 1; }

WINDOW=2
: >"$T/hub.log"
: >"$T/spoke.log"
MTLSGW_FAULT="handshake-verdict:${WINDOW}000,tunnel-setup:${WINDOW}000" \
    nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
wait_until 5 eval "hub ss -Hltn 'sport = :$TUN_PORT' | grep -q $HUB_WAN" ||
    { echo "Bail out! the hub did not start"; tail -n 20 "$T/hub.log"; exit 1; }

# ---- helpers -------------------------------------------------------------------
declare -A MARK
mark() { MARK[$1]=$(wc -l <"$T/$1.log"); }
since() { tail -n +"$((${MARK[$1]:-0} + 1))" "$T/$1.log"; }
log_has() { since "$1" | grep -qE -- "$2"; }
now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
le() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$1" "$2"; }
# Sleep until the epoch T (no-op when past).
sleep_until() { python3 -c 'import sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.time()))' "$1"; }
plus() { python3 -c 'import sys; print("%.6f" % (float(sys.argv[1]) + float(sys.argv[2])))' "$1" "$2"; }

iface_present() { mtg_ifaces "$1" | grep -qxF -- "$2"; }
iface_absent() { ! iface_present "$1" "$2"; }
elem_with() { nft_elems "$1" "$2" | grep -E -- "(^| )$3( |$)"; } # ns set word
route_dev() { # ns prefix
    ip -n "$1" -j route show "$2" 2>/dev/null | python3 -c 'import json, sys
r = json.load(sys.stdin)
print(r[0].get("dev", "") if r else "")'
}
ping_ab() { lanb ping -c "${1:-2}" -i 0.2 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }

monitor_links() { # ns file
    ip -n "$1" -ts monitor link >"$2" 2>&1 &
    MON_PID=$!
    LOCAL_PIDS="$LOCAL_PIDS $MON_PID"
}
stop_monitor() { kill "$MON_PID" 2>/dev/null; wait "$MON_PID" 2>/dev/null; }
# The epoch of the first "Deleted N: IFNAME" the monitor saw (waits SECONDS).
link_deleted_at() { # file ifname seconds
    wait_until "$3" grep -qE "\] Deleted [0-9]+: $2[:@]" "$1" || return 1
    grep -m1 -E "\] Deleted [0-9]+: $2[:@]" "$1" | python3 -c 'import datetime, sys
ts = sys.stdin.read().split("]")[0].lstrip("[")
print("%.6f" % datetime.datetime.fromisoformat(ts).timestamp())'
}

# The session id of spoke1's next tunnel, once the hub holds it in the
# tunnel-setup window; sets SID and T_WIN (when the window was seen to open).
SID=
T_WIN=
spoke1_in_window() { # seconds
    SID=
    wait_until "$1" log_has hub "fault injection: tunnel-setup" || return 1
    T_WIN=$(now)
    SID=$(since hub | grep -oE "spoke1 .*accepted as tunnel, session [0-9]+" | tail -n 1 |
        grep -oE '[0-9]+$')
    [ -n "$SID" ]
}

# The state left for session SID's interface: nothing, or what is there.
leftovers() { # ifname
    local what=""
    iface_present "$NS_HUB" "$1" && what="$what interface $1;"
    [ "$(route_dev "$NS_HUB" "$LANB_NET")" = "$1" ] && what="$what route $LANB_NET dev $1;"
    [ -n "$(elem_with "$NS_HUB" trusted_ifaces "$1")" ] && what="$what trusted_ifaces $1;"
    [ -n "$(elem_with "$NS_HUB" allowed4 "$1")" ] && what="$what allowed4 $(elem_with "$NS_HUB" allowed4 "$1" | tr '\n' ' ');"
    printf '%s' "$what"
}

# No tunnel session on the hub, open or handshaking (a reconnection of the
# spoke from the phase before may still be held in a window).
hub_idle() {
    mtg_at hub status --json 2>/dev/null | python3 -c 'import json, sys
s = json.load(sys.stdin)["sessions"]
sys.exit(0 if s["tunnel"] == 0 and s["handshaking"] == 0 else 1)'
}
# A phase starts with the spoke stopped and the hub idle, then a fresh spoke.
phase_start() {
    nsd_stop spoke
    wait_until $((2 * WINDOW + 6)) hub_idle ||
        echo "# the hub still holds a session: $(mtg_at hub status 2>&1 | tail -n 3)"
    mark hub
    : >"$T/spoke.log"
    nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
}

# ---- (c) the tick's deadline in the window, then a kick ----------------------------
echo "# (c) the tick's idle/handshake deadline lands in the window; a kick after it"
phase_start
if spoke1_in_window 15; then
    tap_result 0 "(c) spoke1's session $SID held in the tunnel-setup window"
else
    tap_result 1 "(c) spoke1's session held in the tunnel-setup window" "hub log:
$(since hub | tail -n 10)"
fi
# The 1 s tick passes at least twice while the window lasts.
if wait_until $((WINDOW + 5)) ping_ab 1; then
    tap_result 0 "(c) after the window the tunnel carries traffic (mtg$SID)"
else
    tap_result 1 "(c) after the window the tunnel carries traffic" "hub log:
$(since hub | tail -n 10)"
fi
ok_if "(c) the tick did not end the open tunnel for idleness" eval '! log_has hub "session $SID closed: idle"'
monitor_links "$NS_HUB" "$T/c.mon"
sleep 0.3
mark hub
t0=$(now)
kick_out=$(mtg_at hub kick spoke1 2>&1)
t_gone=$(link_deleted_at "$T/c.mon" "mtg$SID" 3)
stop_monitor
if [ -n "$t_gone" ] && le "$(elapsed "$t0" "$t_gone")" 1.0; then
    tap_result 0 "(c) a kick after the tick's deadline ends mtg$SID within 1 s ($(elapsed "$t0" "$t_gone") s)"
else
    tap_result 1 "(c) a kick after the tick's deadline ends mtg$SID within 1 s" \
        "deleted at '${t_gone:-never, in 3 s}'; kick said: $kick_out; left: $(leftovers "mtg$SID"); hub log:
$(since hub | tail -n 8)"
fi
expect_in "ended 1 session(s) of spoke1" "$kick_out" "(c) kick says it ended 1 session"
ok_if "(c) nothing left of mtg$SID" test -z "$(leftovers "mtg$SID")"

# ---- (b) a kick in the window ---------------------------------------------------------
echo "# (b) mtlsgw kick while spoke1's tunnel setup is held"
phase_start
if spoke1_in_window 15; then
    tap_result 0 "(b) spoke1's session $SID held in the tunnel-setup window"
else
    tap_result 1 "(b) spoke1's session held in the tunnel-setup window" "hub log:
$(since hub | tail -n 10)"
fi
monitor_links "$NS_HUB" "$T/b.mon"
kick_out=$(mtg_at hub kick spoke1 2>&1)
expect_in "ended 1 session(s) of spoke1" "$kick_out" "(b) kick in the window says it ended 1 session"
# A second kick finds nothing more to end (counted once).
kick2=$(mtg_at hub kick spoke1 2>&1)
expect_not_in "ended 1 session" "$kick2" "(b) a second kick does not count the dying session again ($kick2)"
sleep_until "$(plus "$T_WIN" $((WINDOW + 1)))"
left=$(leftovers "mtg$SID")
ok_if "(b) 1 s after the window: nothing of mtg$SID (left: ${left:-nothing})" test -z "$left"
ok_if "(b) mtg$SID was never made, or deleted" eval '! grep -qE "^\[[^]]*\] [0-9]+: mtg$SID[:@]" "$T/b.mon" || grep -qE "Deleted [0-9]+: mtg$SID[:@]" "$T/b.mon"'
# A kick is not a revoke: spoke1 dials again after its backoff, and on a
# loaded machine that new session may be up by now. What must hold is that
# no packet crosses through the kicked session: lan-b either cannot reach
# lan-a, or reaches it through a later session's interface, never mtg$SID.
via=$(route_dev "$NS_HUB" "$LANB_NET")
if ping_ab 1 && { [ -z "$via" ] || [ "$via" = "mtg$SID" ]; }; then
    tap_result 1 "(b) lan-b cannot reach lan-a through mtg$SID" "route via '${via}'; hub interfaces: $(mtg_ifaces "$NS_HUB" | tr '\n' ' '); hub log:
$(since hub | tail -n 25)"
else
    tap_result 0 "(b) lan-b cannot reach lan-a through mtg$SID${via:+ (spoke1 dialled again: $via)}"
fi
ok_if "(b) the hub ended session $SID as kicked" log_has hub "session $SID closed: kicked"
stop_monitor

# ---- (e) the tick's deadline in the window, then a revoke ------------------------------
echo "# (e) the tick's deadline lands in the window; a revoke after it"
phase_start
if spoke1_in_window 15; then
    tap_result 0 "(e) spoke1's session $SID held in the tunnel-setup window"
else
    tap_result 1 "(e) spoke1's session held in the tunnel-setup window" "hub log:
$(since hub | tail -n 10)"
fi
if wait_until $((WINDOW + 5)) ping_ab 1; then
    tap_result 0 "(e) after the window the tunnel carries traffic (mtg$SID)"
else
    tap_result 1 "(e) after the window the tunnel carries traffic" "hub log:
$(since hub | tail -n 10)"
fi
ip netns exec "$NS_LANB" ping -D -i 0.05 -W 1 "$LANA_HOST" >"$T/ping.out" 2>&1 &
pinger=$!
LOCAL_PIDS="$LOCAL_PIDS $pinger"
monitor_links "$NS_HUB" "$T/e.mon"
sleep 0.5
mark hub
t0=$(now)
revoke_out=$(mtg_at hub revoke spoke1 --reason keyCompromise 2>&1)
t_gone=$(link_deleted_at "$T/e.mon" "mtg$SID" 3)
stop_monitor
sleep 1
kill "$pinger" 2>/dev/null
wait "$pinger" 2>/dev/null
if [ -n "$t_gone" ] && le "$(elapsed "$t0" "$t_gone")" 1.0; then
    tap_result 0 "(e) revoke ends mtg$SID within 1 s ($(elapsed "$t0" "$t_gone") s)"
else
    tap_result 1 "(e) revoke ends mtg$SID within 1 s" \
        "deleted at '${t_gone:-never, in 3 s}'; revoke said: $revoke_out; left: $(leftovers "mtg$SID"); hub log:
$(since hub | tail -n 8)"
fi
last=$(grep -oE '^\[[0-9.]+\] [0-9]+ bytes from' "$T/ping.out" | grep -oE '^\[[0-9.]+' | tr -d '[' | tail -n 1)
if [ -n "$last" ] && le "$(elapsed "$t0" "$last")" 1.0; then
    tap_result 0 "(e) traffic through it stops within 1 s (last answer $(elapsed "$t0" "$last") s after)"
else
    tap_result 1 "(e) traffic through it stops within 1 s" "last answer at '${last:-none}', revoke at $t0"
fi
ok_if "(e) nothing left of mtg$SID (left: $(leftovers "mtg$SID"))" test -z "$(leftovers "mtg$SID")"
expect_in "ended 1 session(s)" "$revoke_out" "(e) revoke says it ended 1 session"
ok_if "(e) ... and the hub did end session $SID (no longer trusted)" \
    log_has hub "session $SID closed: no longer trusted"

# spoke1 again, with a new key (the revoked one is never enrolled again).
nsd_stop spoke
{
    mtg_at spoke csr --cn spoke1 --new-key --out "$T/spoke/spoke1-2.csr" >/dev/null &&
        mtg_at hub enroll spoke1 --role tunnel --csr "$T/spoke/spoke1-2.csr" \
            --out "$T/spoke/spoke1-2.crt" --network "$LANB_NET" >/dev/null &&
        cp "$T/spoke/spoke1-2.crt" "$T/spoke/pki/device.crt"
} || { echo "Bail out! spoke1 could not be enrolled again"; exit 1; }

# ---- (a) a revoke in the window ----------------------------------------------------------
echo "# (a) mtlsgw revoke while spoke1's tunnel setup is held"
phase_start
if spoke1_in_window 15; then
    tap_result 0 "(a) spoke1's session $SID held in the tunnel-setup window"
else
    tap_result 1 "(a) spoke1's session held in the tunnel-setup window" "hub log:
$(since hub | tail -n 10)"
fi
monitor_links "$NS_HUB" "$T/a.mon"
revoke_out=$(mtg_at hub revoke spoke1 --reason keyCompromise 2>&1)
ok_if "(a) revoke lands inside the window" le "$(elapsed "$T_WIN" "$(now)")" "$WINDOW"
sleep_until "$(plus "$T_WIN" $((WINDOW + 1)))"
left=$(leftovers "mtg$SID")
ok_if "(a) 1 s after the window: no interface, route or nft element of mtg$SID (left: ${left:-nothing})" \
    test -z "$left"
ok_if "(a) no mtg interface at all on the hub" test -z "$(mtg_ifaces "$NS_HUB")"
ok_if "(a) no route to lan-b on the hub" test -z "$(route_dev "$NS_HUB" "$LANB_NET")"
ok_if "(a) lan-b cannot reach lan-a" eval '! ping_ab 2'
expect_in "ended 1 session(s)" "$revoke_out" "(a) revoke says it ended 1 session"
ok_if "(a) ... and the hub did end session $SID (no longer trusted)" \
    log_has hub "session $SID closed: no longer trusted"
sleep 2
ok_if "(a) spoke1 stays out (still no mtg interface 2 s later)" test -z "$(mtg_ifaces "$NS_HUB")"
stop_monitor
nsd_stop spoke
wait_until $((2 * WINDOW + 6)) hub_idle

# ---- (d) a revoke between the verdict and "open" ---------------------------------------------
echo "# (d) mtlsgw revoke while an admin's verdict is held (before its session counts as open)"
# victim.py: an admin's keep-alive HTTPS connection; after the handshake it
# asks for /api/v1/status and prints the status line, or EOF.
cat >"$T/victim.py" <<'PY'
import socket, ssl, sys
host, port, ca, crt, key = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(crt, key)
try:
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=15),
                        server_hostname=host)
    s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
    d = s.recv(4096)
    print(d.split(b"\r\n")[0].decode() if d else "EOF", flush=True)
except (ssl.SSLError, OSError) as e:
    print("EOF", type(e).__name__, flush=True)
PY
mark hub
ip netns exec "$NS_LANA" python3 "$T/victim.py" "$LANA_GW" "$MGMT_PORT" "$T/hub/pki/ca.crt" \
    "$T/victim.crt" "$T/victim.key" >"$T/victim.out" 2>&1 &
victim=$!
LOCAL_PIDS="$LOCAL_PIDS $victim"
if wait_until 10 log_has hub "fault injection: handshake-verdict"; then
    tap_result 0 "(d) victim's handshake held between its verdict and open"
else
    tap_result 1 "(d) victim's handshake held between its verdict and open" "hub log:
$(since hub | tail -n 10)"
fi
t_v=$(now)
revoke_out=$(mtg_at hub revoke victim 2>&1)
ok_if "(d) revoke lands inside the verdict window" le "$(elapsed "$t_v" "$(now)")" "$WINDOW"
wait_until $((WINDOW + 5)) eval '! kill -0 $victim'
res=$(cat "$T/victim.out")
expect_not_in "HTTP/1.1 200" "$res" "(d) the revoked admin gets no answer (got: ${res:-nothing})"
ok_if "(d) the hub refused it: trust ended during the handshake" \
    log_has hub "victim .*refused: trust ended during the handshake"

tap_done
