#!/bin/bash
# What an administrator of many years expects of the console and the daemon
# (issue #15 items 5-9, docs/console.md):
#
#   mtlsgw enroll/csr/crl --out, --p12   an existing file kept unless --force
#   mtlsgw init --force                  says what is lost, asks (or --yes)
#   mtlsgwd twice on one config          the second refused, naming the
#                                        first's pid; its socket untouched
#   --network                            overlaps, duplicates, no length,
#                                        default routes refused
#   typos                                exit 2, the nearest command named
#   sessions, peers --status, /api/v1/ca, /api/v1/crl
#
#   curl --> mtlsgwd -f (127.0.0.1:$PORT, token "gw") <-- mtlsgw (control socket)
#
# usage: admin.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-daemon.sh"

for tool in curl openssl certtool python3 script; do
    command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }

T=$(mktemp -d /tmp/mtlsgw-admin.XXXXXX)
SECOND=
cleanup() {
    [ -n "$SECOND" ] && kill "$SECOND" 2>/dev/null
    dmn_stop
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$T"

dmn_fixture
case $? in
0) ;;
77) echo "1..0 # SKIP no SoftHSM"; exit 77 ;;
*) echo "Bail out! fixture: tokens, CA or peers could not be made"; exit 1 ;;
esac
sum() { sha256sum "$P/registry.json" "$P/crl.pem" | sha256sum; }

# ---- 5. nothing overwritten by accident ---------------------------------
keycsr ow1 >/dev/null 2>&1
printf 'precious\n' >"$T/keep.crt"
before=$(sum)
expect_exit 1 "enroll --out onto an existing file is refused" \
    hub enroll ow1 --role monitor --csr "$T/ow1.csr" --out "$T/keep.crt"
expect_in "file exists" "$OUT" "enroll: the refusal says the file exists"
expect_in "--force" "$OUT" "enroll: the refusal names --force"
ok_if "enroll: the file is unchanged" test "$(cat "$T/keep.crt")" = precious
ok_if "enroll: nothing recorded" test "$(sum)" = "$before"
expect_exit 0 "enroll --out --force replaces it" \
    hub enroll ow1 --role monitor --csr "$T/ow1.csr" --out "$T/keep.crt" --force
ok_if "enroll --force: the file holds the certificate" \
    grep -q 'BEGIN CERTIFICATE' "$T/keep.crt"

printf 'precious\n' >"$T/keep.p12"
printf 'correct horse battery\n' >"$T/p12pass"
expect_exit 1 "enroll --p12 onto an existing file is refused" \
    hub enroll ow2 --role monitor --p12 "$T/keep.p12" --password-file "$T/p12pass"
ok_if "enroll --p12: the file is unchanged" test "$(cat "$T/keep.p12")" = precious
expect_not_in "ow2" "$(hub peers 2>&1)" "enroll --p12: no peer recorded"

printf 'precious\n' >"$T/keep.crl"
expect_exit 1 "crl --out onto an existing file is refused" hub crl --out "$T/keep.crl"
ok_if "crl: the file is unchanged" test "$(cat "$T/keep.crl")" = precious
expect_exit 0 "crl --out --force replaces it" hub crl --out "$T/keep.crl" --force

printf 'precious\n' >"$T/keep.csr"
expect_exit 1 "csr --out onto an existing file is refused" \
    "$MTLSGW" -c "$T/ad.conf" csr --cn admin2 --out "$T/keep.csr"
ok_if "csr: the file is unchanged" test "$(cat "$T/keep.csr")" = precious

ca_before=$(sha256sum <"$P/ca.crt")
expect_exit 2 "init --force without a terminal and without --yes is refused" \
    hub init --cn gw2 --host 127.0.0.1 --force </dev/null
expect_in "--yes" "$OUT" "init --force: the refusal names --yes"
expect_in "must all be enrolled again" "$OUT" "init --force: says what is lost"
ok_if "init --force: the CA is unchanged" test "$(sha256sum <"$P/ca.crt")" = "$ca_before"
# On a terminal (script(1) gives one): "no" keeps everything.
OUT=$(printf 'no\n' | script -qec "$MTLSGW -c $T/gw.conf init --cn gw2 --host 127.0.0.1 --force" /dev/null 2>&1)
expect_in "Type 'yes'" "$OUT" "init --force on a terminal asks"
ok_if "init --force answered 'no': the CA is unchanged" \
    test "$(sha256sum <"$P/ca.crt")" = "$ca_before"
tap_done
