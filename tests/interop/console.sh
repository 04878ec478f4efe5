#!/bin/bash
# The console PKI end to end on real SoftHSM tokens, judged by real clients:
# openssl verify/crl/pkcs12/req, Java keytool, p11tool, certtool.
#
#   hub token "gw"     <- mtlsgw init / enroll / revoke (hub.conf)
#   spoke token "sp"   <- mtlsgw csr (spoke.conf): the device side
#   other token "ot"   <- a foreign CA with the same CN (other.conf)
#
# usage: console.sh PATH-TO-mtlsgw
set -u
MTLSGW=$(readlink -f "$1")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"

T=$(mktemp -d /tmp/mtlsgw-console.XXXXXX)
cleanup() { rm -rf "$T"; }
trap cleanup EXIT
chmod 755 "$T"
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
PIN=51f3-hub-pin
softhsm_token gw "$PIN"
softhsm_token sp spoke-pin-0
softhsm_token ot other-pin-0
DUSER=mtlsgw
getent passwd "$DUSER" >/dev/null || DUSER=root

mkconf() { # name token pin-file [pki-name]
    cat >"$T/$1.conf" <<CONF
[token]
uri = pkcs11:token=$2
module = $MODULE
pin-file = $T/$3
[pki]
dir = $T/${4:-$1}-pki
[daemon]
user = $DUSER
CONF
}
printf '%s\n' "$PIN" >"$T/hub.pin"
printf 'spoke-pin-0\n' >"$T/spoke.pin"
printf 'other-pin-0\n' >"$T/other.pin"
printf 'not-the-pin\n' >"$T/wrong.pin"
chmod 600 "$T"/*.pin
mkconf hub gw hub.pin
mkconf spoke sp spoke.pin
mkconf other ot other.pin
mkconf wrongpin gw wrong.pin hub
mkconf notoken nosuchtoken hub.pin hub
softhsm_give_to "$DUSER" "$T/tokens"
chown "$DUSER:" "$T"/*.pin 2>/dev/null

hub() { "$MTLSGW" -c "$T/hub.conf" "$@"; }
P=$T/hub-pki
sum() { sha256sum "$P/registry.json" "$P/crl.pem" 2>/dev/null | sha256sum; }

# ---- init -------------------------------------------------------------
expect_exit 0 "init makes the CA" hub init --cn gw1 --host gw1.example.net --host 192.0.2.1
for f in ca.crt gateway.crt crl.pem registry.json audit.log; do
    ok_if "init wrote $f" test -s "$P/$f"
done
if [ "$DUSER" != root ]; then
    ok_if "pki files belong to $DUSER" test "$(stat -c %U "$P/registry.json")" = "$DUSER"
    ok_if "token objects belong to $DUSER" \
        test -z "$(find "$T/tokens" ! -user "$DUSER")"
fi
ca_text=$(openssl x509 -in "$P/ca.crt" -noout -text)
expect_in "CA:TRUE" "$ca_text" "CA has CA:TRUE"
expect_in "Certificate Sign, CRL Sign" "$ca_text" "CA has keyCertSign and cRLSign"
expect_in "Subject: CN = gw1 CA" "$ca_text" "CA subject"
gw_text=$(openssl x509 -in "$P/gateway.crt" -noout -text)
expect_in "TLS Web Server Authentication" "$gw_text" "gateway has serverAuth"
expect_in "DNS:gw1.example.net" "$gw_text" "gateway SAN DNS"
expect_in "IP Address:192.0.2.1" "$gw_text" "gateway SAN IP"
ok_if "openssl verify accepts gateway.crt" \
    openssl verify -CAfile "$P/ca.crt" -purpose sslserver "$P/gateway.crt"
ok_if "openssl crl verifies the empty CRL" \
    sh -c "openssl crl -in '$P/crl.pem' -CAfile '$P/ca.crt' -noout 2>&1 | grep -q 'verify OK'"

keys=$(GNUTLS_PIN=$PIN p11tool --provider "$MODULE" --login --list-all-privkeys \
    "pkcs11:token=gw" 2>&1)
for label in mtlsgw-ca mtlsgw-gateway; do
    block=$(printf '%s\n' "$keys" | awk -v l="$label" '
        /^Object [0-9]+:/ { inblk = 0 }
        $0 ~ "Label: " l "$" { inblk = 1 }
        inblk')
    expect_in "CKA_SENSITIVE" "$block" "$label is sensitive on the token"
    expect_not_in "CKA_EXTRACTABLE" "$block" "$label is not extractable"
done

before=$(sum)
expect_exit 1 "init refuses to overwrite a CA" hub init --cn gw2
expect_in "--force" "$OUT" "init says how to replace"
ok_if "refused init changed nothing" test "$(sum)" = "$before"

# ---- device side: csr --------------------------------------------------
expect_exit 0 "csr on the spoke's token" \
    "$MTLSGW" -c "$T/spoke.conf" csr --cn spoke1 --out "$T/spoke1.csr"
ok_if "openssl accepts the CSR" openssl req -in "$T/spoke1.csr" -noout -verify
expect_exit 0 "csr again reuses the device key" \
    "$MTLSGW" -c "$T/spoke.conf" csr --cn spoke1 --out "$T/spoke1b.csr"
expect_in "reused" "$OUT" "csr says it reused the key"

# ---- enroll ------------------------------------------------------------
expect_exit 0 "enroll a tunnel peer by CSR" hub enroll spoke1 --role tunnel \
    --csr "$T/spoke1.csr" --out "$T/spoke1.crt" --network 10.1.0.0/24 --network fd00:1::/64
ok_if "openssl verify accepts the peer certificate as a client" \
    openssl verify -CAfile "$P/ca.crt" -purpose sslclient "$T/spoke1.crt"
sp_text=$(openssl x509 -in "$T/spoke1.crt" -noout -text)
expect_in "URI:urn:mtlsgw:role:tunnel" "$sp_text" "role URI SAN"
expect_in "TLS Web Client Authentication" "$sp_text" "clientAuth EKU"
serial=$(openssl x509 -in "$T/spoke1.crt" -noout -serial | cut -d= -f2)
ok_if "serial has 128 bits (got $serial)" test "${#serial}" -ge 31 -a "${#serial}" -le 32
days=$(( ($(date -d "$(openssl x509 -in "$T/spoke1.crt" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
ok_if "default lifetime 397 days (got $days)" test "$days" -ge 396 -a "$days" -le 397

printf 'correct horse battery\n' >"$T/p12pass"
expect_exit 0 "enroll an admin peer as PKCS#12" hub enroll admin1 --role admin \
    --p12 "$T/admin1.p12" --password-file "$T/p12pass"
ok_if "PKCS#12 is mode 0600" test "$(stat -c %a "$T/admin1.p12")" = 600
ok_if "openssl pkcs12 reads it" \
    sh -c "openssl pkcs12 -in '$T/admin1.p12' -passin 'file:$T/p12pass' -nodes -out '$T/admin1.pem'"
ok_if "the PKCS#12 holds a key and the certificate chain" \
    sh -c "grep -q 'PRIVATE KEY' '$T/admin1.pem' && openssl verify -CAfile '$P/ca.crt' -purpose sslclient '$T/admin1.pem'"
ok_if "openssl pkcs12 refuses a wrong password" \
    sh -c "! openssl pkcs12 -in '$T/admin1.p12' -passin pass:wrong -noout 2>/dev/null"
if command -v keytool >/dev/null; then
    ks=$(keytool -list -v -keystore "$T/admin1.p12" -storetype PKCS12 \
        -storepass "correct horse battery" 2>&1)
    expect_in "PrivateKeyEntry" "$ks" "keytool reads the PKCS#12 key entry"
    expect_in "Certificate chain length: 2" "$ks" "keytool sees cert and CA"
else
    tap_result 1 "keytool present" "keytool missing: dev/deps installs default-jre-headless"
fi
# The spoke's key is already enrolled: spoke1b.csr carries the same key.
expect_exit 1 "the same key cannot be enrolled twice" hub enroll mon1 --role monitor \
    --csr "$T/spoke1b.csr"
expect_in "already enrolled as peer 'spoke1'" "$OUT" "same key under a second name is refused"

# ---- peers / show ------------------------------------------------------
expect_exit 0 "peers --json" hub peers --json
json=$OUT
ok_if "peers --json has the fields" python3 -c '
import json, sys
peers = json.loads(sys.argv[1])
by = {p["name"]: p for p in peers}
assert set(by) == {"spoke1", "admin1"}, by.keys()
for p in peers:
    for k in ("name", "role", "serial", "not_after", "status", "networks"):
        assert k in p, k
assert by["spoke1"]["networks"] == ["10.1.0.0/24", "fd00:1::/64"]
assert by["spoke1"]["role"] == "tunnel" and by["admin1"]["role"] == "admin"
assert by["spoke1"]["serial"] == sys.argv[2].lower(), (by["spoke1"]["serial"], sys.argv[2])
' "$json" "$serial"
expect_exit 0 "peers table" hub peers
expect_in "spoke1" "$OUT" "table lists spoke1"
expect_exit 0 "show --json" hub show spoke1 --json
ok_if "show --json is one object" python3 -c '
import json, sys; p = json.loads(sys.argv[1]); assert p["name"] == "spoke1" and p["status"] == "active"' "$OUT"
expect_exit 1 "show of an unknown peer" hub show nobody

# ---- explain -----------------------------------------------------------
expect_exit 0 "explain grants spoke1" hub explain "$T/spoke1.crt"
expect_in "granted: peer spoke1, role tunnel" "$OUT" "explain names peer and role"
expect_in "10.1.0.0/24" "$OUT" "explain lists networks"
expect_exit 0 "explain grants admin1" hub explain "$T/admin1.pem"

# Certificates the CLI would never make, signed by the real CA key on the
# token through certtool (GnuTLS) with a PKCS#11 URI.
certtool --generate-privkey --key-type ecdsa --outfile "$T/x.key" 2>/dev/null
mkcert() { # name template-lines...
    local name=$1
    shift
    printf '%s\n' "$@" >"$T/$name.tmpl"
    GNUTLS_PIN=$PIN certtool --generate-certificate --load-privkey "$T/x.key" \
        --load-ca-privkey "pkcs11:token=gw;object=mtlsgw-ca;type=private" \
        --load-ca-certificate "$P/ca.crt" --template "$T/$name.tmpl" \
        --outfile "$T/$name.crt" >/dev/null 2>&1
}
mkcert expired 'cn = old' 'tls_www_client' 'uri = urn:mtlsgw:role:tunnel' \
    'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2021-01-01 00:00:00"'
mkcert future 'cn = new' 'tls_www_client' 'uri = urn:mtlsgw:role:tunnel' \
    'activation_date = "2040-01-01 00:00:00"' 'expiration_date = "2041-01-01 00:00:00"'
mkcert noclient 'cn = srv' 'tls_www_server' 'uri = urn:mtlsgw:role:tunnel' 'expiration_days = 30'
mkcert stranger 'cn = stranger' 'tls_www_client' 'uri = urn:mtlsgw:role:tunnel' 'expiration_days = 30'
admin_serial=$(openssl x509 -in "$T/admin1.pem" -noout -serial | cut -d= -f2)
mkcert wrongrole 'cn = admin1' 'tls_www_client' 'uri = urn:mtlsgw:role:tunnel' \
    "serial = 0x$admin_serial" 'expiration_days = 30'
for c in expired future noclient stranger wrongrole; do
    ok_if "certtool made $c.crt" test -s "$T/$c.crt"
done
expect_exit 1 "explain refuses an expired certificate" hub explain "$T/expired.crt"
expect_in "refused: expired on 2021-01-01" "$OUT" "reason: expired"
expect_exit 1 "explain refuses a not yet valid certificate" hub explain "$T/future.crt"
expect_in "refused: not yet valid" "$OUT" "reason: not yet valid"
expect_exit 1 "explain refuses a certificate without clientAuth" hub explain "$T/noclient.crt"
expect_in "refused: no clientAuth" "$OUT" "reason: no clientAuth"
expect_exit 1 "explain refuses a certificate not in the registry" hub explain "$T/stranger.crt"
expect_in "refused: not in registry" "$OUT" "reason: not in registry"
expect_exit 1 "explain refuses a role mismatch" hub explain "$T/wrongrole.crt"
expect_in "role mismatch: certificate says tunnel, registry says admin" "$OUT" "reason: role mismatch"

# A foreign CA with the same name, and a peer of it.
expect_exit 0 "a second CA with the same CN" "$MTLSGW" -c "$T/other.conf" init --cn gw1
"$MTLSGW" -c "$T/other.conf" enroll spoke1 --role tunnel --csr "$T/spoke1.csr" \
    --out "$T/foreign.crt" >/dev/null 2>&1
expect_exit 1 "explain refuses a peer of a foreign CA with the same CN" hub explain "$T/foreign.crt"
expect_in "refused:" "$OUT" "foreign CA refused"
case "$OUT" in
*"unknown issuer"* | *"signature does not verify"*) tap_result 0 "reason names the issuer problem" ;;
*) tap_result 1 "reason names the issuer problem" "$OUT" ;;
esac
printf 'garbage\n' >"$T/garbage.pem"
expect_exit 1 "explain on garbage" hub explain "$T/garbage.pem"
expect_in "not a PEM or DER X.509 certificate" "$OUT" "garbage named"

# ---- bad input changes nothing ------------------------------------------
before=$(sum)
printf 'this is not a CSR\n' >"$T/garbage.csr"
expect_exit 1 "garbage CSR refused" hub enroll g1 --role tunnel --csr "$T/garbage.csr"
expect_in "not PEM or DER PKCS#10" "$OUT" "garbage CSR named"
sed '2s/^.\{10\}/AAAAAAAAAA/' "$T/spoke1.csr" >"$T/broken.csr"
expect_exit 1 "CSR with a broken body refused" hub enroll g2 --role tunnel --csr "$T/broken.csr"
"$MTLSGW" -c "$T/other.conf" csr --cn dup --out "$T/other.csr" >/dev/null 2>&1
expect_exit 1 "duplicate name refused" hub enroll spoke1 --role tunnel --csr "$T/other.csr"
expect_in "already enrolled" "$OUT" "duplicate named"
expect_exit 2 "unknown role refused (usage: 2)" hub enroll r1 --role king --csr "$T/other.csr"
expect_in "unknown role" "$OUT" "unknown role named"
expect_exit 2 "bad network refused (usage: 2)" hub enroll n1 --role tunnel --csr "$T/other.csr" \
    --network 10.1.0.1/24
expect_in "host bits" "$OUT" "bad network named"
# [tunnel] peer-networks (unset: the private ranges) bounds what a hub
# peer may be given; the refusal names the key and the file.
expect_exit 1 "network outside peer-networks refused" hub enroll n2 --role tunnel \
    --csr "$T/other.csr" --network 10.2.0.0/24 --network 0.0.0.0/1
expect_in "network 0.0.0.0/1 is outside [tunnel] peer-networks" "$OUT" \
    "peer-networks refusal names the network and the key"
expect_exit 1 "invite with a public network refused" hub invite n3 --role tunnel \
    --network 8.8.8.0/24
expect_in "outside [tunnel] peer-networks" "$OUT" "invite refusal names the key"
# Nor over [tunnel] pool: the peer could send from other peers' tunnel
# addresses.
{ cat "$T/hub.conf"; printf '[tunnel]\npool = 10.99.0.0/24\n'; } >"$T/pool.conf"
expect_exit 1 "network overlapping [tunnel] pool refused" "$MTLSGW" -c "$T/pool.conf" \
    enroll n4 --role tunnel --csr "$T/other.csr" --network 10.99.0.0/25
expect_in "overlaps [tunnel] pool 10.99.0.0/24" "$OUT" "pool refusal names the pool"
expect_exit 1 "invite with a network covering the pool refused" "$MTLSGW" -c "$T/pool.conf" \
    invite n5 --role tunnel --network 10.96.0.0/12
expect_in "overlaps [tunnel] pool" "$OUT" "invite pool refusal names the pool"
expect_exit 2 "bad peer name refused (usage: 2)" hub enroll "a/b" --role tunnel --csr "$T/other.csr"
expect_exit 1 "unwritable --out records nothing" hub enroll w1 --role tunnel \
    --csr "$T/other.csr" --out /nonexistent/dir/w1.crt
expect_in "nothing was recorded" "$OUT" "unwritable --out named"
expect_exit 1 "wrong PIN" "$MTLSGW" -c "$T/wrongpin.conf" enroll w2 --role tunnel \
    --csr "$T/other.csr"
expect_in "wrong PIN" "$OUT" "wrong PIN named"
expect_in "$T/wrong.pin" "$OUT" "wrong PIN names the pin file"
expect_not_in "not-the-pin" "$OUT" "the PIN is never printed"
expect_exit 1 "missing token" "$MTLSGW" -c "$T/notoken.conf" enroll w3 --role tunnel \
    --csr "$T/other.csr"
expect_in "nosuchtoken" "$OUT" "missing token named"
if [ "$DUSER" != root ]; then
    chmod 555 "$P"
    expect_exit 1 "read-only pki dir refused" hub enroll w4 --role tunnel --csr "$T/other.csr"
    expect_in "$P" "$OUT" "read-only dir named"
    chmod 750 "$P"
fi
ok_if "bad input left registry and CRL unchanged" test "$(sum)" = "$before"
ok_if "no temp files left in the pki dir" test -z "$(find "$P" -name '*.tmp*')"

# ---- usage errors ---------------------------------------------------------
expect_exit 2 "enroll without --role is a usage error" hub enroll x --csr "$T/other.csr"
expect_exit 2 "enroll with both --csr and --p12" hub enroll x --role admin \
    --csr "$T/other.csr" --p12 "$T/x.p12"
expect_exit 2 "unknown command" hub frobnicate
expect_exit 2 "unknown option" hub peers --colour
expect_exit 0 "enroll --help" hub enroll --help
expect_in "--password-file" "$OUT" "help shows the synopsis"
for c in init csr enroll revoke peers show crl explain; do
    expect_exit 0 "$c --help" hub "$c" --help
done
printf '[token]\nuri = token=gw\ncolour = red\n' >"$T/bad.conf"
expect_exit 1 "malformed config" "$MTLSGW" -c "$T/bad.conf" peers
expect_in "bad.conf:2: uri = 'token=gw'" "$OUT" "config error names file, line and value"
expect_in "bad.conf:3: unknown key 'colour'" "$OUT" "every config error is reported"

# ---- revoke ------------------------------------------------------------
# hub.conf has no listener: no daemon judges peers, so there is none to tell.
expect_exit 0 "revoke spoke1" hub revoke spoke1 --reason keyCompromise
expect_in "no listener in $T/hub.conf" "$OUT" "... no daemon to tell without a listener"
expect_exit 0 "crl prints PEM" hub crl
crl_text=$(printf '%s\n' "$OUT" | openssl crl -noout -text 2>&1)
expect_in "Serial Number: $(printf '%s' "$serial" | tr a-f A-F)" "$crl_text" \
    "the CRL lists spoke1's serial"
expect_in "X509v3 CRL Number" "$crl_text" "the CRL has a number"
ok_if "openssl crl verifies the new CRL" \
    sh -c "openssl crl -in '$P/crl.pem' -CAfile '$P/ca.crt' -noout 2>&1 | grep -q 'verify OK'"
ok_if "openssl verify -crl_check refuses spoke1" \
    sh -c "! openssl verify -CAfile '$P/ca.crt' -crl_check -CRLfile '$P/crl.pem' '$T/spoke1.crt' >/dev/null 2>&1"
expect_exit 1 "explain refuses the revoked peer" hub explain "$T/spoke1.crt"
expect_in "revoked" "$OUT" "reason: revoked"
expect_exit 1 "revoke twice" hub revoke spoke1
expect_in "already revoked" "$OUT" "second revoke named"
expect_exit 1 "revoke an unknown peer" hub revoke nobody
expect_exit 2 "revoke with a bad reason (usage: 2)" hub revoke admin1 --reason boredom
hub show spoke1 --json >"$T/show.json"
ok_if "show says revoked with the reason" python3 -c '
import json, sys; p = json.load(open(sys.argv[1]))
assert p["status"] == "revoked" and p["reason"] == "keyCompromise", p' "$T/show.json"
expect_exit 1 "a revoked key cannot be enrolled again" hub enroll spoke1 --role tunnel \
    --csr "$T/spoke1.csr"
expect_in "revoked peer 'spoke1'" "$OUT" "revoked key named"
expect_exit 0 "the name can be enrolled again with a new key" hub enroll spoke1 \
    --role tunnel --csr "$T/other.csr" --out "$T/spoke1-new.crt"
expect_exit 0 "crl --out" hub crl --out "$T/crl-copy.pem"
ok_if "crl --out wrote a CRL" openssl crl -in "$T/crl-copy.pem" -noout

# Proof of possession (RFC 2986): a CSR whose signed part was changed after
# signing (its CN, same length) parses but is refused, and nothing is added.
certtool --generate-privkey --key-type ecdsa --outfile "$T/badsig.key" 2>/dev/null
printf 'cn = badsig1\n' >"$T/badsig.tmpl"
certtool --generate-request --no-text --load-privkey "$T/badsig.key" --template "$T/badsig.tmpl" \
    --outfile "$T/badsig.csr" 2>/dev/null
openssl req -in "$T/badsig.csr" -outform DER -out "$T/badsig.der" 2>/dev/null
python3 -c 'import sys
d = open(sys.argv[1], "rb").read()
assert d.count(b"badsig1") == 1
open(sys.argv[2], "wb").write(d.replace(b"badsig1", b"badsig2"))' "$T/badsig.der" "$T/badsig2.der"
ok_if "the tampered CSR still parses" openssl req -inform DER -in "$T/badsig2.der" -noout
expect_exit 1 "enroll refuses a CSR whose signature does not verify" \
    hub enroll badsig2 --role monitor --csr "$T/badsig2.der" --out "$T/badsig2.crt"
expect_in "signature does not verify" "$OUT" "the refusal says the signature does not verify"
expect_exit 1 "nothing was enrolled" hub show badsig2

audit=$(cat "$P/audit.log")
expect_in '"event":"revoke"' "$audit" "audit log records the revocation"
ok_if "audit log has one line per change (init + 3 enroll + 1 revoke)" \
    test "$(grep -c . "$P/audit.log")" = 5
expect_not_in "$PIN" "$audit" "audit log holds no PIN"

# ---- a daemon configured (a listener) but not reachable ------------------
# (docs/console.md, "Telling the daemon"): the change is made and stays,
# revoke exits 3 and names the socket; enroll says so and exits 0.
{
    cat "$T/hub.conf"
    printf 'control-socket = %s\n[management]\nlisten = 127.0.0.1:8443\n' "$T/nobody.sock"
} >"$T/listen.conf"
expect_exit 3 "revoke, daemon not reachable: exit 3" "$MTLSGW" -c "$T/listen.conf" revoke admin1
expect_in "revoked admin1" "$OUT" "... the revocation is made"
expect_in "cannot reach the daemon at $T/nobody.sock" "$OUT" "... naming the socket it tried"
expect_in "applies them within a second" "$OUT" "... saying the daemon's own watch applies it"
ok_if "... and the revocation stays" sh -c \
    "'$MTLSGW' -c '$T/hub.conf' show admin1 --json | grep -q '\"status\": *\"revoked\"'"
keycsr_console() {
    certtool --generate-privkey --key-type ecdsa --outfile "$T/$1.key" 2>/dev/null &&
        printf 'cn = %s\n' "$1" >"$T/$1.tmpl" &&
        certtool --generate-request --load-privkey "$T/$1.key" --template "$T/$1.tmpl" \
            --outfile "$T/$1.csr" 2>/dev/null
}
keycsr_console late1
expect_exit 0 "enroll, daemon not reachable: exit 0 (refused until read: fail closed)" \
    "$MTLSGW" -c "$T/listen.conf" enroll late1 --role monitor --csr "$T/late1.csr" \
    --out "$T/late1.crt"
expect_in "cannot reach the daemon at $T/nobody.sock" "$OUT" "... and says it was not told"

tap_done
