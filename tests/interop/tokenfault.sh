#!/bin/bash
# Token faults: the token goes away while the daemon runs (its SoftHSM token
# directory moved aside) and comes back. New handshakes fail with a logged
# reason, an established session keeps working, `mtlsgw status` says the
# token is unhealthy, and the daemon recovers without a restart.
#
# usage: tokenfault.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
trap '' PIPE
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

HOLD=
dmn_cleanup_more() {
    [ -n "$HOLD" ] && kill "$HOLD" 2>/dev/null
}
dmn_temp tokenfault
dmn_fixture_or_bail
dmn_start || { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }
get() {
    curl -sS --max-time 5 --cacert "$P/ca.crt" --cert "$T/admin1.crt" --key "$T/admin1.key" \
        "https://127.0.0.1:$PORT/api/v1/status" -o /dev/null -w '%{http_code}' 2>/dev/null
}
ok_if "the daemon serves with the token present" test "$(get)" = 200

# A session opened before the token goes, kept open by a client that sends
# one request now and one later on the same connection.
mkfifo "$T/in"
cat >"$T/hold.py" <<'PY'
import socket, ssl, sys
t, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=t + "/gw-pki/ca.crt")
ctx.check_hostname = False
ctx.load_cert_chain(t + "/admin1.crt", t + "/admin1.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
for line in sys.stdin:
    s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
    print(s.recv(4096).split(b"\r\n")[0].decode(), flush=True)
PY
python3 "$T/hold.py" "$T" "$PORT" <"$T/in" >"$T/hold.out" 2>&1 &
HOLD=$!
exec 3>"$T/in"
echo go >&3
# The held session must be up (its handshake signed) before the token goes:
# on a loaded machine that takes more than a second.
for i in $(seq 100); do grep -q "HTTP/1.1 200" "$T/hold.out" 2>/dev/null && break; sleep 0.1; done
ok_if "a session opened with the token present answers" grep -q "HTTP/1.1 200" "$T/hold.out"

mv "$T/tokens" "$T/tokens.away"
code=$(get)
ok_if "with the token gone a new handshake fails (got HTTP '$code')" test "$code" != 200
sleep 6
expect_exit 0 "mtlsgw status still answers" hub status
expect_in "NOT ANSWERING" "$OUT" "status shows the token unhealthy"
# A dead holder must fail the next check, not kill the suite with SIGPIPE.
if kill -0 "$HOLD" 2>/dev/null; then echo again >&3 2>/dev/null; fi
for i in $(seq 50); do [ "$(grep -c "HTTP/1.1 200" "$T/hold.out")" -ge 2 ] && break; sleep 0.1; done
n=$(grep -c "HTTP/1.1 200" "$T/hold.out")
ok_if "the session opened before keeps working (2 answers, got $n)" test "$n" = 2
expect_in "cannot sign" "$(cat "$DLOG")" "the log says why handshakes fail"
mv "$T/tokens.away" "$T/tokens"
for i in $(seq 80); do [ "$(get)" = 200 ] && break; sleep 0.25; done
ok_if "the token back: new handshakes work again without a restart" test "$(get)" = 200
expect_in "answers again" "$(cat "$DLOG")" "the log says the token is back"
expect_exit 0 "mtlsgw status" hub status
expect_in "healthy" "$OUT" "status shows the token healthy"
ok_if "the daemon was never restarted" kill -0 "$DPID"
expect_not_in "$PIN" "$(cat "$DLOG")" "the log holds no PIN"
exec 3>&-
tap_done
