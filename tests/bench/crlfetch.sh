#!/bin/bash
# What a hub pays for a sibling issuer's big CRL (docs/pki.md "Revocation
# across hubs"): an issuer CA made with openssl revokes N serials (default
# 10,000), its CRL is served by python's http.server, and a hub with
# [trust big] fetches it; the hub's own log line gives the fetch and the
# parse (signature check and the serials' index) in ms, then the reload
# of trust that follows.
#
# Entries carry no extension, as mtlsgw's own CRLs (pkcs11/crl.c); with
# REASONS=1 each has a reasonCode, as openssl ca writes them.
#
# usage: [REASONS=1] tests/bench/crlfetch.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd [N]
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
N=${3:-10000}
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/../interop/lib-daemon.sh"

MODULE=$(softhsm_find_module) || exit 77
T=$(mktemp -d /tmp/mtlsgw-crlfetch.XXXXXX)
HPID=
cleanup() {
    dmn_stop
    [ -n "$HPID" ] && kill "$HPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
softhsm_setup "$T"
mkdir -p "$T/run" "$T/big/www"
chmod 700 "$T/run"

# The issuer: a CA key in a file, N revoked serials in openssl's index.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=big-issuer \
    -days 30 -keyout "$T/big/ca.key" -out "$T/big/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
python3 - "$N" "${REASONS:-0}" >"$T/big/index.txt" <<'PY'
import secrets, sys
why = ",keyCompromise" if sys.argv[2] == "1" else ""
for i in range(int(sys.argv[1])):
    print("R\t301231000000Z\t260101000000Z%s\t%032X\tunknown\t/CN=p%d"
          % (why, secrets.randbits(127), i))
PY
echo 1000 >"$T/big/crlnumber"
printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s\ncrlnumber=%s\ndefault_md=sha256\ndefault_crl_days=30\n' \
    "$T/big/index.txt" "$T/big/crlnumber" >"$T/big/ca.cnf"
openssl ca -gencrl -config "$T/big/ca.cnf" -keyfile "$T/big/ca.key" -cert "$T/big/ca.crt" \
    -out "$T/big/crl.pem" 2>/dev/null
openssl crl -in "$T/big/crl.pem" -outform DER -out "$T/big/www/crl"
HPORT=$(free_port)
(cd "$T/big/www" && exec python3 -m http.server "$HPORT" --bind 127.0.0.1 >/dev/null 2>&1) &
HPID=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$HPORT/crl" && break
    sleep 0.1
done

softhsm_token gw "$PIN"
printf '%s\n' "$PIN" >"$T/gw.pin"
chmod 600 "$T/gw.pin"
P=$T/gw-pki
PORT=$(free_port)
mkconf "$T/gw.conf" gw "$T/gw.pin" "$P" "[management]" "listen = 127.0.0.1:$PORT" \
    "[trust big]" "ca = $T/big/ca.crt" "crl-url = http://127.0.0.1:$HPORT/crl" \
    "refresh = 60" "max-stale = 3600"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T/gw.pin"
"$MTLSGW" -c "$T/gw.conf" init --cn gw --host 127.0.0.1 >/dev/null 2>&1 || exit 1
DLOG=$T/daemon.log
"$MTLSGWD" -c "$T/gw.conf" -f >>"$DLOG" 2>&1 &
DPID=$!
for _ in $(seq 300); do
    grep -q "reloaded trust\|trust big: CRL fresh" "$DLOG" && break
    sleep 0.1
done
echo "CRL of $N entries (reasonCode per entry: ${REASONS:-0}): $(stat -c %s "$T/big/www/crl") bytes DER"
grep -E "trust big: CRL [0-9]+ from" "$DLOG" | sed 's/^mtlsgwd: //'
grep -E "trust big: CRL fresh" "$DLOG" >/dev/null || { echo "no fetch"; tail -5 "$DLOG"; exit 1; }
