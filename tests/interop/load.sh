#!/bin/bash
# Limits under load (issue 8, part 3), against a real mtlsgwd:
#
#   1,000 connections that open TCP and never send a byte, plus 200 that send
#   a ClientHello and then nothing (tests/interop/flood.py, from 40 loopback
#   source addresses 127.0.1.x): an admin's curl still completes within 2 s;
#   every one of the 1,200 is dropped at the handshake timeout (5 s here),
#   not before, not much later; the daemon's session process returns to its
#   memory baseline afterwards.
#   max-per-source and max-sessions (the latter lowered by SIGHUP): the
#   connections over the limit get a TLS alert or a plain close, never a
#   reset; the daemon keeps serving; the log does not get a line per refusal.
#
# The suite runs with a soft open-files limit of 1024: the daemon must raise
# its own (docs/mtlsgwd.md) to hold 1,200 connections.
#
# usage: load.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_need curl certtool python3
FLOOD=
dmn_cleanup_more() {
    [ -n "$FLOOD" ] && kill "$FLOOD" 2>/dev/null
}
dmn_temp load

HS_TIMEOUT=5
PER_SOURCE=40
MAX_SESSIONS=1500
N_IDLE=1000
N_STALL=200
# 40 source addresses: 30 connections each, under max-per-source.
SOURCES=$(seq -s, -f '127.0.1.%g' 1 40)

dmn_fixture_or_bail
limits_conf() { # max-sessions
    gw_conf "$T/gw.conf" "handshake-timeout = $HS_TIMEOUT" "max-per-source = $PER_SOURCE" \
        "max-sessions = $1"
}
limits_conf "$MAX_SESSIONS"

# The usual default soft limit; the hard limit high enough for the daemon to
# raise its soft limit to what max-sessions needs.
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 4096 ] || ulimit -Hn 65536 2>/dev/null
ulimit -Sn 1024

dmn_start || { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }
SPID=$(pgrep -P "$DPID" -x mtlsgwd | head -n 1)
[ -n "$SPID" ] || { echo "Bail out! no session process under $DPID"; exit 1; }

nofile=$(awk '/^Max open files/ { print $4 }' "/proc/$SPID/limits")
ok_if "the daemon raised its own open files limit from 1024 (now $nofile)" \
    test "$nofile" -gt "$((MAX_SESSIONS + 64))"

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SPID/status"; } # KiB

# An admin's request with its own timing: sets HTTP and SECS.
timed_admin() {
    local out
    out=$(curl -sS --max-time 10 --cacert "$P/ca.crt" --cert "$T/admin1.crt" \
        --key "$T/admin1.key" -o /dev/null -w '%{http_code} %{time_total}' \
        "https://127.0.0.1:$PORT/api/v1/status" 2>"$T/curl.err") || true
    HTTP=${out%% *}
    SECS=${out##* }
    [ -n "$HTTP" ] || HTTP=000
}

alive() { # after-what
    if ! kill -0 "$SPID" 2>/dev/null; then
        tap_result 1 "the session process is still the same after $1" "it is gone: $(tail -n 20 "$DLOG")"
        return
    fi
    timed_admin
    if [ "$HTTP" = 200 ]; then
        tap_result 0 "the session process is still the same and serves after $1"
    else
        tap_result 1 "the session process is still the same and serves after $1" \
            "HTTP $HTTP: $(cat "$T/curl.err")"
    fi
}

# Runs flood.py hold in the background; FLOOD_OUT gets its output.
flood_hold() { # idle stall watch
    rm -f "$T/flood.fifo"
    mkfifo "$T/flood.fifo"
    python3 "$here/flood.py" hold "$PORT" "$1" "$2" "$SOURCES" "$3" >"$T/flood.fifo" \
        2>"$T/flood.err" &
    FLOOD=$!
    exec {FLOOD_FD}<"$T/flood.fifo"
    FLOOD_READY=
    read -r -t 60 FLOOD_READY <&"$FLOOD_FD"
}

flood_result() {
    FLOOD_JSON=
    read -r -t 60 FLOOD_JSON <&"$FLOOD_FD"
    wait "$FLOOD"
    FLOOD=
    exec {FLOOD_FD}<&-
}

# Passes when python3 CODE holds for the JSON in sys.argv[1] (as j).
json_ok() { # name json code
    local err
    if err=$(python3 -c "import json, sys
j = json.loads(sys.argv[1])
$3" "$2" 2>&1); then
        tap_result 0 "$1"
    else
        tap_result 1 "$1" "$err
got: $2"
    fi
}

# ---- warm-up and baseline ---------------------------------------------------
# Thread stacks, allocator arenas and GnuTLS' first-use state exist after a
# first small round; the baseline is taken after it.
for i in 1 2 3 4 5; do timed_admin; done
flood_hold 200 50 $((HS_TIMEOUT + 8))
flood_result
sleep 1
RSS0=$(rss)
echo "# session process VmRSS after warm-up (baseline): $RSS0 KiB"

# ---- 1,000 silent + 200 stalled ----------------------------------------------
log_mark
t0=$(now)
flood_hold "$N_IDLE" "$N_STALL" $((HS_TIMEOUT + 10))
echo "# flood: $FLOOD_READY (opened, failed) in $(python3 -c "print('%.2f' % ($(now) - $t0))") s"
case "$FLOOD_READY" in
"READY $((N_IDLE + N_STALL)) 0") tap_result 0 "all $((N_IDLE + N_STALL)) connections opened" ;;
*) tap_result 1 "all $((N_IDLE + N_STALL)) connections opened" "flood.py said '$FLOOD_READY': $(cat "$T/flood.err")" ;;
esac
RSS_PEAK=$(rss)
worst=0
codes=
for i in 1 2 3; do
    timed_admin
    codes="$codes $HTTP"
    echo "# admin request $i under load: HTTP $HTTP in $SECS s"
    worst=$(python3 -c "print(max($worst, ${SECS:-99}))")
    [ "$HTTP" = 200 ] || break
