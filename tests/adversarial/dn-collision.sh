#!/bin/bash
# A sibling CA with hub B's own name (attacker review of #16, finding 1).
# An intermediate's subject is its CN alone, and a leaf names its issuer by
# subject: an appliance that got from the root an intermediate named like
# hub B's ("hubB CA") signs a leaf with B's admin's serial, role admin and
# no authorityKeyIdentifier, and sends it with that intermediate. GnuTLS
# verifies leaf -> attacker CA -> root; verify.c then chose the leaf's
# issuer by name (gnutls_x509_crt_check_issuer compares key ids only when
# both have them): B's own CA, so B's registry by serial: B's admin. Now:
#   1. `mtlsgw root sign` refuses a CN it issued to another key, unrevoked;
#   2. a [trust] ca named like B's own CA is refused at config load;
#   3. the issuer is the CA whose key signed the leaf: with or without a
#      [trust] section, the leaf is not B's (a root that signed the twin
#      anyway, before fix 1 or with a lost issued.json, is made below).
# usage: dn-collision.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../interop/lib-daemon.sh" "$@"

dmn_need openssl python3 curl certtool
dmn_temp dncoll
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
softhsm_token gw "$PIN" >/dev/null && softhsm_token rt root-pin-01 >/dev/null ||
    { echo "Bail out! tokens"; exit 1; }
