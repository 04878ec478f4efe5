#!/bin/bash
# `mtlsgw ca rollover` on a gateway whose CA is an intermediate under an
# organization's root (`init --intermediate` + `init --import-ca`, issue
# #16; docs/pki.md "CA rollover under an organization's root"): refused,
# nothing changed (before, it replaced the root in ca.crt with a self-signed
# CA and left chain.pem naming the old key, so the daemon could not load
# the CRL it signed). Then backup and restore of that pki dir.
#
#   openssl root (ca.crt) --signs--> hub1 CA (chain.pem, key on token "gw")
#                                       --issues--> admin1, gateway.crt
#
# usage: rollover-org.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-daemon.sh"

for tool in curl openssl certtool python3; do
    command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }

T=$(mktemp -d /tmp/mtlsgw-rollorg.XXXXXX)
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
PIN=gw-pin-0000
softhsm_token gw "$PIN" || { echo "Bail out! token"; exit 1; }
printf '%s\n' "$PIN" >"$T/gw.pin"
chmod 600 "$T/gw.pin"
chown "$DUSER:" "$T/gw.pin" 2>/dev/null
mkdir -p "$T/run"
chmod 700 "$T/run"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
P=$T/gw-pki
PORT=$(free_port)
gw_conf "$T/gw.conf"
DLOG=$T/daemon.log
: >"$DLOG"

cat >"$T/v3_intermediate.ext" <<'EXT'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EXT
openssl req -x509 -sha256 -days 3650 -newkey rsa:3072 -keyout "$T/root.key" \
    -out "$T/root.crt" -nodes -subj "/O=Example Org/CN=Example Org Root" 2>/dev/null ||
    { echo "Bail out! openssl cannot make the root"; exit 1; }
hub init --intermediate --cn hub1 --host 127.0.0.1 --csr-out "$T/hub1.csr" >/dev/null 2>&1 ||
    { echo "Bail out! init --intermediate"; exit 1; }
openssl x509 -req -in "$T/hub1.csr" -out "$T/hub1.crt" -CAkey "$T/root.key" -CA "$T/root.crt" \
    -CAcreateserial -days 1825 -sha256 -extfile "$T/v3_intermediate.ext" 2>/dev/null
hub init --import-ca "$T/hub1.crt" --chain "$T/root.crt" >/dev/null 2>&1 ||
    { echo "Bail out! init --import-ca"; exit 1; }
enroll_file_peer admin1 admin >/dev/null 2>&1 || { echo "Bail out! enroll admin1"; exit 1; }
dmn_start || { echo "Bail out! the daemon does not start: $(tail -5 "$DLOG")"; exit 1; }
req admin1 GET /api/v1/status
expect_http 200 "admin1 of the intermediate is served"

cp -a "$P" "$T/pki-before"
out=$(hub ca rollover --yes 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# rollover: /'
ok_if "ca rollover under an organization's root: refused" test "$rc" != 0
expect_in "intermediate" "$out" "... saying the CA is an intermediate"
expect_in "init --intermediate" "$out" "... and what to do instead"
ok_if "... and the pki dir is untouched" diff -r "$P" "$T/pki-before"
out=$(GNUTLS_PIN=$PIN p11tool --provider "$MODULE" --list-privkeys --login \
    "pkcs11:token=gw" 2>/dev/null)
expect_not_in "mtlsgw-ca-" "$out" "... and no new CA key was made on the token"
req admin1 GET /api/v1/status
expect_http 200 "admin1 is still served"
out=$(hub explain "$T/admin1.crt" 2>&1)
expect_in "granted: peer admin1, role admin" "$out" "explain still grants admin1"

# ---- backup and restore under the root (docs/backup.md) ------------------------
# The backup is signed by the intermediate's key (the CA key on the token);
# restore checks chain.pem's first certificate against it, not the root's.
out=$(hub backup --out "$T/b.tar" 2>&1)
ok_if "backup of an intermediate's pki dir" test $? = 0 || echo "# $out"
dmn_stop
rm -rf "$P"
out=$(hub restore "$T/b.tar" 2>&1)
ok_if "... restores into a wiped pki dir" test $? = 0 || echo "# $out"
ok_if "... chain.pem and ca.crt as they were" sh -c \
    "cmp -s '$P/chain.pem' '$T/pki-before/chain.pem' && cmp -s '$P/ca.crt' '$T/root.crt'"
dmn_start || { echo "Bail out! no daemon after the restore: $(tail -5 "$DLOG")"; exit 1; }
req admin1 GET /api/v1/status
expect_http 200 "... and admin1 is served again"
tap_done
