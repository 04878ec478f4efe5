#!/bin/bash
# Every console command that writes a file the administrator names, to what
# is not a plain file (docs/console.md, "Where output goes"):
#
#   csr --out, enroll --out, enroll --p12, crl --out
#     -> $T/null       mknod c 1 3, a private /dev/null: stays a device
#     -> $T/fifo       a FIFO with a reader: stays a FIFO, the reader gets it
#     -> $T/link       a symlink to $T/target: refused; with --force the
#                      target is written and the link stays a link
#     -> -             stdout (the "written to" line goes to stderr)
#     -> /dev/stdout   the same name, run in a private mount namespace over a
#                      copy of /dev, so that a build that replaces its output
#                      cannot replace the machine's /dev/stdout
#
# and the daemon's state files, never written through a link or into a FIFO:
#   crl.pem a symlink (revoke), invites.json a dangling symlink (invite),
#   audit.log a FIFO without a reader (enroll).
#
# usage: outputs.sh PATH-TO-mtlsgw
set -u
MTLSGW=$(readlink -f "$1")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"

T=$(mktemp -d /tmp/mtlsgw-outputs.XXXXXX)
READER=
cleanup() {
    [ -n "$READER" ] && kill "$READER" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
cd "$T" || exit 1 # a build that took "-" for a file name would make $T/-
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
softhsm_token gw hub-pin-00
softhsm_token sp spoke-pin-0
DUSER=mtlsgw
getent passwd "$DUSER" >/dev/null || DUSER=root
ROOT=no
[ "$(id -u)" = 0 ] && ROOT=yes

mkconf() { # name token pin
    printf '%s\n' "$3" >"$T/$1.pin"
    chmod 600 "$T/$1.pin"
    cat >"$T/$1.conf" <<CONF
[token]
uri = pkcs11:token=$2
module = $MODULE
pin-file = $T/$1.pin
[pki]
dir = $T/$1-pki
[daemon]
user = $DUSER
CONF
}
mkconf hub gw hub-pin-00
mkconf spoke sp spoke-pin-0
softhsm_give_to "$DUSER" "$T/tokens"
chown "$DUSER:" "$T"/*.pin 2>/dev/null
P=$T/hub-pki
printf 'correct horse battery\n' >"$T/p12pass"

# A copy of /dev for the /dev/stdout runs (see the top).
PRIVDEV=no
if [ $ROOT = yes ] && unshare -m true 2>/dev/null; then
    mkdir "$T/dev"
    cp -a /dev/null /dev/zero /dev/random /dev/urandom /dev/full "$T/dev/"
    ln -s /proc/self/fd "$T/dev/fd"
    ln -s /proc/self/fd/0 "$T/dev/stdin"
    ln -s /proc/self/fd/1 "$T/dev/stdout"
    ln -s /proc/self/fd/2 "$T/dev/stderr"
    PRIVDEV=yes
fi
private_dev() {
    unshare -m --propagation private \
        sh -c 'mount --bind "$0" /dev && exec "$@"' "$T/dev" "$@"
}

# mtlsgw, through $WRAP (private_dev or nothing); never hangs the suite.
WRAP=
hub() { $WRAP timeout 60 "$MTLSGW" -c "$T/hub.conf" "$@"; }
spoke() { $WRAP timeout 60 "$MTLSGW" -c "$T/spoke.conf" "$@"; }

# The four writers: NAME OUT [--force]. NAME keeps peers and keys apart.
w_csr() { local n=$1 o=$2; shift 2; spoke csr --cn "$n" --out "$o" "$@"; }
w_enroll() {
    local n=$1 o=$2; shift 2
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$n.key" -subj "/CN=$n" -out "$T/$n.csr" 2>/dev/null || return 9
    hub enroll "$n" --role monitor --csr "$T/$n.csr" --out "$o" "$@"
}
w_p12() {
    local n=$1 o=$2; shift 2
    hub enroll "$n" --role admin --p12 "$o" --password-file "$T/p12pass" "$@"
}
w_crl() { local o=$2; shift 2; hub crl --out "$o" "$@"; }

looks() { # KIND FILE: what the writer's output must be
    case $1 in
    csr) grep -q -- 'CERTIFICATE REQUEST-----' "$2" ;;
    enroll) grep -q -- '-----BEGIN CERTIFICATE-----' "$2" ;;
    crl) grep -q -- '-----BEGIN X509 CRL-----' "$2" ;;
    p12) openssl pkcs12 -in "$2" -passin "file:$T/p12pass" -noout 2>/dev/null ;;
    esac
}
skip() { tap_result 0 "$1 # SKIP $2"; }

# ---- setup --------------------------------------------------------------
expect_exit 0 "init the hub's CA" hub init --cn gw1 --host gw1.example.net
[ -s "$P/ca.crt" ] || { echo "$OUT" | sed 's/^/# /'; echo "Bail out! init failed"; exit 1; }

# ---- each writer to each kind of output ----------------------------------
for w in csr enroll p12 crl; do
    fn=w_$w

    # a character device: written in place, stays a device
    if [ $ROOT = yes ]; then
        rm -f "$T/null"
        mknod "$T/null" c 1 3
        expect_exit 0 "$w: to a device node" $fn "$w-dev" "$T/null"
        ok_if "$w: the device node is still a character device" test -c "$T/null"
    else
        skip "$w: to a device node" "mknod needs root"
    fi

    # a FIFO with a reader: the reader gets the bytes, the FIFO stays
    rm -f "$T/fifo" "$T/fifo.got"
    mkfifo "$T/fifo"
    timeout 30 cat "$T/fifo" >"$T/fifo.got" &
    READER=$!
    expect_exit 0 "$w: to a FIFO" $fn "$w-fifo" "$T/fifo"
    for _ in $(seq 50); do kill -0 "$READER" 2>/dev/null || break; sleep 0.1; done
    kill "$READER" 2>/dev/null
    wait "$READER" 2>/dev/null
    READER=
    ok_if "$w: the FIFO is still a FIFO" test -p "$T/fifo"
    ok_if "$w: the FIFO's reader got the output" looks $w "$T/fifo.got"

    # a symlink: refused without --force, and nothing changes
    rm -f "$T/link" "$T/target"
    printf 'old\n' >"$T/target"
    ln -s "$T/target" "$T/link"
    expect_exit 1 "$w: to a symlink, refused without --force" $fn "$w-link" "$T/link"
    expect_in "is a symbolic link" "$OUT" "$w: the refusal says it is a link"
    expect_in "--force" "$OUT" "$w: the refusal names --force"
    ok_if "$w: the link is still a link" test -L "$T/link"
    ok_if "$w: its target is unchanged" test "$(cat "$T/target")" = old
    if [ $w = enroll ] || [ $w = p12 ]; then
        expect_not_in "$w-link" "$(hub peers 2>&1)" "$w: a refused output records no peer"
    fi
    # ... and with --force the target is written, the link stays
    expect_exit 0 "$w: to a symlink with --force" $fn "$w-link" "$T/link" --force
    ok_if "$w: the link is still a link to the target" \
        test -L "$T/link" -a "$(readlink "$T/link")" = "$T/target"
    ok_if "$w: the target holds the output" looks $w "$T/target"

    # - and /dev/stdout: stdout only, the note on stderr
    for o in - /dev/stdout; do
        WRAP=
        if [ "$o" = /dev/stdout ]; then
            if [ $PRIVDEV = no ]; then
                skip "$w: to /dev/stdout" "no private mount namespace (needs root)"
                continue
            fi
            WRAP=private_dev
        fi
        $fn "$w-std${o//\//_}" "$o" >"$T/std.out" 2>"$T/std.err"
        rc=$?
        WRAP=
        tap_result $rc "$w: to $o" "exit $rc: $(cat "$T/std.err")"
        ok_if "$w: stdout holds the output ($o)" looks $w "$T/std.out"
        if [ $w != crl ]; then
            expect_not_in "written to" "$(cat "$T/std.out")" "$w: no note mixed into stdout ($o)"
            expect_in "written to $o" "$(cat "$T/std.err")" "$w: the note is on stderr ($o)"
        fi
    done
    ok_if "$w: no file named '-' was made" test ! -e "$T/-"
    if [ $PRIVDEV = yes ]; then
        ok_if "$w: the private /dev/stdout is still a link" test -L "$T/dev/stdout"
    fi
done

# ---- state files ---------------------------------------------------------
# crl.pem a symlink: revoke refuses it; the link, its target and the
# registry stay as they were.
mv "$P/crl.pem" "$P/crl.real"
ln -s "$P/crl.real" "$P/crl.pem"
before=$(sha256sum "$P/crl.real" "$P/registry.json")
expect_exit 1 "revoke: crl.pem a symlink is refused" hub revoke enroll-fifo
expect_in "symbolic link" "$OUT" "revoke: the refusal says crl.pem is a link"
ok_if "revoke: crl.pem is still a link" test -L "$P/crl.pem"
ok_if "revoke: the CRL and the registry are unchanged" \
    test "$(sha256sum "$P/crl.real" "$P/registry.json")" = "$before"
rm "$P/crl.pem"
mv "$P/crl.real" "$P/crl.pem"
expect_exit 0 "revoke works again with crl.pem a file" hub revoke enroll-fifo

# invites.json a dangling symlink: invite refuses to create what it points to.
ln -s "$T/elsewhere.json" "$P/invites.json"
expect_exit 1 "invite: invites.json a symlink is refused" hub invite dev9 --role monitor
expect_in "symbolic link" "$OUT" "invite: the refusal says invites.json is a link"
ok_if "invite: invites.json is still a link" test -L "$P/invites.json"
ok_if "invite: nothing was made where it points" test ! -e "$T/elsewhere.json"
rm "$P/invites.json"

# audit.log a FIFO nobody reads: the enroll neither hangs nor replaces it.
mv "$P/audit.log" "$P/audit.real"
mkfifo -m 0640 "$P/audit.log"
chown "$DUSER:" "$P/audit.log"
WRAP="timeout 15"
expect_exit 0 "enroll: with audit.log a FIFO, no hang" w_p12 audit-fifo "$T/audit.p12"
WRAP=
ok_if "enroll: audit.log is still a FIFO" test -p "$P/audit.log"

tap_done
