#!/bin/bash
# Revocation without the control socket (docs/security.md): the daemon
# applies a change to registry.json or crl.pem within a second, whoever
# wrote it and whether or not anyone told it, and the console says when the
# daemon did not acknowledge.
#
#   tlsclient.py (held sessions: w1..w5)      curl (new handshakes)
#        |  mutual TLS, 127.0.0.1:$PORT         |
#        v                                      v
#   mtlsgwd -f ---- watches $P (registry.json, crl.pem)
#        ^  control socket $T/run/control.sock: removed by the attacker
#        x
#   mtlsgw revoke w1         python3: registry.json by temp + rename (w2)
#                            certtool: a CRL listing w3, registry says active
#   second daemon, MTLSGW_NO_INOTIFY=1 (fault-injection builds): the stat
#   backstop alone applies a registry change (w4) and a CRL change (w5)
#
# The attack: the console's channel to the daemon is gone (another daemon
# took and removed the socket, a wrong control-socket, a crashed console),
# or another writer changes the files. Before the watch the revoked peer's
# session stayed up until SIGHUP and revoke printed success.
#
# usage: revoke-nosocket.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../interop/lib-daemon.sh" "$@"
. "$here/lib.sh"

adv_need curl certtool openssl python3
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }

adv_loopback revnosock
for p in w1 w2 w3 w4 w5; do
    enroll_file_peer "$p" monitor >/dev/null 2>&1 || { echo "Bail out! enroll $p"; exit 1; }
done

# Seconds (3 decimals) from the mtime of FILE to the wall-clock time T.
since_mtime() { # file t
    python3 -c 'import os, sys; print("%.3f" % (float(sys.argv[2]) - os.stat(sys.argv[1]).st_mtime))' \
        "$1" "$2"
}
under() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$@"; }

# Holds a session of PEER open and checks it is served.
hold_served() { # peer
    hold_open "$1" "$1"
    hold_cmd "REQ GET /api/v1/status"
    expect_hold "STATUS 200 *" "$1: a held session is served"
}

# Before the write: PEER's client starts waiting for the end of its session,
# so that the time it reports is when the daemon ended it, not when the
# suite got round to asking.
hold_arm() { # peer
    hold_write "${HOLD_W[$1]}" "WAIT 8"
}

# The held (and armed) session of PEER must end within LIMIT s of FILE's
# write, and a new handshake of PEER must be refused.
expect_ended() { # peer file limit what
    local peer=$1 file=$2 limit=$3 what=$4 t dt
    hold_use "$peer"
    HOLD_ANS=
    read -r -t 10 HOLD_ANS <&"${HOLD_R[$peer]}" || HOLD_ANS="GONE${HOLD_ANS:+ $HOLD_ANS}"
    expect_hold "CLOSED *" "$what: $peer's held session is ended by the daemon"
    t=$(printf '%s' "$HOLD_ANS" | cut -d' ' -f2)
    dt=$(since_mtime "$file" "$t" 2>/dev/null || echo 99)
    echo "# $what: $peer's session ended $dt s after $(basename "$file") was written"
    ok_if "... within $limit s of the write (took $dt s)" under "$dt" "$limit"
    hold_close "$peer"
    req "$peer" GET /api/v1/status
    if [ "$HTTP" = 000 ] && [ "$CURL_RC" != 0 ]; then
        tap_result 0 "... and a new handshake of $peer is refused"
    else
        tap_result 1 "... and a new handshake of $peer is refused" "expected no answer, got $(got)"
    fi
}

