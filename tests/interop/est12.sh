#!/bin/bash
# EST for off-the-shelf clients (issue #16 item 7, docs/est.md): the
# enrollment listener's own TLS floor, [enroll] tls-min, default 1.2 with
# AEAD and ECDHE only, while the management listener stays at 1.3.
#  - TLS 1.2 with ECDHE + AES-GCM reaches the EST listener by default;
#    CBC, static RSA and finite-field DHE suites do not;
#  - the management listener still refuses TLS 1.2;
#  - `[enroll] tls-min = 1.3` refuses TLS 1.2 on the EST listener too;
#  - strongSwan's `pki --est` (TLS 1.2 only) enrolls with an invite code and
#    re-enrolls with its certificate, against the default config (skipped,
#    saying what to install, only when strongswan-pki or its openssl plugin,
#    libstrongswan-standard-plugins, is missing).
#
# usage: est12.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_need curl openssl python3
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
dmn_temp est12
softhsm_setup "$T"
mkdir -p "$T/run"
chmod 700 "$T/run"
softhsm_token gw "$PIN"
printf '%s\n' "$PIN" >"$T/gw.pin"
chmod 600 "$T/gw.pin"
P=$T/gw-pki
PORT=$(free_port)
EPORT=$(free_port)
mkconf "$T/gw.conf" gw "$T/gw.pin" "$P" "[management]" "listen = 127.0.0.1:$PORT" \
    "[enroll]" "listen = 127.0.0.1:$EPORT"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T/gw.pin"
# RSA: what field EST clients (and strongSwan without its openssl plugin)
# verify.
"$MTLSGW" -c "$T/gw.conf" init --cn gw --host 127.0.0.1 --key-type rsa-3072 >/dev/null 2>&1 ||
    { echo "Bail out! init"; exit 1; }

start() { # conf
    "$MTLSGWD" -c "$1" -f >>"$T/daemon.log" 2>&1 &
    DPID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null --cacert "$P/ca.crt" "https://127.0.0.1:$EPORT/.well-known/est/cacerts" &&
            return 0
        sleep 0.1
    done
    return 1
}
# s_client PORT ARGS... -> its "New, TLSv1.2, Cipher is ..." line ("New, (NONE)" refused)
hs() {
    local port=$1
    shift
    echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -CAfile "$P/ca.crt" "$@" 2>&1 |
        grep -E '^New, ' | tr -s ' ' | tr '\n' ' '
}

start "$T/gw.conf" || { echo "Bail out! daemon"; exit 1; }
out=$(hs "$EPORT" -tls1_2)
ok_if "EST listener, default config: TLS 1.2 with ECDHE and AES-GCM ($out)" \
    sh -c "echo '$out' | grep -Eq 'New, TLSv1.2, Cipher is ECDHE-[A-Z]+-(AES[0-9]+-GCM|CHACHA20)'"
for c in AES128-SHA256 AES128-GCM-SHA256 DHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-SHA256 \
    ECDHE-RSA-AES256-SHA; do
    out=$(hs "$EPORT" -tls1_2 -cipher "$c")
    ok_if "EST listener refuses TLS 1.2 with $c (no AEAD or no ECDHE)" \
        sh -c "! echo '$out' | grep -q 'New, TLSv1.2'"
done
code=$(curl -s -o /dev/null -w '%{http_code}' --tlsv1.2 --tls-max 1.2 --cacert "$P/ca.crt" \
    "https://127.0.0.1:$EPORT/.well-known/est/cacerts")
ok_if "curl limited to TLS 1.2 gets cacerts (got $code)" test "$code" = 200
out=$(hs "$PORT" -tls1_2)
ok_if "management listener still refuses TLS 1.2 ($out)" \
    sh -c "! echo '$out' | grep -q 'New, TLSv1.2'"

# ---- strongSwan pki --est ---------------------------------------------------
openssl req -new -newkey rsa:2048 -nodes -subj /CN=probe -keyout "$T/probe.key" \
    -out "$T/probe.csr" 2>/dev/null
