#!/bin/bash
# Every console command that writes a file the administrator names, to what
# is not a plain file (docs/console.md, "Where output goes"):
#
#   csr --out, enroll --out, enroll --p12, crl --out, reissue --out,
#   backup --out, init --intermediate --csr-out, root sign --out,
#   root crl --out (the commands that write a file the admin names)
#     -> $T/null       mknod c 1 3, a private /dev/null: stays a device
#     -> $T/fifo       a FIFO with a reader: stays a FIFO, the reader gets it
#     -> $T/link       a symlink to $T/target: refused; with --force the
#                      target is written and the link stays a link
#     -> -             stdout (the "written to" line goes to stderr)
#     -> /dev/stdout   the same name, run in a private mount namespace over a
#                      copy of /dev, so that a build that replaces its output
#                      cannot replace the machine's /dev/stdout
#
# and, as nobody in a sticky world-writable dir, a socket and a FIFO (with
# a reader) where root writes a PKCS#12, and a link to a root-only file
# where root runs crl --out --force: refused, nothing reaches nobody
# (docs/console.md, "Another user's names");
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
softhsm_token ap app-pin-000
softhsm_token rt root-pin-00
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
mkconf app ap app-pin-000
mkconf root rt root-pin-00
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
app() { $WRAP timeout 60 "$MTLSGW" -c "$T/app.conf" "$@"; }
root() { $WRAP timeout 60 "$MTLSGW" -c "$T/root.conf" "$@"; }

# The writers: NAME OUT [--force]. NAME keeps peers and keys apart.
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
w_reissue() { # a peer enrolled once per NAME (a refused run leaves it enrolled)
    local n=$1 o=$2; shift 2
    if [ ! -s "$T/$n.crt" ]; then
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$T/$n.key" -subj "/CN=$n" -out "$T/$n.csr" 2>/dev/null || return 9
        hub enroll "$n" --role monitor --csr "$T/$n.csr" --out "$T/$n.crt" \
            >/dev/null 2>&1 || return 9
    fi
    hub reissue "$n" --out "$o" "$@"
}
w_backup() { local o=$2; shift 2; hub backup --out "$o" "$@"; }
# the appliance's intermediate CA request; run again, its keys are reused
w_initcsr() { local o=$2; shift 2; app init --intermediate --cn app1 --host app1 --csr-out "$o" "$@"; }
w_rootsign() { # an intermediate's CSR per NAME, signed by the offline root
    local n=$1 o=$2; shift 2
    [ -s "$T/$n.ca.csr" ] || openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -keyout "$T/$n.ca.key" -subj "/CN=$n" -out "$T/$n.ca.csr" 2>/dev/null || return 9
    root root sign --csr "$T/$n.ca.csr" --out "$o" "$@"
}
w_rootcrl() { local o=$2; shift 2; root root crl --out "$o" "$@"; }

looks() { # KIND FILE: what the writer's output must be
    case $1 in
    csr | initcsr) grep -q -- 'CERTIFICATE REQUEST-----' "$2" ;;
    enroll | reissue | rootsign) grep -q -- '-----BEGIN CERTIFICATE-----' "$2" ;;
    crl | rootcrl) grep -q -- '-----BEGIN X509 CRL-----' "$2" ;;
    backup) tar -tf "$2" 2>/dev/null | grep -qx mtlsgw-backup.json ;;
    p12) openssl pkcs12 -in "$2" -passin "file:$T/p12pass" -noout 2>/dev/null ;;
    esac
}
skip() { tap_result 0 "$1 # SKIP $2"; }
not_grep() { ! grep -aq -- "$1" "$2"; }

# ---- setup --------------------------------------------------------------
expect_exit 0 "init the hub's CA" hub init --cn gw1 --host gw1.example.net
[ -s "$P/ca.crt" ] || { echo "$OUT" | sed 's/^/# /'; echo "Bail out! init failed"; exit 1; }
expect_exit 0 "init the offline root" root root init --cn "Outputs Root"
[ -s "$T/root-pki/root.crt" ] || { echo "$OUT" | sed 's/^/# /'; echo "Bail out! root init failed"; exit 1; }
# what a refused write must leave as it was: the registry, the root's record
# of what it signed and its CRL, the appliance's pki dir (sums of all files)
state() { find "$P" "$T/root-pki" "$T/app-pki" -type f -print0 2>/dev/null | sort -z |
    xargs -0 sha256sum 2>/dev/null | sha256sum; }

