#!/bin/bash
# No wear: flash on a router wears with every write. For WEAR_SECONDS (60) of
# steady state -- a tunnel carrying pings, an admin's management session
# calling the API every second (which keeps the gate open), a new session
# every 5 s, `mtlsgw status` over the control socket every 5 s -- no file
# under either daemon's pki dir, config dir or run dir is written. Judged by
# inotify (every write, create, delete, rename, attribute change) and by the
# mtimes before and after. Then an enroll and a revoke: those must show up,
# so the watch is known to see writes (docs/mtlsgwd.md).
#
# The hub publishes its CRL ([crl] listen) and re-signs it every 30 s here
# ([crl] resign, 900 by default): other hubs count its freshness from
# thisUpdate (docs/pki.md). A re-sign is the one periodic write allowed:
# crl.pem, registry.json (the CRL number) and audit.log, atomically (and
# the pki dir's lock file opened to take the lock), and only as often as
# the hub's log says it re-signed.
#
#    lan-a (admin1: API every 1 s) -- hub [management] 10.10.0.1:8443, gate tcp/2222
#                                     hub [tunnel] 192.168.50.1:4433 <== spoke [uplink hub]
#    lan-b (ping lan-a every 0.2 s, through the tunnel)
#
#    watched: $T/hub, $T/hub/pki, $T/hub/run, $T/spoke, $T/spoke/pki, $T/spoke/run
#    (config file, PIN, pki files, control sockets; the SoftHSM token dirs
#    are the token's business and are only reported)
#
# usage: wear.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-topo.sh" "$@"

topo_need ip nft python3 openssl ping softhsm2-util pgrep
WEAR_SECONDS=${WEAR_SECONDS:-60}

topo_temp wear
topo_up_or_bail
mtg_fixture_or_bail "keepalive = 2" '[management]' "listen = $LANA_GW:$MGMT_PORT" \
    '[firewall]' 'gate = tcp/2222' 'gate-timeout = 3' '[crl]' "listen = $LANA_GW:8081" \
    'resign = 30'
mtg_p12_peer admin1 admin || { echo "Bail out! fixture: admin1"; exit 1; }

: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ping_ab() { lanb ping -c 1 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
wait_until 20 ping_ab ||
    { echo "Bail out! no tunnel: $(tail -3 "$T/hub.log") / $(tail -3 "$T/spoke.log")"; exit 1; }
tap_result 0 "the tunnel is up (lan-b pings lan-a)"

# ---- the load ------------------------------------------------------------------
# admin1: one session, GET /api/v1/status every second; COUNT lines in FILE.
api_loop() { # file every-seconds new-session-each-time(0|1)
    lana python3 -c 'import socket, ssl, sys, time
host, port, ca, crt, key, every, fresh = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(crt, key)
s = None
while True:
    if s is None:
        s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=5),
                            server_hostname=host)
    s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
    b = b""
    while b"\r\n\r\n" not in b:
        b += s.recv(4096) or sys.exit(1)
    h, _, body = b.partition(b"\r\n\r\n")
    n = [int(l.split(b":")[1]) for l in h.split(b"\r\n") if l.lower().startswith(b"content-length")]
    while n and len(body) < n[0]:
        body += s.recv(4096) or sys.exit(1)
    print(h.split(b"\r\n")[0].decode(), flush=True)
    if fresh == "1":
        s.close()
        s = None
    time.sleep(float(every))' "$LANA_GW" "$MGMT_PORT" "$T/hub/pki/ca.crt" "$T/admin1.crt" \
        "$T/admin1.key" "$2" "$3" >"$1" 2>&1 &
    LOCAL_PIDS="$LOCAL_PIDS $!"
}
api_loop "$T/api-held.out" 1 0
api_loop "$T/api-fresh.out" 5 1
lanb ping -i 0.2 -W 1 "$LANA_HOST" >"$T/ping.out" 2>&1 &
LOCAL_PIDS="$LOCAL_PIDS $!"
(
    while :; do
        mtg_at hub status >/dev/null 2>&1
        mtg_at spoke status >/dev/null 2>&1
        sleep 5
    done
) &
LOCAL_PIDS="$LOCAL_PIDS $!"
wait_until 5 grep -q "HTTP/1.1 200" "$T/api-held.out"
sleep 2 # the first session's own effects (gate opening, audit?) before the watch