printf '%s\n' "$PIN" >"$T/gw.pin"
printf 'root-pin-01\n' >"$T/rt.pin"
chmod 600 "$T"/*.pin
mkdir -p "$T/run"
chmod 700 "$T/run"
P=$T/gw-pki
DLOG=$T/daemon.log
: >"$DLOG"
PORT=$(free_port)
printf '[token]\nuri = pkcs11:token=rt\nmodule = %s\npin-file = %s\n[pki]\ndir = %s\n' \
    "$MODULE" "$T/rt.pin" "$T/root" >"$T/root.conf"
gw_conf "$T/gw.conf"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T"/*.pin
root() { "$MTLSGW" -c "$T/root.conf" root "$@"; }
{
    root init --cn "Org Root" &&
        hub init --intermediate --cn hubB --host 127.0.0.1 --csr-out "$T/hubB.csr" &&
        root sign --csr "$T/hubB.csr" --out "$T/hubB.crt" &&
        cp "$T/root/root.crt" "$T/orgroot.crt" && chmod a+r "$T/orgroot.crt" "$T/hubB.crt" &&
        hub init --import-ca "$T/hubB.crt" --chain "$T/orgroot.crt" &&
        enroll_file_peer admin1 admin
} >"$T/fixture.log" 2>&1 || { echo "Bail out! fixture: $(tail -3 "$T/fixture.log")"; exit 1; }
BSUBJ=$(openssl x509 -in "$T/hubB.crt" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
ADMSER=$(openssl x509 -in "$T/admin1.crt" -noout -serial | sed 's/^serial=//')
echo "# hub B's intermediate: $BSUBJ; B's admin1 serial $ADMSER"

# ---- 1. the appliance A asks the root for an intermediate named like B's ---------------
openssl genrsa -out "$T/hubA.key" 2048 2>/dev/null
openssl req -new -key "$T/hubA.key" -subj "/${BSUBJ}" -out "$T/hubA.csr" 2>/dev/null
SIGNED=$(root sign --csr "$T/hubA.csr" --out "$T/hubA-try.crt" 2>&1)
RC=$?
echo "$SIGNED" | head -2 | sed 's/^/# root sign: /'
ok_if "root sign refuses a second intermediate with B's subject for another key" \
    test "$RC" -ne 0 -a ! -s "$T/hubA-try.crt"
ok_if "its message says to revoke the old one first" grep -q "revoke the old one first" \
    <<<"$SIGNED"
openssl req -new -key "$T/hubA.key" -subj "/CN=Org Root" -out "$T/rootname.csr" 2>/dev/null
ok_if "root sign refuses an intermediate with the root's own name" \
    bash -c '! "$1" -c "$2" root sign --csr "$3" --out "$4" && test ! -s "$4"' _ \
    "$MTLSGW" "$T/root.conf" "$T/rootname.csr" "$T/rootname.crt"

# ---- the twin anyway: a root whose issued.json lost B's record signs it ----------------
cp "$T/root/issued.json" "$T/issued.keep"
python3 - "$T/root/issued.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["issued"] = []
json.dump(d, open(sys.argv[1], "w"))
PY
root sign --csr "$T/hubA.csr" --out "$T/hubA.crt" >"$T/twin.log" 2>&1 ||
    { echo "Bail out! twin: $(tail -2 "$T/twin.log")"; exit 1; }
cp "$T/issued.keep" "$T/root/issued.json"
chmod a+r "$T/hubA.crt"
ok_if "the two intermediates' subjects are byte-identical" cmp -s \
    <(openssl x509 -in "$T/hubA.crt" -noout -subject -nameopt RFC2253) \
    <(openssl x509 -in "$T/hubB.crt" -noout -subject -nameopt RFC2253)

# ---- A's leaf: no AKI, B's admin's serial, role admin ---------------------------------
openssl genrsa -out "$T/evil.key" 2048 2>/dev/null
cat >"$T/evil.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:urn:mtlsgw:role:admin
subjectKeyIdentifier = none
authorityKeyIdentifier = none
EXT
openssl req -new -key "$T/evil.key" -subj "/CN=mallory" -out "$T/evil.csr" 2>/dev/null
openssl x509 -req -in "$T/evil.csr" -CA "$T/hubA.crt" -CAkey "$T/hubA.key" \
    -set_serial "0x$ADMSER" -days 30 -sha256 -extfile "$T/evil.ext" -out "$T/evil.crt" \
    2>/dev/null || { echo "Bail out! evil leaf"; exit 1; }
cat "$T/evil.crt" "$T/hubA.crt" >"$T/evil-chain.pem"
chmod a+r "$T"/evil*
ok_if "the leaf has no authorityKeyIdentifier" \
    bash -c '! openssl x509 -in "$1" -noout -text | grep -q "Authority Key"' _ "$T/evil.crt"

# ---- 2. B refuses a [trust] ca named like its own CA ----------------------------------
cp "$T/gw.conf" "$T/gw.conf.plain"
printf '%s\n' "[trust hubA]" "ca = $T/hubA.crt" "crl-url = http://127.0.0.1:9/a.crl" \
    "roles = monitor" "refresh = 5" >>"$T/gw.conf"
EXPL=$(hub explain "$T/evil-chain.pem" 2>&1)
RC=$?
echo "$EXPL" | head -3 | sed 's/^/# explain ([trust hubA]): /'
ok_if "config with [trust hubA] ca named like B's CA is refused" test "$RC" -ne 0
ok_if "the message names both files" bash -c \
    'grep -q "$2" <<<"$1" && grep -Eq "$3/(ca.crt|chain.pem)" <<<"$1"' _ "$EXPL" "$T/hubA.crt" "$P"
ok_if "explain with [trust hubA] does not grant admin1" \
    bash -c '! grep -q "granted: peer admin1" <<<"$1"' _ "$EXPL"
DT=$(dmn_try "$T/gw.conf")
RC=$?
echo "$DT" | grep -m1 "trust hubA" | sed 's/^/# mtlsgwd: /'
ok_if "the daemon refuses to start with that [trust] (exit $RC)" \
    test "$RC" -ne 0 -a "$RC" -ne 124

# ---- 3. no [trust] at all: the leaf is not B's -----------------------------------------
cp "$T/gw.conf.plain" "$T/gw.conf"
EXPL=$(hub explain "$T/evil-chain.pem" 2>&1)
echo "$EXPL" | sed 's/^/# explain: /'
ok_if "explain does not grant hubA's leaf B's admin" \
    bash -c '! grep -q "granted: peer admin1" <<<"$1"' _ "$EXPL"
ok_if "explain says unknown issuer" grep -q "unknown issuer" <<<"$EXPL"
dmn_start || { echo "Bail out! hubB did not start: $(tail -n 5 "$DLOG")"; exit 1; }
C=$(curl -s --max-time 5 --cacert "$P/ca.crt" --cert "$T/evil-chain.pem" --key "$T/evil.key" \
    -o "$T/peers.json" -w '%{http_code}' "https://127.0.0.1:$PORT/api/v1/peers")
echo "# GET /api/v1/peers as hubA's 'mallory': HTTP $C"
ok_if "B's management API refuses hubA's leaf" test "$C" != 200
C=$(curl -s --max-time 5 --cacert "$P/ca.crt" --cert "$T/admin1.crt" --key "$T/admin1.key" \
    -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/api/v1/peers")
ok_if "B's own admin1 is still served (HTTP $C)" test "$C" = 200
tap_done
