#!/bin/bash
# TLS 1.3 session resumption on the management listener (openssl s_client
# -sess_out / -sess_in): a resumed session is served, and is judged again:
# once the peer is revoked its ticket no longer gets it in (the reload gives
# a new trust snapshot, whose cache of certificate facts starts empty). (A resumed
# handshake skips the chain's signatures, verified when the ticket was
# issued, but not the CRL, registry, validity and role checks: verify.h.)
#
# usage: resume.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

command -v openssl >/dev/null || { echo "1..0 # SKIP no openssl"; exit 0; }
T=$(mktemp -d /tmp/mtlsgw-resume.XXXXXX)
cleanup() {
    dmn_stop
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
chmod 755 "$T"

dmn_fixture
case $? in
0) ;;
77) echo "1..0 # SKIP no SoftHSM"; exit 0 ;;
*) echo "Bail out! fixture: tokens, CA or peers could not be made"; exit 1 ;;
esac
dmn_start || { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }

# One request over s_client; extra args (-sess_out/-sess_in FILE) passed on.
# The input stays open for a second so that the answer and the ticket arrive;
# s_client ends when it closes.
s_req() { # out-file args... (lib-daemon.sh's req is curl)
    local out=$1
    shift
    { printf 'GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 1; } |
        timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$P/ca.crt" \
            -cert "$T/admin1.crt" -key "$T/admin1.key" -tls1_3 "$@" >"$out" 2>&1
}
for i in $(seq 50); do
    s_req "$T/first.out" -sess_out "$T/sess.pem"
    grep -q "HTTP/1.1 200" "$T/first.out" && break
    sleep 0.2
done
ok_if "a full handshake is served" grep -q "HTTP/1.1 200" "$T/first.out"
ok_if "s_client saved the session ticket" test -s "$T/sess.pem"

s_req "$T/again.out" -sess_in "$T/sess.pem"
ok_if "the ticket resumes the session (s_client: Reused)" grep -q "^Reused, TLSv1.3" "$T/again.out"
ok_if "the resumed session is served" grep -q "HTTP/1.1 200" "$T/again.out"
expect_in "resumed" "$(grep 'peer admin1' "$DLOG")" "the log says the session was resumed"

# Keep a fresh ticket from just before the revocation. This resumption is
# judged from the facts kept of admin1's certificate (trustdb_verify_resumed).
s_req "$T/last.out" -sess_in "$T/sess.pem" -sess_out "$T/sess2.pem"
ok_if "a second resumption is served too" grep -q "HTTP/1.1 200" "$T/last.out"
[ -s "$T/sess2.pem" ] || cp "$T/sess.pem" "$T/sess2.pem"
expect_exit 0 "mtlsgw revoke admin1 (the running daemon is told)" \
    hub revoke admin1 --reason keyCompromise
sleep 1
s_req "$T/revoked.out" -sess_in "$T/sess2.pem"
ok_if "after the revocation the ticket gets no answer" \
    sh -c "! grep -q 'HTTP/1.1 200' '$T/revoked.out'"
for i in $(seq 30); do
    grep -q "resumption refused (revoked)" "$DLOG" && break
    sleep 0.1
done
expect_in "resumption refused (revoked)" "$(cat "$DLOG")" "the log says why the resumption was refused"
ok_if "the daemon still runs" kill -0 "$DPID"
tap_done