pki_suites() { # what this strongSwan's TLS stack offers, from a dry run against us
    timeout 10 pki --est --url "https://127.0.0.1:$EPORT/" --cacert "$P/ca.crt" \
        --in "$T/probe.csr" --userpass probe:x --debug 2 2>&1 | grep -E '^ *TLS_' | tr -d ' '
}
# Its openssl plugin (libstrongswan-standard-plugins, in dev/deps) gives
# strongSwan's TLS stack ECDHE and AES-GCM; without it pki --est offers no
# suite an RFC 7030 server should take. With it, this must pass: no skip.
sw_plugin=
for d in /usr/lib/ipsec/plugins /usr/lib/*/ipsec/plugins; do
    [ -e "$d/libstrongswan-openssl.so" ] && sw_plugin=$d/libstrongswan-openssl.so
done
if ! command -v pki >/dev/null || ! pki --help 2>&1 | grep -q -- '--est'; then
    tap_skip "strongSwan pki --est enrolls and re-enrolls" \
        "strongswan-pki with --est missing: apt-get install strongswan-pki"
elif [ -z "$sw_plugin" ]; then
    tap_skip "strongSwan pki --est enrolls and re-enrolls" \
        "strongSwan's openssl plugin missing, so pki --est offers no ECDHE + AES-GCM suite ($(pki_suites | head -3 | tr '\n' ' ')...): apt-get install libstrongswan-standard-plugins"
else
    ok_if "strongSwan pki --est offers ECDHE + AES-GCM (its openssl plugin, $sw_plugin)" \
        sh -c "$(declare -f pki_suites); T='$T' EPORT='$EPORT' P='$P' pki_suites | grep -q 'ECDHE_.*_GCM'"
    INV=$("$MTLSGW" -c "$T/gw.conf" invite sw1 --role tunnel 2>&1)
    CODE=$(printf '%s\n' "$INV" | awk '$1 == "code" {print $2}')
    pki --gen --type rsa --size 3072 --outform pem >"$T/sw1.key" 2>/dev/null
    pki --req --in "$T/sw1.key" --type priv --dn "CN=sw1" --outform pem >"$T/sw1.csr" 2>/dev/null
    timeout 20 pki --est --url "https://127.0.0.1:$EPORT/" --cacert "$P/ca.crt" \
        --in "$T/sw1.csr" --userpass "sw1:$CODE" --outform pem >"$T/sw1.crt" 2>"$T/pki.err"
    ok_if "pki --est enrolls sw1 with the invite code" \
        openssl verify -CAfile "$P/ca.crt" "$T/sw1.crt"
    pki --gen --type rsa --size 3072 --outform pem >"$T/sw1b.key" 2>/dev/null
    pki --req --in "$T/sw1b.key" --type priv --dn "CN=sw1" --outform pem >"$T/sw1b.csr" 2>/dev/null
    timeout 20 pki --est --url "https://127.0.0.1:$EPORT/" --cacert "$P/ca.crt" \
        --cert "$T/sw1.crt" --key "$T/sw1.key" --in "$T/sw1b.csr" --outform pem \
        >"$T/sw1b.crt" 2>>"$T/pki.err"
    s1=$(openssl x509 -in "$T/sw1.crt" -noout -serial 2>/dev/null)
    s2=$(openssl x509 -in "$T/sw1b.crt" -noout -serial 2>/dev/null)
    ok_if "pki --est re-enrolls sw1 with its certificate ($s1 -> $s2)" \
        sh -c "[ -n '$s2' ] && [ '$s1' != '$s2' ] && openssl verify -CAfile '$P/ca.crt' '$T/sw1b.crt'"
fi

# ---- [enroll] tls-min = 1.3 -------------------------------------------------
dmn_stop
cp "$T/gw.conf" "$T/gw13.conf"
printf '[enroll]\ntls-min = 1.3\n' >>"$T/gw13.conf"
start "$T/gw13.conf" || { echo "Bail out! daemon (tls-min 1.3)"; exit 1; }
out=$(hs "$EPORT" -tls1_2)
ok_if "[enroll] tls-min = 1.3: the EST listener refuses TLS 1.2 ($out)" \
    sh -c "! echo '$out' | grep -q 'New, TLSv1.2'"
out=$(hs "$EPORT" -tls1_3)
ok_if "[enroll] tls-min = 1.3: TLS 1.3 still served ($out)" \
    sh -c "echo '$out' | grep -q 'New, TLSv1.3'"
tap_done
