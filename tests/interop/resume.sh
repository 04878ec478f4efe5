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
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"

T=$(mktemp -d /tmp/mtlsgw-resume.XXXXXX)
DP=
cleanup() {
    [ -n "$DP" ] && kill "$DP" 2>/dev/null && wait "$DP" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 0; }
command -v openssl >/dev/null || { echo "1..0 # SKIP no openssl"; exit 0; }
chmod 755 "$T"
softhsm_setup "$T"
PIN=rs-$$-pin
softhsm_token gw "$PIN"
printf '%s\n' "$PIN" >"$T/pin"
chmod 600 "$T/pin"
DUSER=mtlsgw
getent passwd "$DUSER" >/dev/null || DUSER=root
chown "$DUSER:" "$T/pin"
softhsm_give_to "$DUSER" "$T/tokens"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/c.conf" <<CONF
[token]
uri = pkcs11:token=gw
module = $MODULE
pin-file = $T/pin
[pki]
dir = $T/pki
[daemon]
user = $DUSER
control-socket = $T/run/c.sock
[management]
listen = 127.0.0.1:$PORT
CONF
"$MTLSGW" -c "$T/c.conf" init --cn rs --host 127.0.0.1 >/dev/null
printf 'password123\n' >"$T/pw"
"$MTLSGW" -c "$T/c.conf" enroll a1 --role admin --p12 "$T/a1.p12" --password-file "$T/pw" \
    >/dev/null
openssl pkcs12 -in "$T/a1.p12" -passin "file:$T/pw" -nodes -out "$T/a1.pem" 2>/dev/null
softhsm_give_to "$DUSER" "$T/tokens"
"$MTLSGWD" -c "$T/c.conf" -f >"$T/d.log" 2>&1 &
DP=$!

# One request over s_client; extra args (-sess_out/-sess_in FILE) passed on.
# The input stays open for a second so that the answer and the ticket arrive;
# s_client ends when it closes.
req() { # out-file args...
    local out=$1
    shift
    { printf 'GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 1; } |
        timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$T/pki/ca.crt" \
            -cert "$T/a1.pem" -key "$T/a1.pem" -tls1_3 "$@" >"$out" 2>&1
}
for i in $(seq 50); do
    req "$T/first.out" -sess_out "$T/sess.pem"
    grep -q "HTTP/1.1 200" "$T/first.out" && break
    sleep 0.2
done
ok_if "a full handshake is served" grep -q "HTTP/1.1 200" "$T/first.out"
ok_if "s_client saved the session ticket" test -s "$T/sess.pem"

req "$T/again.out" -sess_in "$T/sess.pem"
ok_if "the ticket resumes the session (s_client: Reused)" grep -q "^Reused, TLSv1.3" "$T/again.out"
ok_if "the resumed session is served" grep -q "HTTP/1.1 200" "$T/again.out"
expect_in "resumed" "$(grep 'peer a1' "$T/d.log")" "the log says the session was resumed"

# Keep a fresh ticket from just before the revocation. This resumption is
# judged from the facts kept of a1's certificate (trustdb_verify_resumed).
req "$T/last.out" -sess_in "$T/sess.pem" -sess_out "$T/sess2.pem"
ok_if "a second resumption is served too" grep -q "HTTP/1.1 200" "$T/last.out"
[ -s "$T/sess2.pem" ] || cp "$T/sess.pem" "$T/sess2.pem"
expect_exit 0 "mtlsgw revoke a1 (the running daemon is told)" \
    "$MTLSGW" -c "$T/c.conf" revoke a1 --reason keyCompromise
sleep 1
req "$T/revoked.out" -sess_in "$T/sess2.pem"
ok_if "after the revocation the ticket gets no answer" \
    sh -c "! grep -q 'HTTP/1.1 200' '$T/revoked.out'"
for i in $(seq 30); do
    grep -q "resumption refused (revoked)" "$T/d.log" && break
    sleep 0.1
done
expect_in "resumption refused (revoked)" "$(cat "$T/d.log")" "the log says why the resumption was refused"
ok_if "the daemon still runs" kill -0 "$DP"
tap_done