# ---- each writer to each kind of output ----------------------------------
for w in csr enroll p12 crl reissue backup initcsr rootsign rootcrl; do
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
    [ $w = reissue ] || [ $w = rootsign ] && $fn "$w-link" "$T/prep.out" >/dev/null 2>&1
    before=$(state)
    expect_exit 1 "$w: to a symlink, refused without --force" $fn "$w-link" "$T/link"
    expect_in "is a symbolic link" "$OUT" "$w: the refusal says it is a link"
    expect_in "--force" "$OUT" "$w: the refusal names --force"
    ok_if "$w: the link is still a link" test -L "$T/link"
    ok_if "$w: its target is unchanged" test "$(cat "$T/target")" = old
    if [ $w = enroll ] || [ $w = p12 ]; then
        expect_not_in "$w-link" "$(hub peers 2>&1)" "$w: a refused output records no peer"
    fi
    ok_if "$w: the refusal changed no state file" test "$(state)" = "$before"
    # ... and with --force the target is written, the link stays
    expect_exit 0 "$w: to a symlink with --force" $fn "$w-link" "$T/link" --force
    ok_if "$w: the link is still a link to the target" \
        test -L "$T/link" -a "$(readlink "$T/link")" = "$T/target"
    ok_if "$w: the target holds the output" looks $w "$T/target"

    # a directory, a block device, a name in a directory that is not
    # there: refused before any work
    mkdir -p "$T/adir"
    before=$(state)
    expect_exit 1 "$w: to a directory, refused" $fn "$w-link" "$T/adir"
    expect_in "is a directory" "$OUT" "$w: the refusal says it is a directory"
    expect_exit 1 "$w: into a directory that is not there, refused" $fn "$w-link" "$T/nodir/out"
    printf 'a file\n' >"$T/afile"
    expect_exit 1 "$w: below a file, refused" $fn "$w-link" "$T/afile/out"
    ln -sfn "$T/adir" "$T/dirlink"
    expect_exit 1 "$w: --force through a link to a directory, refused" \
        $fn "$w-link" "$T/dirlink" --force
    if [ $ROOT = yes ]; then
        rm -f "$T/blk"
        mknod "$T/blk" b 7 250
        expect_exit 1 "$w: to a block device, refused" $fn "$w-link" "$T/blk"
        rm -f "$T/blk"
    fi
    ok_if "$w: those refusals changed no state file" test "$(state)" = "$before"

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
        if [ $w != crl ]; then # crl prints no note
            ok_if "$w: no note mixed into stdout ($o)" not_grep "written to" "$T/std.out"
            expect_in "written to $o" "$(cat "$T/std.err")" "$w: the note is on stderr ($o)"
        fi
    done
    ok_if "$w: no file named '-' was made" test ! -e "$T/-"
    if [ $PRIVDEV = yes ]; then
        ok_if "$w: the private /dev/stdout is still a link" test -L "$T/dev/stdout"
    fi
done

# ---- another user's names in a shared directory -------------------------
# $S is a sticky world-writable directory (1777, like /tmp). As nobody, an
# attacker puts in it what root will be asked to write to; the kernel's
# fs.protected_* sysctls may be off (they are in many containers) and cover
# neither an open without O_CREAT, nor a socket, nor a link this code
# resolves itself.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# A nobody-owned UNIX socket at $1 that saves what it receives to $2.
sock_listen() {
    as_nobody /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1); s.settimeout(30)
with open(sys.argv[2], "wb") as f:
    c, _ = s.accept()
    while True:
        b = c.recv(65536)
        if not b: break
        f.write(b)
