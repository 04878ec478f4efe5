#!/bin/bash
# One organization, many appliances (issue #16, docs/pki.md): the CA as an
# intermediate under the organization's root, the chain sent everywhere.
#
#   openssl root (RSA-4096, the exact command)     mtlsgw root (token "rt")
#          |                                               |
#   hub1 intermediate (token "gw", pathlen 0)       hub2 intermediate ("g2")
#          |                                               |
#   admin1, mon1 (p12), tun1, dev1 (EST join)       peer2
#
# Third parties judge the same certificates: curl with only the root,
# keytool, openssl verify -crl_check(_all), strongSwan pki --verify.
#
# usage: org.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-daemon.sh"

for tool in curl openssl certtool python3 keytool pki; do
    command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }

T=$(mktemp -d /tmp/mtlsgw-org.XXXXXX)
cleanup() {
    dmn_stop
    if [ -n "${MTLSGW_TEST_KEEP:-}" ]; then
        echo "# kept $T" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$T"

MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
mkdir -p "$T/run"
chmod 700 "$T/run"
for t in gw g2 g3 rt dv; do
    softhsm_token "$t" "$t-pin-0000" || { echo "Bail out! token $t"; exit 1; }
    printf '%s-pin-0000\n' "$t" >"$T/$t.pin"
done
chmod 600 "$T"/*.pin
chown "$DUSER:" "$T"/*.pin 2>/dev/null
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
PIN=gw-pin-0000
P=$T/gw-pki
PORT=$(free_port)
EPORT=$(free_port)
while [ "$EPORT" = "$PORT" ]; do EPORT=$(free_port); done
mkconf "$T/gw.conf" gw "$T/gw.pin" "$P"
printf '[management]\nlisten = 127.0.0.1:%s\n[enroll]\nlisten = 127.0.0.1:%s\n' \
    "$PORT" "$EPORT" >>"$T/gw.conf"
for t in g2 g3 dv; do
    mkconf "$T/$t.conf" "$t" "$T/$t.pin" "$T/$t-pki"
done
sed -i "s|^control-socket = .*|control-socket = $T/run/dv.sock|" "$T/dv.conf"
# The root's own config: its token and its state dir, nothing else.
printf '[token]\nuri = pkcs11:token=rt\nmodule = %s\npin-file = %s\n[pki]\ndir = %s\n' \
    "$MODULE" "$T/rt.pin" "$T/root" >"$T/root.conf"
engine_conf
DLOG=$T/daemon.log
: >"$DLOG"
hub() { "$MTLSGW" -c "$T/gw.conf" "$@"; }
hub2() { "$MTLSGW" -c "$T/g2.conf" "$@"; }
hub3() { "$MTLSGW" -c "$T/g3.conf" "$@"; }
dev() { "$MTLSGW" -c "$T/dv.conf" "$@"; }
root() { "$MTLSGW" -c "$T/root.conf" root "$@"; }
fp_of() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
ncerts() { grep -c 'BEGIN CERTIFICATE' "$1"; }

# What an organization's root adds to an intermediate it signs.
cat >"$T/v3_intermediate.ext" <<'EXT'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EXT
cat >"$T/v3_leafonly.ext" <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
EXT
osign() { # csr out cakey cacert [extfile]
    openssl x509 -req -in "$1" -out "$2" -CAkey "$3" -CA "$4" -CAcreateserial -days 1825 \
        -sha256 ${5:+-extfile "$5"} 2>/dev/null
}

# ---- the root, exactly as the organization makes it ----------------------------
openssl req -x509 -sha256 -days 3650 -newkey rsa:4096 -keyout "$T/ca.key" -out "$T/ca.crt" \
    -nodes -subj "/O=Example Org/CN=Example Org Root" 2>/dev/null ||
    { echo "Bail out! openssl cannot make the root"; exit 1; }

# ---- init --intermediate ----------------------------------------------------------
expect_exit 2 "init --intermediate without --csr-out: usage error" \
    hub init --intermediate --cn hub1
# RSA: this strongSwan pki has no ECDSA (no openssl plugin installed).
expect_exit 0 "init --intermediate writes the CA's CSR" \
    hub init --intermediate --cn hub1 --host 127.0.0.1 --host localhost --key-type rsa-3072 \
    --csr-out "$T/hub1.csr"
OUT=$(openssl req -in "$T/hub1.csr" -noout -text 2>&1)
expect_in "CN = hub1 CA" "$OUT" "... for CN=hub1 CA"
expect_in "CA:TRUE" "$OUT" "... asking for CA:TRUE"
ok_if "... and no CA yet (ca.crt is written on import)" test ! -e "$P/ca.crt"
expect_exit 0 "init --intermediate again reuses the keys (a lost CSR is made again)" \
    hub init --intermediate --cn hub1 --host 127.0.0.1 --host localhost --key-type rsa-3072 \
    --csr-out "$T/hub1b.csr"
ok_if "... for the same key" test "$(openssl req -in "$T/hub1.csr" -noout -pubkey)" = \
    "$(openssl req -in "$T/hub1b.csr" -noout -pubkey)"

# ---- init --import-ca: what it refuses ----------------------------------------------
osign "$T/hub1.csr" "$T/hub1-ee.crt" "$T/ca.key" "$T/ca.crt" "$T/v3_leafonly.ext"
expect_exit 1 "import of a certificate that is not a CA is refused" \
    hub init --import-ca "$T/hub1-ee.crt" --chain "$T/ca.crt"
expect_in "not a CA" "$OUT" "... saying it is not a CA"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/x.key" \
    -subj "/CN=intruder CA" -out "$T/x.csr" 2>/dev/null
osign "$T/x.csr" "$T/x-ca.crt" "$T/ca.key" "$T/ca.crt" "$T/v3_intermediate.ext"
expect_exit 1 "import of a CA certificate for another key is refused" \
    hub init --import-ca "$T/x-ca.crt" --chain "$T/ca.crt"
expect_in "not the CA key" "$OUT" "... saying the key is not the token's"
openssl req -x509 -sha256 -days 3650 -newkey rsa:2048 -keyout "$T/other.key" \
    -out "$T/other.crt" -nodes -subj "/CN=Other Root" 2>/dev/null
osign "$T/hub1.csr" "$T/hub1-other.crt" "$T/other.key" "$T/other.crt" "$T/v3_intermediate.ext"
expect_exit 1 "import with a root that did not sign it is refused" \
    hub init --import-ca "$T/hub1-other.crt" --chain "$T/ca.crt"
expect_in "does not chain to the root" "$OUT" "... saying it does not chain to the root"
openssl req -x509 -sha256 -days 3650 -newkey rsa:2048 -keyout "$T/pl0.key" \
    -out "$T/pl0.crt" -nodes -subj "/CN=Root pathlen 0" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
osign "$T/hub1.csr" "$T/hub1-pl0.crt" "$T/pl0.key" "$T/pl0.crt" "$T/v3_intermediate.ext"
expect_exit 1 "import under a root whose path length forbids an intermediate is refused" \
    hub init --import-ca "$T/hub1-pl0.crt" --chain "$T/pl0.crt"
expect_in "path length" "$OUT" "... naming the path length"
ok_if "refused imports leave no CA behind" test ! -e "$P/ca.crt" -a ! -e "$P/chain.pem"

# ---- init --import-ca: accepted -------------------------------------------------------
osign "$T/hub1.csr" "$T/hub1.crt" "$T/ca.key" "$T/ca.crt" "$T/v3_intermediate.ext"
expect_exit 0 "import of the intermediate the root signed" \
    hub init --import-ca "$T/hub1.crt" --chain "$T/ca.crt"
expect_in "$(fp_of "$T/ca.crt")" "$OUT" "... prints the root's SHA-256"
expect_not_in "pathlen:0" "$OUT" "... and no path-length warning (it has pathlen:0)"
ok_if "ca.crt is the root (what peers trust)" cmp -s "$P/ca.crt" "$T/ca.crt"
ok_if "chain.pem is the intermediate" \
    test "$(fp_of "$P/chain.pem")" = "$(fp_of "$T/hub1.crt")" -a "$(ncerts "$P/chain.pem")" = 1
ok_if "gateway.crt is the gateway certificate, then the intermediate" \
    test "$(ncerts "$P/gateway.crt")" = 2
ok_if "openssl verify: the gateway certificate chains to the root" \
    openssl verify -CAfile "$T/ca.crt" -untrusted "$P/chain.pem" "$P/gateway.crt"
ok_if "the CRL is signed by the intermediate" \
    openssl crl -in "$P/crl.pem" -noout -CAfile "$P/chain.pem"
expect_exit 1 "a second import is refused" \
    hub init --import-ca "$T/hub1.crt" --chain "$T/ca.crt"

# ---- peers ----------------------------------------------------------------------------
for p in admin1 tun1 mon2; do
    keycsr "$p" >/dev/null 2>&1
done
# RSA peers for strongSwan's pki (see above).
for p in rsagood rsabad; do
    certtool --generate-privkey --key-type rsa --bits 2048 --outfile "$T/$p.key" 2>/dev/null
    printf 'cn = %s\n' "$p" >"$T/$p.tmpl"
    certtool --generate-request --no-text --load-privkey "$T/$p.key" --template "$T/$p.tmpl" \
        --outfile "$T/$p.csr" 2>/dev/null
    hub enroll "$p" --role monitor --csr "$T/$p.csr" --out "$T/$p.crt" --leaf-only \
        >/dev/null 2>&1
done
expect_exit 0 "enroll --out writes the certificate" \
    hub enroll admin1 --role admin --csr "$T/admin1.csr" --out "$T/admin1-full.crt"
ok_if "... followed by the chain" test "$(ncerts "$T/admin1-full.crt")" = 2
openssl x509 -in "$T/admin1-full.crt" -out "$T/admin1.crt"
expect_exit 0 "enroll --out --leaf-only writes the certificate alone" \
    hub enroll tun1 --role tunnel --csr "$T/tun1.csr" --out "$T/tun1.crt" --leaf-only
ok_if "... one certificate" test "$(ncerts "$T/tun1.crt")" = 1
hub enroll mon2 --role monitor --csr "$T/mon2.csr" --out "$T/mon2.crt" >/dev/null 2>&1
printf 'p12-secret-pass\n' >"$T/p12.pw"
expect_exit 0 "enroll --p12" \
    hub enroll mon1 --role monitor --p12 "$T/mon1.p12" --password-file "$T/p12.pw"
OUT=$(openssl pkcs12 -in "$T/mon1.p12" -passin pass:p12-secret-pass -nokeys 2>&1)
ok_if "the PKCS#12 holds the certificate, the intermediate and the root" \
    test "$(printf '%s\n' "$OUT" | grep -c 'BEGIN CERTIFICATE')" = 3
openssl pkcs12 -in "$T/mon1.p12" -passin pass:p12-secret-pass -nokeys -clcerts \
    -out "$T/mon1.crt" 2>/dev/null
openssl pkcs12 -in "$T/mon1.p12" -passin pass:p12-secret-pass -nocerts -nodes \
    -out "$T/mon1.key" 2>/dev/null
OUT=$(keytool -list -v -keystore "$T/mon1.p12" -storetype PKCS12 \
    -storepass p12-secret-pass 2>&1)
expect_in "Certificate chain length: 3" "$OUT" "keytool -list: the key entry has a chain of 3"
keytool -importcert -noprompt -alias orgroot -file "$T/ca.crt" -keystore "$T/trust.jks" \
    -storepass changeit >/dev/null 2>&1
expect_exit 0 "keytool imports the PKCS#12 into a keystore that trusts only the root" \
    keytool -importkeystore -noprompt -srckeystore "$T/mon1.p12" -srcstoretype PKCS12 \
    -srcstorepass p12-secret-pass -destkeystore "$T/trust.jks" -deststorepass changeit
ok_if "openssl verify of the p12's certificate with only the root trusted" \
    openssl verify -CAfile "$T/ca.crt" -untrusted "$P/chain.pem" "$T/mon1.crt"

# ---- the daemon: chains on the wire ---------------------------------------------------
dmn_start || { echo "Bail out! the daemon does not start: $(tail -5 "$DLOG")"; exit 1; }
OUT=$(openssl s_client -connect "127.0.0.1:$PORT" -showcerts -CAfile "$T/ca.crt" \
    -cert "$T/admin1.crt" -key "$T/admin1.key" </dev/null 2>&1)
S=$OUT
ok_if "the management listener sends the gateway certificate and the intermediate" \
    test "$(printf '%s\n' "$S" | grep -c 'BEGIN CERTIFICATE')" = 2
expect_in "Verify return code: 0 (ok)" "$S" "... which openssl verifies with only the root"
req admin1 GET /api/v1/status
expect_http 200 "curl --cacert ROOT with the leaf alone reaches the API (admin)"
req mon1 GET /api/v1/status
expect_http 200 "... as the p12's monitor"
cp "$T/admin1.key" "$T/admin1f.key"
cp "$T/admin1-full.crt" "$T/admin1f.crt"
req admin1f GET /api/v1/status
expect_http 200 "... and with leaf + chain as enroll --out wrote it"
OUT=$(gnutls-cli --x509cafile="$T/ca.crt" --x509certfile="$T/tun1.crt" \
    --x509keyfile="$T/tun1.key" -p "$EPORT" 127.0.0.1 </dev/null 2>&1)
expect_in "Handshake was completed" "$OUT" "gnutls-cli with only the root: the EST listener"

# A gateway certificate written alone (a renewal, an older file): the
# listeners still send the intermediates, from chain.pem.
dmn_stop
cp "$P/gateway.crt" "$T/gateway-full.crt"
openssl x509 -in "$T/gateway-full.crt" -out "$P/gateway.crt"
dmn_start || { echo "Bail out! the daemon does not restart: $(tail -5 "$DLOG")"; exit 1; }
S=$(openssl s_client -connect "127.0.0.1:$PORT" -showcerts -CAfile "$T/ca.crt" \
    -cert "$T/admin1.crt" -key "$T/admin1.key" </dev/null 2>&1)
ok_if "gateway.crt without the chain: the listener still sends the intermediate" \
    test "$(printf '%s\n' "$S" | grep -c 'BEGIN CERTIFICATE')" = 2
cp "$T/gateway-full.crt" "$P/gateway.crt"

# ---- EST cacerts and join pinning the root --------------------------------------------
rm -f "$T/resp.body"
curl -sS --max-time 10 --cacert "$T/ca.crt" -o "$T/resp.body" \
    "https://127.0.0.1:$EPORT/.well-known/est/cacerts" 2>/dev/null
openssl base64 -d -A -in "$T/resp.body" | openssl pkcs7 -inform DER -print_certs \
    -out "$T/cacerts.pem" 2>/dev/null
ok_if "EST cacerts: the root and the intermediate" test "$(ncerts "$T/cacerts.pem")" = 2
OUT=$(hub invite dev1 --role tunnel 2>&1)
CODE=$(printf '%s\n' "$OUT" | awk '$1 == "code" {print $2}')
INV=$OUT
expect_in "root SHA-256          $(fp_of "$T/ca.crt")" "$INV" \
    "invite under an intermediate CA prints the root's SHA-256"
expect_in "(the organization's root above this hub's intermediate CA: the one to pin)" "$INV" \
    "... labelled as the one to pin"
expect_in "--code $CODE --fingerprint $(fp_of "$T/ca.crt")" "$INV" \
    "... and its join line pins the root"
expect_in "gateway SHA-256       $(fp_of "$P/gateway.crt")" "$INV" \
    "... the gateway's SHA-256 still shown"
printf '{"name":"dev2","role":"monitor"}' >"$T/inv2.json"
req admin1 POST /api/v1/invites "$T/inv2.json"
expect_http 201 "POST /api/v1/invites under an intermediate CA"
expect_in "\"root_fingerprint\":\"$(fp_of "$T/ca.crt")\"" "$(tr -d ' \n' <"$T/resp.body")" \
    "... answers the root's SHA-256"
expect_in "--fingerprint $(fp_of "$T/ca.crt")" "$(cat "$T/resp.body")" \
    "... and its join line pins the root, as mtlsgw invite's does"
expect_exit 1 "join pinning a wrong fingerprint fails" \
    dev join "https://127.0.0.1:$EPORT" --name dev1 --code "$CODE" \
    --fingerprint "$(fp_of "$T/other.crt")"
expect_exit 0 "join pinning only the root's fingerprint" \
    dev join "https://127.0.0.1:$EPORT" --name dev1 --code "$CODE" \
    --fingerprint "$(fp_of "$T/ca.crt")"
ok_if "... hub-ca.crt is the root alone" cmp -s <(fp_of "$T/dv-pki/hub-ca.crt") <(fp_of "$T/ca.crt")
ok_if "... device.crt carries the intermediate" test "$(ncerts "$T/dv-pki/device.crt")" = 2
printf '[uplink hub]\nserver = 127.0.0.1:%s\nenroll = https://127.0.0.1:%s\n' \
    "$(free_port)" "$EPORT" >>"$T/dv.conf"
old_serial=$(openssl x509 -in "$T/dv-pki/device.crt" -noout -serial)
expect_exit 0 "renew with only the root in hub-ca.crt (simplereenroll)" dev renew hub
ok_if "... a new certificate, the intermediate kept behind it" \
    test "$(openssl x509 -in "$T/dv-pki/device.crt" -noout -serial)" != "$old_serial" -a \
    "$(ncerts "$T/dv-pki/device.crt")" = 2

# ---- explain ------------------------------------------------------------------------------
expect_exit 0 "explain a peer's leaf" hub explain "$T/admin1.crt"
expect_in "hub1 CA" "$OUT" "explain prints the chain it built (the intermediate)"
expect_in "Example Org Root" "$OUT" "... up to the root"

# ---- path length: the intermediate (pathlen 0) cannot make a sub-CA --------------------
# A sub-CA signed with hub1's CA key on its token (certtool, not mtlsgw),
# and an admin under it: the path length of hub1's certificate refuses both.
certtool --generate-privkey --key-type ecdsa --outfile "$T/sub.key" 2>/dev/null
printf 'cn = "rogue sub CA"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n' \
    >"$T/sub.tmpl"
GNUTLS_PIN=$PIN certtool --generate-certificate --load-privkey "$T/sub.key" \
    --load-ca-privkey "pkcs11:token=gw;object=mtlsgw-ca;type=private" \
    --load-ca-certificate "$P/chain.pem" --template "$T/sub.tmpl" --outfile "$T/sub.crt" \
    >/dev/null 2>&1
certtool --generate-privkey --key-type ecdsa --outfile "$T/sneaky.key" 2>/dev/null
printf 'cn = sneaky\ntls_www_client\nuri = urn:mtlsgw:role:admin\nexpiration_days = 30\n' \
    >"$T/sneaky.tmpl"
certtool --generate-certificate --load-privkey "$T/sneaky.key" --load-ca-privkey "$T/sub.key" \
    --load-ca-certificate "$T/sub.crt" --template "$T/sneaky.tmpl" \
    --outfile "$T/sneaky1.crt" >/dev/null 2>&1
cat "$T/sneaky1.crt" "$T/sub.crt" >"$T/sneaky.crt"
ok_if "(a sub-CA was made under hub1's CA key)" test -s "$T/sub.crt" -a -s "$T/sneaky1.crt"
expect_exit 1 "explain: a leaf under a sub-CA of the pathlen-0 intermediate is refused" \
    hub explain "$T/sneaky.crt"
expect_in "constraints" "$OUT" "... for the path length (the signer's constraints)"
expect_in "CN=hub1 CA allows 0 CAs below it" "$OUT" "... naming the link that fails"
req sneaky GET /api/v1/status
ok_if "the daemon refuses it during the handshake" test "$HTTP" = 000
expect_exit 2 "openssl verify agrees (path length constraint exceeded)" \
    openssl verify -CAfile "$T/ca.crt" -untrusted "$P/chain.pem" -untrusted "$T/sub.crt" \
    "$T/sneaky1.crt"

# ---- revocation: mtlsgw, openssl and strongSwan agree --------------------------------
hub revoke mon2 >/dev/null 2>&1
hub revoke rsabad >/dev/null 2>&1
ok_if "openssl verify -crl_check: a good peer" \
    openssl verify -crl_check -CAfile "$T/ca.crt" -untrusted "$P/chain.pem" \
    -CRLfile "$P/crl.pem" "$T/admin1.crt"
expect_exit 2 "openssl verify -crl_check: the revoked peer is refused" \
    openssl verify -crl_check -CAfile "$T/ca.crt" -untrusted "$P/chain.pem" \
    -CRLfile "$P/crl.pem" "$T/mon2.crt"
expect_in "revoked" "$OUT" "... as revoked"
expect_exit 0 "strongSwan pki --verify: a good peer" \
    pki --verify --in "$T/rsagood.crt" --cacert "$T/ca.crt" --cacert "$P/chain.pem" \
    --crl "$P/crl.pem"
expect_in "certificate trusted" "$OUT" "... trusted"
expect_exit 1 "strongSwan pki --verify: the revoked peer" \
    pki --verify --in "$T/rsabad.crt" --cacert "$T/ca.crt" --cacert "$P/chain.pem" \
    --crl "$P/crl.pem"
expect_in "revoked" "$OUT" "... as revoked"
expect_exit 2 "openssl verify -crl_check agrees on that one" \
    openssl verify -crl_check -CAfile "$T/ca.crt" -untrusted "$P/chain.pem" \
    -CRLfile "$P/crl.pem" "$T/rsabad.crt"
expect_exit 0 "mtlsgw explain: the good one granted" hub explain "$T/rsagood.crt"
expect_exit 1 "mtlsgw explain: the revoked one refused" hub explain "$T/rsabad.crt"
expect_exit 1 "mtlsgw explain: the revoked peer" hub explain "$T/mon2.crt"
req mon2 GET /api/v1/status
ok_if "the daemon refuses the revoked peer" test "$HTTP" != 200
dmn_stop

# ---- a root on a token: mtlsgw root -------------------------------------------------------
expect_exit 0 "root init makes the root on its own token" root init --cn "Org Token Root"
ok_if "... root.crt and its CRL" test -s "$T/root/root.crt" -a -s "$T/root/root-crl.pem"
# What the organization hands each appliance: its root certificate.
cp "$T/root/root.crt" "$T/orgroot.crt"
expect_exit 1 "root init twice is refused" root init --cn again
hub2 init --intermediate --cn hub2 --host 127.0.0.1 --csr-out "$T/hub2.csr" >/dev/null 2>&1
expect_exit 0 "root sign --csr --out --path-len 0" \
    root sign --csr "$T/hub2.csr" --out "$T/hub2.crt" --path-len 0 --days 800
OUT=$(openssl x509 -in "$T/hub2.crt" -noout -text)
expect_in "CA:TRUE, pathlen:0" "$OUT" "... an intermediate CA with path length 0"
expect_in "Certificate Sign, CRL Sign" "$OUT" "... keyCertSign and cRLSign"
expect_exit 0 "hub2 imports it" hub2 init --import-ca "$T/hub2.crt" --chain "$T/orgroot.crt"
keycsr peer2 >/dev/null 2>&1
hub2 enroll peer2 --role monitor --csr "$T/peer2.csr" --out "$T/peer2.crt" --leaf-only \
    >/dev/null 2>&1
expect_exit 1 "hub1 refuses hub2's peer (another issuer)" hub explain "$T/peer2.crt"

# ---- explain judges [trust] issuers -----------------------------------------------------
# hub1 with [trust hub2]: explain gives the daemon's verdict, from hub2's
# CA and the CRL the daemon keeps of it ($P/trust-hub2.crl after a fetch).
# (hub2 is under another root than hub1 here: its peers' leaves alone.)
cp "$T/gw.conf" "$T/gwt.conf"
printf '[trust hub2]\nca = %s\ncrl-url = http://127.0.0.1:9/crl\nroles = monitor tunnel\n%s\n' \
    "$T/hub2.crt" "networks = 10.77.0.0/16" >>"$T/gwt.conf"
hubt() { "$MTLSGW" -c "$T/gwt.conf" "$@"; }
for n in adm2 tun2 mon3; do keycsr "$n" >/dev/null 2>&1; done
hub2 enroll adm2 --role admin --csr "$T/adm2.csr" --out "$T/adm2.crt" --leaf-only \
    >/dev/null 2>&1
hub2 enroll tun2 --role tunnel --csr "$T/tun2.csr" --out "$T/tun2.crt" --leaf-only \
    --network 10.77.1.0/24 --network 10.88.0.0/24 >/dev/null 2>&1
hub2 enroll mon3 --role monitor --csr "$T/mon3.csr" --out "$T/mon3.crt" --leaf-only \
    >/dev/null 2>&1
expect_exit 1 "explain [trust hub2], no CRL fetched yet: refused (fail closed)" \
    hubt explain "$T/peer2.crt"
expect_in "no fresh CRL" "$OUT" "... the issuer is stale"
expect_in "the daemon has no CRL of it yet" "$OUT" "... and why"
cp "$T/g2-pki/crl.pem" "$P/trust-hub2.crl"
expect_exit 0 "explain [trust hub2], with its CRL: hub2's monitor is granted" \
    hubt explain "$T/peer2.crt"
expect_in "granted: peer peer2, role monitor, vouched for by issuer hub2" "$OUT" \
    "... vouched for by hub2"
expect_in "issuer: hub2 ([trust hub2]: roles monitor tunnel; CRL" "$OUT" \
    "... which says the issuer, its roles and its CRL"
expect_in "a [trust] issuer's ca, trusted" "$OUT" "... and the chain ends at hub2's CA"
expect_exit 1 "explain: hub2's admin is refused (roles = monitor tunnel)" \
    hubt explain "$T/adm2.crt"
expect_in "issuer hub2 may not vouch for role admin" "$OUT" "... role capped by roles"
expect_exit 0 "explain: hub2's tunnel peer is granted, no entry here" hubt explain "$T/tun2.crt"
expect_in "networks: 10.77.1.0/24 (10.88.0.0/24: outside [trust hub2] networks, not routed)" \
    "$OUT" "... its certificate's networks inside networks = only"
hub2 revoke mon3 >/dev/null 2>&1
expect_exit 0 "explain: mon3 granted with the CRL fetched before hub2 revoked it" \
    hubt explain "$T/mon3.crt"
cp "$T/g2-pki/crl.pem" "$P/trust-hub2.crl"
expect_exit 1 "explain: mon3 refused once the daemon has hub2's new CRL" \
    hubt explain "$T/mon3.crt"
expect_in "revoked by its issuer hub2" "$OUT" "... revoked by its issuer"
# Freshness is the CRL's signed thisUpdate, not the file's mtime (which a
# compromised session process could set): an old mtime changes nothing, a
# CRL signed longer ago than max-stale is stale however new its file.
touch -d '2 hours ago' "$P/trust-hub2.crl"
expect_exit 0 "explain: the kept CRL's file 2 hours old, the CRL just signed: peer2 granted" \
    hubt explain "$T/peer2.crt"
cp "$T/gwt.conf" "$T/gwt2.conf"
printf 'refresh = 1\nmax-stale = 8\n' >>"$T/gwt2.conf"
# A revocation at hub2 signs its CRL now.
keycsr mon4 >/dev/null 2>&1
hub2 enroll mon4 --role monitor --csr "$T/mon4.csr" --out "$T/mon4.crt" --leaf-only \
    >/dev/null 2>&1
hub2 revoke mon4 >/dev/null 2>&1
cp "$T/g2-pki/crl.pem" "$P/trust-hub2.crl"
OUT=$("$MTLSGW" -c "$T/gwt2.conf" explain "$T/peer2.crt" 2>&1)
expect_not_in "warning: [trust hub2]" "$OUT" "explain: a CRL signed just now: no warning"
sleep 5.2
OUT=$("$MTLSGW" -c "$T/gwt2.conf" explain "$T/peer2.crt" 2>&1)
expect_in "warning: [trust hub2]: its CRL is" "$OUT" \
    "explain: a CRL older than max-stale/2: it warns that hub2 re-signs too seldom"
sleep 4
expect_exit 1 "explain: a CRL signed longer ago than max-stale: peer2 refused" \
    "$MTLSGW" -c "$T/gwt2.conf" explain "$T/peer2.crt"
expect_in "past max-stale (8 s)" "$OUT" "... and why"

# ---- peers are (issuer, serial): a sibling cannot become a local peer ------------------
# hub2 (its CA key on its token) signs a leaf carrying the serial of bob, a
# local tunnel peer of hub1 with a network: it must not be granted as bob.
cp "$T/g2-pki/crl.pem" "$P/trust-hub2.crl"
keycsr bob >/dev/null 2>&1
hub enroll bob --role tunnel --csr "$T/bob.csr" --out "$T/bob.crt" --leaf-only \
    --network 10.99.0.0/24 >/dev/null 2>&1
BOBSER=$(openssl x509 -in "$T/bob.crt" -noout -serial | cut -d= -f2)
certtool --generate-privkey --key-type ecdsa --outfile "$T/mallory.key" 2>/dev/null
printf 'cn = mallory\nserial = 0x%s\ntls_www_client\nuri = %s\nexpiration_days = 30\n' \
    "$BOBSER" "urn:mtlsgw:role:tunnel" >"$T/mallory.tmpl"
GNUTLS_PIN=g2-pin-0000 certtool --generate-certificate --load-privkey "$T/mallory.key" \
    --load-ca-privkey "pkcs11:token=g2;object=mtlsgw-ca;type=private" \
    --load-ca-certificate "$T/hub2.crt" --template "$T/mallory.tmpl" \
    --outfile "$T/mallory.crt" >/dev/null 2>&1
ok_if "(hub2 signed a leaf with bob's serial)" test -n "$BOBSER" -a \
    "$(openssl x509 -in "$T/mallory.crt" -noout -serial 2>/dev/null | cut -d= -f2)" = "$BOBSER"
hubt explain "$T/mallory.crt" >/dev/null 2>&1
OUT=$(hubt explain "$T/mallory.crt" 2>&1)
expect_not_in "peer bob" "$OUT" "explain: hub2's leaf with bob's serial is not granted as bob"
expect_not_in "10.99.0.0/24" "$OUT" "... nor given bob's networks"
expect_in "granted: peer mallory, role tunnel, vouched for by issuer hub2" "$OUT" \
    "... it is hub2's roaming peer mallory"

# ---- a leaf under a sub-CA of a [trust] CA without pathlen:0 ---------------------------
# hubx's intermediate is CA:TRUE with no path length: a sub-CA under it
# signs an admin leaf with admin1's serial. Neither hub1's CA nor a [trust]
# CA issued the leaf: unknown issuer, never hub1's admin1.
openssl req -x509 -sha256 -days 30 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/hubx.key" -out "$T/hubx.crt" -subj "/CN=hubx CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
printf 'ca\ncert_signing_key\ncrl_signing_key\ncrl_next_update = 30\ncrl_number = 1\n' \
    >"$T/hubx.tmpl"
certtool --generate-crl --load-ca-privkey "$T/hubx.key" --load-ca-certificate "$T/hubx.crt" \
    --template "$T/hubx.tmpl" --outfile "$P/trust-hubx.crl" >/dev/null 2>&1
printf 'cn = "evil sub CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >"$T/evsub.tmpl"
certtool --generate-privkey --key-type ecdsa --outfile "$T/evsub.key" 2>/dev/null
certtool --generate-certificate --load-privkey "$T/evsub.key" --load-ca-privkey "$T/hubx.key" \
    --load-ca-certificate "$T/hubx.crt" --template "$T/evsub.tmpl" \
    --outfile "$T/evsub.crt" >/dev/null 2>&1
ADMSER=$(openssl x509 -in "$T/admin1.crt" -noout -serial | cut -d= -f2)
printf 'cn = evil\nserial = 0x%s\ntls_www_client\nuri = %s\nexpiration_days = 30\n' \
    "$ADMSER" "urn:mtlsgw:role:admin" >"$T/evil.tmpl"
certtool --generate-privkey --key-type ecdsa --outfile "$T/evil.key" 2>/dev/null
certtool --generate-certificate --load-privkey "$T/evil.key" --load-ca-privkey "$T/evsub.key" \
    --load-ca-certificate "$T/evsub.crt" --template "$T/evil.tmpl" \
    --outfile "$T/evil1.crt" >/dev/null 2>&1
cat "$T/evil1.crt" "$T/evsub.crt" >"$T/evil-chain.pem"
cp "$T/gw.conf" "$T/gwx.conf"
printf '[trust hubx]\nca = %s\ncrl-url = http://127.0.0.1:9/crl\nroles = monitor tunnel admin\n' \
    "$T/hubx.crt" >>"$T/gwx.conf"
ok_if "(a sub-CA under hubx signed a leaf with admin1's serial)" test -s "$T/evil1.crt" -a \
    "$(openssl x509 -in "$T/evil1.crt" -noout -serial 2>/dev/null | cut -d= -f2)" = "$ADMSER"
expect_exit 1 "explain: a leaf under a sub-CA of a [trust] CA is refused" \
    "$MTLSGW" -c "$T/gwx.conf" explain "$T/evil-chain.pem"
expect_not_in "peer admin1" "$OUT" "... never as the local admin1"
expect_in "unknown issuer" "$OUT" "... as an unknown issuer"
expect_in "warning: [trust hubx] ca has no pathlen:0" "$OUT" \
    "... and explain warns that hubx's CA can sign sub-CAs"
rm -f "$P/trust-hubx.crl"
rm -f "$P/trust-hub2.crl"
root crl --out "$T/root-crl.pem" >/dev/null 2>&1
cat "$T/root-crl.pem" "$T/g2-pki/crl.pem" >"$T/crls2.pem"
ok_if "openssl verify -crl_check_all: hub2's peer, both CRLs" \
    openssl verify -crl_check_all -CAfile "$T/orgroot.crt" -untrusted "$T/g2-pki/chain.pem" \
    -CRLfile "$T/crls2.pem" "$T/peer2.crt"
expect_exit 0 "root revoke FILE: hub2's intermediate (a compromised appliance)" \
    root revoke "$T/hub2.crt"
root crl --out "$T/root-crl.pem" --force >/dev/null 2>&1
cat "$T/root-crl.pem" "$T/g2-pki/crl.pem" >"$T/crls2.pem"
expect_exit 2 "openssl verify -crl_check_all: hub2's peers are refused once its CA is revoked" \
    openssl verify -crl_check_all -CAfile "$T/orgroot.crt" -untrusted "$T/g2-pki/chain.pem" \
    -CRLfile "$T/crls2.pem" "$T/peer2.crt"
expect_exit 1 "strongSwan pki --verify agrees" \
    pki --verify --in "$T/peer2.crt" --cacert "$T/orgroot.crt" \
    --cacert "$T/g2-pki/chain.pem" --crl "$T/root-crl.pem" --crl "$T/g2-pki/crl.pem"
OUT=$(root list)
expect_in "revoked" "$OUT" "root list shows the intermediate revoked"
expect_exit 1 "root sign refuses the revoked intermediate's key" \
    root sign --csr "$T/hub2.csr" --out "$T/hub2-again.crt"

# ---- other roots: RSA-2048/3072, EC P-256/P-384 -------------------------------------------
for alg in rsa:2048 rsa:3072 ec-p256 ec-p384; do
    case $alg in
    ec-p256) new=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    ec-p384) new=(-newkey ec -pkeyopt ec_paramgen_curve:P-384) ;;
    *) new=(-newkey "$alg") ;;
    esac
    openssl req -x509 -sha256 -days 3650 "${new[@]}" -keyout "$T/r.key" -out "$T/r.crt" \
        -nodes -subj "/CN=Root $alg" 2>/dev/null
    hub3 init --intermediate --force --cn hub3 --host 127.0.0.1 --key-type ec-p384 \
        --csr-out "$T/hub3.csr" >/dev/null 2>&1
    osign "$T/hub3.csr" "$T/hub3.crt" "$T/r.key" "$T/r.crt" "$T/v3_intermediate.ext"
    expect_exit 0 "an intermediate under a $alg root imports" \
        hub3 init --import-ca "$T/hub3.crt" --chain "$T/r.crt"
    ok_if "... and its gateway certificate verifies to that root" \
        openssl verify -CAfile "$T/r.crt" -untrusted "$T/g3-pki/chain.pem" \
        "$T/g3-pki/gateway.crt"
done

# ---- an intermediate without pathlen:0 imports, with a warning ----------------------------
sed '/^basicConstraints/c basicConstraints = critical, CA:TRUE' "$T/v3_intermediate.ext" \
    >"$T/v3_nopathlen.ext"
hub3 init --intermediate --force --cn hub3 --host 127.0.0.1 --key-type ec-p384 \
    --csr-out "$T/hub3.csr" >/dev/null 2>&1
osign "$T/hub3.csr" "$T/hub3.crt" "$T/r.key" "$T/r.crt" "$T/v3_nopathlen.ext"
expect_exit 0 "an intermediate without pathlen:0 imports" \
    hub3 init --import-ca "$T/hub3.crt" --chain "$T/r.crt"
expect_in "has no pathlen:0" "$OUT" "... with a warning that says how the root should sign it"

tap_done