# Another writer than mtlsgw: registry.json with PEER revoked, written to a
# temporary file and renamed into place, as an atomic writer does.
registry_revoke_by_hand() { # peer
    python3 - "$P/registry.json" "$1" <<'PY'
import json, os, sys, time
path, name = sys.argv[1], sys.argv[2]
st = os.stat(path)
reg = json.load(open(path))
for p in reg["peers"]:
    if p["name"] == name and p["status"] == "active":
        p["status"] = "revoked"
        p["revoked_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
tmp = path + ".by-hand"
with open(tmp, "w") as f:
    json.dump(reg, f)
os.chown(tmp, st.st_uid, st.st_gid)
os.chmod(tmp, st.st_mode & 0o777)
os.rename(tmp, path)
PY
}

# A CRL signed by the CA's key on the token listing PEER, made by certtool
# (not mtlsgw: the registry is left as it is), into FILE.
crl_listing() { # peer file number
    printf 'crl_next_update = 30\ncrl_number = %s\n' "$3" >"$T/crl.tmpl"
    GNUTLS_PIN=$PIN certtool --generate-crl --load-ca-certificate "$P/ca.crt" \
        --load-ca-privkey "pkcs11:token=gw;object=mtlsgw-ca;type=private" \
        --load-certificate "$T/$1.crt" --template "$T/crl.tmpl" --outfile "$2" >/dev/null 2>&1
}
install_by_rename() { # new-file target
    chown --reference="$2" "$1" && chmod 644 "$1" && mv -f "$1" "$2"
}

# ---- 1. the control socket removed --------------------------------------
dmn_start || { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }
ok_if "the daemon watches $P with inotify" grep -q "$P: watching registry.json and crl.pem" "$DLOG"
hold_served w1
rm -f "$T/run/control.sock" # what another daemon starting on the same path does
log_mark
hold_arm w1
expect_exit 3 "revoke w1 with the control socket gone: exit 3" hub revoke w1
expect_in "revoked w1" "$OUT" "... the revocation is made"
expect_in "cannot reach the daemon at $T/run/control.sock" "$OUT" "... naming the socket it tried"
expect_in "applies them within a second" "$OUT" "... saying the daemon's own watch applies it"
expect_not_in "acknowledged:" "$OUT" "... and not claiming an acknowledgement"
expect_ended w1 "$P/registry.json" 1.0 "socket gone"
# revoke writes crl.pem, then registry.json, under the pki dir's lock: the
# daemon waits for the lock and reads both at once, one reload.
expect_log_lines "registry.json and crl.pem changed: reloaded trust, 1 session\(s\) ended" 1 \
    "the daemon logs one reload for revoke's two writes, 1 session ended"
expect_log_lines "changed: reloaded trust" 1 "... and no other reload"

# ---- 2. another writer: a CRL, then the registry ------------------------
hold_served w2
hold_served w3
crl_listing w3 "$T/crl.new" 1000 || { echo "Bail out! certtool could not make a CRL"; exit 1; }
log_mark
hold_arm w2
hold_arm w3
install_by_rename "$T/crl.new" "$P/crl.pem"
sleep 0.2
registry_revoke_by_hand w2
expect_ended w3 "$P/crl.pem" 1.0 "a CRL listing an active peer, by certtool"
expect_ended w2 "$P/registry.json" 1.0 "registry.json renamed in by another writer, 0.2 s later"
expect_log_lines "crl.pem changed: reloaded trust, 1 session" 1 "... the CRL's change logged"
expect_log_lines "registry.json changed: reloaded trust, 1 session" 1 \
    "... and the registry's, seen apart"
dmn_stop

# ---- 3. inotify unavailable: the stat backstop -------------------------
if [ "${FAULT_INJECTION:-0}" != 1 ]; then
    tap_result 0 "# SKIP stat backstop: needs -Dfault_injection=true (MTLSGW_NO_INOTIFY)"
else
    MTLSGW_NO_INOTIFY=1 dmn_start ||
        { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }
    ok_if "MTLSGW_NO_INOTIFY=1: the daemon says it checks every second" \
        grep -q "inotify unavailable: registry and CRL are checked every second" "$DLOG"
    hold_served w4
    hold_served w5
    hold_arm w4
    registry_revoke_by_hand w4
    expect_ended w4 "$P/registry.json" 2.0 "no inotify, registry.json renamed in"
    crl_listing w5 "$T/crl.new" 1001 || { echo "Bail out! certtool could not make a CRL"; exit 1; }
    hold_arm w5
    install_by_rename "$T/crl.new" "$P/crl.pem"
    expect_ended w5 "$P/crl.pem" 2.0 "no inotify, crl.pem renamed in"
    hold_open mon mon1
    hold_cmd "REQ GET /api/v1/status"
    expect_hold "STATUS 200 *" "mon1, never revoked, is still served"
    hold_close mon
fi

tap_done