' "$1" "$2" &
    READER=$!
    for _ in $(seq 50); do [ -S "$1" ] && break; sleep 0.1; done
}
reader_done() { # wait up to 3 s for the reader, then stop it
    for _ in $(seq 30); do kill -0 "$READER" 2>/dev/null || break; sleep 0.1; done
    kill "$READER" 2>/dev/null
    wait "$READER" 2>/dev/null
    READER=
}
if [ $ROOT = yes ] && as_nobody true 2>/dev/null; then
    S=$T/shared
    mkdir -m 1777 "$S"
    chmod 1777 "$S"

    # nobody's socket where root writes a PKCS#12: refused, nothing received
    sock_listen "$S/x-bob.p12" "$S/got-bob"
    WRAP="timeout 30"
    expect_exit 1 "p12: to another user's socket in a shared dir, refused" \
        w_p12 x-bob "$S/x-bob.p12"
    WRAP=
    expect_in "another user" "$OUT" "p12: the refusal names another user's socket"
    reader_done
    ok_if "p12: nobody's socket received nothing" test ! -s "$S/got-bob"
    expect_not_in "x-bob" "$(hub peers 2>&1)" "p12: the refused output records no peer"

    # nobody's FIFO (622) with nobody reading it: refused, the reader gets nothing
    as_nobody mkfifo -m 622 "$S/x-carol.p12"
    as_nobody sh -c 'exec timeout 30 cat "$0" >"$1"' "$S/x-carol.p12" "$S/got-carol" &
    READER=$!
    WRAP="timeout 30"
    expect_exit 1 "p12: to another user's FIFO in a shared dir, refused" \
        w_p12 x-carol "$S/x-carol.p12"
    WRAP=
    expect_in "another user" "$OUT" "p12: the refusal names another user's FIFO"
    reader_done
    ok_if "p12: nobody's FIFO reader got nothing" test ! -s "$S/got-carol"

    # ... and a public output (csr) is not handed to that FIFO either, nor
    # does the console wait on one with no reader
    WRAP="timeout 15"
    expect_exit 1 "csr: to another user's FIFO without a reader, refused (no hang)" \
        w_csr x-carol-csr "$S/x-carol.p12"
    WRAP=
    expect_in "sticky directory" "$OUT" "csr: the refusal says why and what to do"

    # nobody's symlink to a root-only file, and root's crl --out --force:
    # not followed, the file is unchanged
    printf 'root:secret\n' >"$T/shadow-like"
    chmod 600 "$T/shadow-like"
    as_nobody ln -s "$T/shadow-like" "$S/x-crl.pem"
    expect_exit 1 "crl --force: through another user's link in a shared dir, refused" \
        w_crl x "$S/x-crl.pem" --force
    expect_in "another user" "$OUT" "crl: the refusal names another user's link"
    ok_if "crl: the root-only file is unchanged" \
        test "$(cat "$T/shadow-like")" = "root:secret"
    ok_if "crl: nobody's link is still a link" test -L "$S/x-crl.pem"

    # a private output to a FIFO of nobody's outside a shared dir: still refused
    mkdir "$T/nobodys"
    chown 65534:65534 "$T/nobodys"
    as_nobody mkfifo -m 622 "$T/nobodys/dave.p12"
    as_nobody sh -c 'exec timeout 30 cat "$0" >"$1"' "$T/nobodys/dave.p12" \
        "$T/nobodys/got-dave" &
    READER=$!
    WRAP="timeout 30"
    expect_exit 1 "p12: to another user's FIFO in their own dir, refused" \
        w_p12 x-dave "$T/nobodys/dave.p12"
    WRAP=
    reader_done
    ok_if "p12: that reader got nothing" test ! -s "$T/nobodys/got-dave"

    # what stays allowed: root's own FIFO and link in the shared dir, /dev/null
    mkfifo -m 600 "$S/root.p12"
    timeout 30 cat "$S/root.p12" >"$T/got-root" &
    READER=$!
    expect_exit 0 "p12: to the caller's own FIFO in a shared dir" \
        w_p12 x-own-fifo "$S/root.p12"
    reader_done
    ok_if "p12: the caller's FIFO reader got it" looks p12 "$T/got-root"
    ln -s "$T/crl-own.pem" "$S/root-crl.pem"
    expect_exit 0 "crl --force: through the caller's own link in a shared dir" \
        w_crl x "$S/root-crl.pem" --force
    ok_if "crl: the link's target holds the CRL" looks crl "$T/crl-own.pem"
    expect_exit 0 "p12: to /dev/null" w_p12 x-null /dev/null
    ok_if "p12: /dev/null is still a device" test -c /dev/null
else
    tap_skip "another user's names in a shared dir" "needs root and setpriv"
fi

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

# audit.log a FIFO nobody reads: the enroll neither hangs nor replaces it,
# nor signs anything it could not record.
mv "$P/audit.log" "$P/audit.real"
mkfifo -m 0640 "$P/audit.log"
chown "$DUSER:" "$P/audit.log"
before=$(state)
WRAP="timeout 15"
expect_exit 1 "enroll: with audit.log a FIFO, refused, no hang" w_p12 audit-fifo "$T/audit.p12"
WRAP=
expect_in "audit.log in it is a FIFO" "$OUT" "enroll: the refusal names audit.log"
ok_if "enroll: audit.log is still a FIFO" test -p "$P/audit.log"
ok_if "enroll: nothing was issued or recorded" test "$(state)" = "$before"
rm "$P/audit.log"
mv "$P/audit.real" "$P/audit.log"

# audit.log a directory: refused the same way (the audit line would be lost)
mv "$P/audit.log" "$P/audit.real"
mkdir "$P/audit.log"
before=$(state)
expect_exit 1 "enroll: with audit.log a directory, refused" w_p12 audit-dir "$T/audit-dir.p12"
expect_in "audit.log in it is a directory" "$OUT" "enroll: the refusal names audit.log"
ok_if "enroll: nothing was issued or recorded (audit.log a directory)" \
    test "$(state)" = "$before"