done
ok_if "under load 3 admin requests answered 200 ($codes), the slowest in $worst s (limit 2 s)" \
    python3 -c "import sys; sys.exit(not ('$codes'.split() == ['200'] * 3 and $worst <= 2.0))"
r=$(rss)
[ "$r" -gt "$RSS_PEAK" ] && RSS_PEAK=$r
flood_result
echo "# flood result: $FLOOD_JSON"
json_ok "the $N_IDLE silent connections were all dropped by the daemon" "$FLOOD_JSON" \
    "assert j['idle']['closed'] == $N_IDLE and j['idle']['open'] == 0"
json_ok "the $N_STALL stalled handshakes were all dropped by the daemon" "$FLOOD_JSON" \
    "assert j['stall']['closed'] == $N_STALL and j['stall']['open'] == 0"
# Deadlines are checked by a 1 s tick: at the timeout and at most a tick (and
# a loaded machine's scheduling) later.
json_ok "none before the $HS_TIMEOUT s handshake timeout" "$FLOOD_JSON" \
    "assert min(j['idle']['min'], j['stall']['min']) >= $HS_TIMEOUT - 0.05"
json_ok "all within 3 s after it" "$FLOOD_JSON" \
    "assert max(j['idle']['max'], j['stall']['max']) <= $HS_TIMEOUT + 3"
json_ok "each with a close, none with a reset" "$FLOOD_JSON" \
    "assert j['idle']['rst'] == 0 and j['stall']['rst'] == 0"
n=$(log_since | grep -c "dropped: no handshake within $HS_TIMEOUT s")
ok_if "the log names the handshake timeout for each ($n lines)" test "$n" -ge "$((N_IDLE + N_STALL))"
alive "the flood"

# Memory back to the baseline (the trim comes a tick or two after the drop).
RSS_AFTER=
for i in $(seq 50); do
    RSS_AFTER=$(rss)
    [ "$RSS_AFTER" -le "$((RSS0 + 2048))" ] && break
    sleep 0.2
done
echo "# session process VmRSS: baseline $RSS0 KiB, peak $RSS_PEAK KiB, after $RSS_AFTER KiB"
# Tolerance: 2 MiB. The daemon hands freed memory back once the load has
# gone (malloc_trim on glibc, gateway/daemon/session/server.c), but pages that still hold a
# live chunk stay: about 0.1 to 0.8 MiB measured over repeated floods. A leak
# of 2 KiB per connection would be 2.3 MiB over these 1,200 and fails.
if ldd "$MTLSGWD" 2>/dev/null | grep -q libasan; then
    # ASan's allocator keeps freed memory in quarantine and never trims: the
    # figure means nothing there (the gcc build checks it; ASan checks leaks).
    TAP_N=$((TAP_N + 1))
    echo "ok $TAP_N - memory returned to the baseline # SKIP AddressSanitizer build (quarantine holds freed memory; after $RSS_AFTER KiB)"
else
    ok_if "memory returned to the baseline (baseline $RSS0, peak $RSS_PEAK, after $RSS_AFTER KiB; tolerance 2 MiB)" \
        test "$RSS_AFTER" -le "$((RSS0 + 2048))"
fi
ok_if "and the load did cost memory while it lasted (peak above baseline)" \
    test "$RSS_PEAK" -gt "$RSS0"

# ---- max-per-source ------------------------------------------------------------
sleep 1
PROBE=$(python3 "$here/flood.py" probe "$PORT" $((PER_SOURCE + 10)) 127.0.2.1 5 2>&1)
echo "# $((PER_SOURCE + 10)) from 127.0.2.1 (max-per-source $PER_SOURCE): $PROBE"
json_ok "max-per-source: $PER_SOURCE of $((PER_SOURCE + 10)) from one address get a handshake" \
    "$PROBE" "assert j['handshake'] == $PER_SOURCE"
json_ok "max-per-source: the other 10 get a TLS alert or a close, no reset, none left hanging" \
    "$PROBE" "assert j['alert'] + j['eof'] == 10 and j['rst'] == 0 and j['silent'] == 0 and j['failed'] == 0"
alive "max-per-source"

# ---- max-sessions (lowered by SIGHUP) --------------------------------------------
limits_conf 60
log_mark
kill -HUP "$DPID"
log_wait "SIGHUP" 1
sleep 1
PROBE=$(python3 "$here/flood.py" probe "$PORT" 80 127.0.3.1,127.0.3.2,127.0.3.3,127.0.3.4 5 2>&1)
echo "# 80 from 4 addresses (max-sessions 60): $PROBE"
json_ok "max-sessions: 60 of 80 get a handshake" "$PROBE" "assert j['handshake'] == 60"
json_ok "max-sessions: the other 20 get a TLS alert or a close, no reset, none left hanging" \
    "$PROBE" "assert j['alert'] + j['eof'] == 20 and j['rst'] == 0 and j['silent'] == 0 and j['failed'] == 0"
n=$(log_since | grep -c "max-sessions")
ok_if "the log has a few lines for 20 refusals, not one each ($n)" test "$n" -ge 1 -a "$n" -le 6
limits_conf "$MAX_SESSIONS"
kill -HUP "$DPID"
sleep 1
alive "max-sessions"
ok_if "the parent is still the one started" kill -0 "$DPID"
expect_not_in "session process died" "$(cat "$DLOG")" "the session process never died"
dmn_stop
tap_done