# ---- the watch -----------------------------------------------------------------
DIRS="$T/hub $T/hub/pki $T/hub/run $T/spoke $T/spoke/pki $T/spoke/run"
TOKDIRS=$(find "$T/hub/tokens" "$T/spoke/tokens" -type d)
snapshot() { # -> "path mtime size" of every file in DIRS
    # shellcheck disable=SC2086
    find $DIRS -maxdepth 1 -mindepth 1 ! -type d -printf '%p %T@ %s\n' | sort
}
# inotify through ctypes (inotify-tools is not a dependency): one line per
# event, "SECONDS PATH EVENTS".
watch() { # out dirs...
    local out=$1
    shift
    python3 -c 'import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
masks = {0x2: "MODIFY", 0x4: "ATTRIB", 0x8: "CLOSE_WRITE", 0x40: "MOVED_FROM",
         0x80: "MOVED_TO", 0x100: "CREATE", 0x200: "DELETE", 0x400: "DELETE_SELF",
         0x800: "MOVE_SELF"}
fd = libc.inotify_init1(0)
wds = {}
for d in sys.argv[2:]:
    wd = libc.inotify_add_watch(fd, d.encode(), sum(masks))
    if wd < 0:
        sys.exit("inotify_add_watch %s: %s" % (d, os.strerror(ctypes.get_errno())))
    wds[wd] = d
out = open(sys.argv[1], "w", buffering=1)
out.write("# watching %d dirs\n" % len(wds))
t0 = time.monotonic()
while True:
    buf = os.read(fd, 65536)
    i = 0
    while i < len(buf):
        wd, mask, cookie, n = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + n].split(b"\0")[0].decode(errors="replace")
        i += 16 + n
        what = ",".join(v for k, v in masks.items() if mask & k)
        out.write("%.1f %s %s\n" % (time.monotonic() - t0,
                                    os.path.join(wds.get(wd, "?"), name), what))' "$out" "$@" &
    LOCAL_PIDS="$LOCAL_PIDS $!"
    WATCH_PID=$!
}
# shellcheck disable=SC2086
watch "$T/events" $DIRS
W_MAIN=$WATCH_PID
# shellcheck disable=SC2086
watch "$T/token-events" $TOKDIRS
W_TOK=$WATCH_PID
wait_until 5 grep -q "^# watching" "$T/events" || { echo "Bail out! inotify watch"; exit 1; }
wait_until 5 grep -q "^# watching" "$T/token-events"
resigned() { grep -c "CRL .* re-signed" "$T/hub.log"; }
RESIGN_FILES='/hub/pki/(crl\.pem|registry\.json|audit\.log|lock)(\.tmp[A-Za-z0-9]{6})?( |$)'
resign0=$(resigned)
before=$(snapshot)
api0=$(grep -c "HTTP/1.1 200" "$T/api-held.out")
fresh0=$(grep -c "HTTP/1.1 200" "$T/api-fresh.out")
ping0=$(grep -c "bytes from" "$T/ping.out")
echo "# steady state for $WEAR_SECONDS s"
sleep "$WEAR_SECONDS"
after=$(snapshot)
resign1=$(resigned)
api1=$(grep -c "HTTP/1.1 200" "$T/api-held.out")
fresh1=$(grep -c "HTTP/1.1 200" "$T/api-fresh.out")
ping1=$(grep -c "bytes from" "$T/ping.out")

# ---- what the load did, and what was written ------------------------------------
ok_if "the held session called the API about once a second ($((api1 - api0)) in $WEAR_SECONDS s)" \
    test $((api1 - api0)) -ge $((WEAR_SECONDS / 2))
ok_if "new sessions kept coming ($((fresh1 - fresh0)))" test $((fresh1 - fresh0)) -ge $((WEAR_SECONDS / 10))
ok_if "the tunnel carried the pings ($((ping1 - ping0)) answered)" \
    test $((ping1 - ping0)) -ge $((WEAR_SECONDS * 3))
ok_if "both daemons still run" eval 'nsd_alive hub && nsd_alive spoke'
ok_if "the gate is open for lan-a" eval 'nft_elems "$NS_HUB" gate4 | grep -qxF "$LANA_HOST"'
events=$(grep -v '^#' "$T/events")
resigns=$((resign1 - resign0))
echo "# the hub re-signed its CRL $resigns times in the window ([crl] resign = 30)"
ok_if "CRL re-signs at most every [crl] resign seconds ($resigns in $WEAR_SECONDS s)" \
    test "$resigns" -le $((WEAR_SECONDS / 30 + 1))
if [ "$resigns" -gt 0 ]; then
    ok_if "a re-sign wrote crl.pem" eval 'grep -qE "/hub/pki/crl\.pem .*(MODIFY|MOVED_TO)" \
        <<<"$events"'
    events=$(grep -vE "$RESIGN_FILES" <<<"$events")
    before=$(grep -vE "$RESIGN_FILES" <<<"$before")
    after=$(grep -vE "$RESIGN_FILES" <<<"$after")
fi
if [ -z "$events" ]; then
    tap_result 0 "no write under the pki, config or run dirs in $WEAR_SECONDS s (inotify)"
else
    tap_result 1 "no write under the pki, config or run dirs in $WEAR_SECONDS s (inotify)" \
        "$(printf '%s\n' "$events" | head -20)"
fi
if [ "$before" = "$after" ]; then
    tap_result 0 "no mtime or size changed there"
else
    tap_result 1 "no mtime or size changed there" "$(diff <(echo "$before") <(echo "$after"))"
fi
tok=$(grep -vc '^#' "$T/token-events")
echo "# the SoftHSM token dirs saw $tok events (the token's own writes, not judged)"

# ---- the watch sees writes: enroll and revoke ------------------------------------
mtg_at hub enroll wear1 --role monitor --p12 "$T/wear1.p12" --password-file "$T/pw" >/dev/null
mtg_at hub revoke wear1 >/dev/null
for f in registry.json crl.pem audit.log; do
    ok_if "enroll/revoke: the watch saw $f written" \
        wait_until 3 grep -q "/hub/pki/$f .*\(MODIFY\|MOVED_TO\)" "$T/events"
done
kill "$W_MAIN" "$W_TOK" 2>/dev/null
tap_done