rmdir "$P/audit.log"
mv "$P/audit.real" "$P/audit.log"

# A state file that is not a regular file refuses every command under the
# pki dir's lock before any signature: registry.json a symbolic link
# (enroll, revoke, reissue used to sign first and fail at the write).
enroll_csr() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$1.key" -subj "/CN=$1" -out "$T/$1.csr" 2>/dev/null
}
enroll_csr st-a
expect_exit 0 "a peer to revoke and reissue" hub enroll st-a --role monitor --csr "$T/st-a.csr" \
    --out "$T/st-a.crt"
enroll_csr st-b
mv "$P/registry.json" "$P/registry.real"
ln -s "$P/registry.real" "$P/registry.json"
before=$(state)
expect_exit 1 "enroll: registry.json a symlink, refused" \
    hub enroll st-b --role monitor --csr "$T/st-b.csr" --out "$T/st-b.crt"
expect_in "registry.json in it is a symbolic link" "$OUT" "enroll: the refusal names registry.json"
ok_if "enroll: no certificate was written" test ! -e "$T/st-b.crt"
expect_exit 1 "revoke: registry.json a symlink, refused" hub revoke st-a
expect_exit 1 "reissue: registry.json a symlink, refused" hub reissue st-a --out "$T/st-a2.crt"
ok_if "reissue: no certificate was written" test ! -e "$T/st-a2.crt"
ok_if "enroll, revoke, reissue: no state file changed (CRL, issued/, audit.log)" \
    test "$(state)" = "$before"
ok_if "registry.json is still a link" test -L "$P/registry.json"
rm "$P/registry.json"
mv "$P/registry.real" "$P/registry.json"
expect_exit 0 "enroll works again with registry.json a file" \
    hub enroll st-b --role monitor --csr "$T/st-b.csr" --out "$T/st-b.crt"

# State files a FIFO with no writer: read without hanging, refused
mv "$P/crl.pem" "$P/crl.real"
mkfifo -m 0640 "$P/crl.pem"
WRAP="timeout 15"
expect_exit 1 "crl: crl.pem a FIFO, refused, no hang" hub crl
WRAP=
expect_in "not a regular file" "$OUT" "crl: the refusal says crl.pem is not a regular file"
rm "$P/crl.pem"
mv "$P/crl.real" "$P/crl.pem"

# restore over a live dir whose invites.json is a device: restore is what
# repairs it (no crash, as before); the backup's pending invites are not
# revived when the live ones cannot be read
expect_exit 0 "an invite pending in the backup" hub invite st-inv --role monitor
expect_exit 0 "backup for the restore" hub backup --out "$T/state.tar"
if [ $ROOT = yes ]; then
    mv "$P/invites.json" "$P/invites.real"
    mknod "$P/invites.json" c 1 3
    expect_exit 0 "restore --force: live invites.json a device" hub restore --force "$T/state.tar"
    expect_in "no pending invite of the backup is kept" "$OUT" \
        "restore: says the backup's invites were not kept"
    expect_not_in "st-inv" "$(hub invites 2>&1 | grep pending)" "restore: st-inv is not pending"
    rm -rf "$P".before-restore-*
else
    skip "restore: live invites.json a device" "mknod needs root"
fi
# restore through a pki dir that is a symbolic link: the swap is made where
# it points, the link stays
mv "$P" "$T/hub-pki-real"
ln -s "$T/hub-pki-real" "$P"
expect_exit 0 "restore --force: the pki dir a symlink" hub restore --force "$T/state.tar"
expect_in "restoring there (the link stays)" "$OUT" "restore: says where it restored"
ok_if "restore: the pki dir is still the link" test -L "$P"
ok_if "restore: the restored setup is where it points" test -f "$T/hub-pki-real/ca.crt"
ok_if "restore: the old dir was kept beside the target" \
    test -d "$(ls -d "$T"/hub-pki-real.before-restore-* 2>/dev/null | head -1)"
# the name for the old dir already taken (a restore within the same
# second): the next free name is used
for s in 0 1 2 3; do
    mkdir -p "$T/hub-pki-real.before-restore-$(date -u -d "+$s sec" +%Y%m%dT%H%M%SZ)"
done
expect_exit 0 "restore --force when the old dir's name is taken" \
    hub restore --force "$T/state.tar"
ok_if "restore: the old dir kept under a -N name" \
    test -n "$(ls -d "$T"/hub-pki-real.before-restore-*-2 2>/dev/null)"

tap_done
