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
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_begin admin curl openssl certtool python3 script
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

# ---- 7. input the console refuses -----------------------------------------
# tun1 (a tunnel peer of the fixture) has no networks; give one peer some.
keycsr net1 >/dev/null 2>&1
expect_exit 0 "enroll net1 with 10.20.0.0/16" \
    hub enroll net1 --role tunnel --csr "$T/net1.csr" --out "$T/net1.crt" --network 10.20.0.0/16
keycsr net2 >/dev/null 2>&1
before=$(sum)
expect_exit 1 "a network inside another peer's is refused" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network 10.20.5.0/24
expect_in "overlaps 10.20.0.0/16 of peer net1" "$OUT" "the overlap names the other peer"
expect_exit 1 "a network holding another peer's is refused" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network 10.0.0.0/8
expect_in "overlaps 10.20.0.0/16 of peer net1" "$OUT" "the wider network's overlap is named"
expect_exit 1 "overlapping networks within one peer are refused" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network 10.30.0.0/16 \
    --network 10.30.1.0/24
expect_in "overlap" "$OUT" "the overlap within one peer is named"
expect_exit 1 "a network given twice is refused" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network 10.30.0.0/16 \
    --network 10.30.0.0/16
expect_in "given twice" "$OUT" "the duplicate is named"
expect_exit 2 "a prefix without a length is a usage error" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network 10.30.0.0
expect_in "no prefix length" "$OUT" "the missing length is named"
expect_exit 1 "0.0.0.0/0 without --allow-default is refused" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network 0.0.0.0/0
expect_in "--allow-default" "$OUT" "the refusal names --allow-default"
expect_exit 1 "::/0 without --allow-default is refused" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network ::/0
expect_exit 1 "an invite overlapping another peer is refused" \
    hub invite net3 --role tunnel --network 10.20.9.0/24
expect_in "of peer net1" "$OUT" "the invite's refusal names the peer"
ok_if "nothing was recorded by the refusals" test "$(sum)" = "$before"
expect_exit 0 "a network beside the other peer's is accepted" \
    hub enroll net2 --role tunnel --csr "$T/net2.csr" --network 10.21.0.0/16 \
    --out "$T/net2.crt"

keycsr bob >/dev/null 2>&1
keycsr Bob2 >/dev/null 2>&1
expect_exit 0 "enroll bob" hub enroll bob --role monitor --csr "$T/bob.csr" --out "$T/bob.crt"
expect_exit 1 "Bob after bob is refused as existing" \
    hub enroll Bob --role monitor --csr "$T/Bob2.csr"
expect_in "'bob' is already enrolled" "$OUT" "the refusal names the existing peer"
expect_not_in "enroll: enroll" "$OUT" "the error prefix is said once"
expect_exit 1 "invite Bob after bob is refused" hub invite BOB --role monitor

expect_exit 2 "--role admn is a usage error" hub enroll r1 --role admn --csr "$T/Bob2.csr"
expect_exit 2 "--days x is a usage error" hub enroll r1 --role admin --days x --csr "$T/Bob2.csr"
expect_exit 2 "revoke --reason boredom is a usage error" hub revoke bob --reason boredom
expect_exit 2 "peers -c FILE is a usage error" "$MTLSGW" peers -c "$T/gw.conf"
expect_in "-c goes before the command" "$OUT" "peers -c FILE: the hint says where -c goes"
expect_exit 2 "an unknown command is a usage error" hub stauts
expect_in "did you mean 'status'" "$OUT" "the nearest command is suggested"


OUT=$(printf 'correct horse battery\n' |
    hub enroll pw1 --role monitor --p12 "$T/pw1.p12" --password-file - 2>&1)
tap_result $? "--password-file - reads stdin" "$OUT"
ok_if "the PKCS#12 opens with the password from stdin" \
    openssl pkcs12 -in "$T/pw1.p12" -passin "pass:correct horse battery" -noout
expect_exit 1 "a certificate given as a CSR is refused" \
    hub enroll c1 --role monitor --csr "$T/mon1.crt"
expect_in "holds a certificate" "$OUT" "the refusal says it is a certificate"
expect_exit 1 "a key given as a CSR is refused" hub enroll c1 --role monitor --csr "$T/mon1.key"
expect_in "holds a private key" "$OUT" "the refusal says it is a key"
openssl x509 -in "$T/mon1.crt" -outform DER -out "$T/mon1.der" 2>/dev/null
expect_exit 1 "a DER certificate given as a CSR is refused" \
    hub enroll c1 --role monitor --csr "$T/mon1.der"
expect_in "holds a certificate" "$OUT" "the DER refusal says it is a certificate"

# ---- 8. messages that name the real cause ---------------------------------
if [ "$DUSER" != root ]; then
    keycsr ac1 >/dev/null 2>&1
    chown root: "$T/tokens"
    chmod 700 "$T/tokens"
    expect_exit 1 "token dir not the daemon user's: refused" \
        hub enroll ac1 --role monitor --csr "$T/ac1.csr"
    expect_in "user $DUSER" "$OUT" "token dir: the message names the daemon's user"
    expect_in "$T/tokens" "$OUT" "token dir: the message names the directory"
    expect_in "chown -R $DUSER $T/tokens" "$OUT" "token dir: the message gives the chown"
    expect_not_in "is the module loaded" "$OUT" "token dir: no guess about the module"
    chown -R "$DUSER:" "$T/tokens"
    chown root: "$T/gw.pin"
    expect_exit 1 "PIN file not the daemon user's: refused" \
        hub enroll ac1 --role monitor --csr "$T/ac1.csr"
    expect_in "cannot read $T/gw.pin" "$OUT" "PIN file: the message names the file"
    expect_in "chown $DUSER $T/gw.pin" "$OUT" "PIN file: the message gives the chown"
    chown "$DUSER:" "$T/gw.pin"
    chown root: "$P/registry.json"
    chmod 600 "$P/registry.json"
    expect_exit 1 "registry not the daemon user's: refused" \
        hub enroll ac1 --role monitor --csr "$T/ac1.csr"
    expect_in "cannot read $P/registry.json" "$OUT" "registry: the message names the file"
    expect_in "chown $DUSER $P/registry.json" "$OUT" "registry: the message gives the chown"
    chown "$DUSER:" "$P/registry.json"
    chmod 640 "$P/registry.json"
else
    tap_skip "messages naming the daemon's user" "no user $DUSER on this machine"
fi
expect_exit 1 "explain a revoked certificate: refused" hub explain "$T/gone1.crt"
expect_in "keyCompromise" "$OUT" "explain: the revocation reason"
expect_in "revoked on 20" "$OUT" "explain: the revocation date"

# ---- 6. one daemon per config ---------------------------------------------
dmn_start || { echo "Bail out! the daemon does not start: $(tail -5 "$DLOG")"; exit 1; }
sock_id() { stat -c '%d:%i' "$T/run/control.sock" 2>/dev/null; }
first_sock=$(sock_id)
OUT=$(dmn_try "$T/gw.conf")
rc=$?
tap_result $([ $rc != 0 ] && [ $rc != 124 ] && echo 0 || echo 1) \
    "a second daemon on the same config is refused" "exit $rc: $OUT"
expect_in "another mtlsgwd (pid $DPID)" "$OUT" "the refusal names the first one's pid"
ok_if "the first one's control socket is the same socket" test "$(sock_id)" = "$first_sock"
ok_if "the first one still answers on it" hub status
req admin1 GET /api/v1/status
expect_http 200 "the first one still serves the API"
# Another config (its own pki dir) with the same control-socket: the live
# socket is not taken over.
OUT=$(dmn_try "$T/other.conf")
rc=$?
tap_result $([ $rc != 0 ] && [ $rc != 124 ] && echo 0 || echo 1) \
    "a daemon of another config on the same control socket is refused" "exit $rc: $OUT"
expect_in "another daemon listens on it" "$OUT" "the refusal says the socket is live"
ok_if "the control socket is still the first one's" test "$(sock_id)" = "$first_sock"
ok_if "the first one still answers on it after that" hub status

# ---- 7, in the API: the same network rules (pki_enroll, peernet_check) ------
apijson() { # file name networks-json [extra-json]
    keycsr "$2" >/dev/null 2>&1
    printf '{"name":"%s","role":"tunnel","networks":%s%s,"csr":%s}' "$2" "$3" "${4:-}" \
        "$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' \
            "$T/$2.csr")" >"$1"
}
apijson "$T/api-nolen.json" api1 '["10.40.0.0"]'
req admin1 POST /api/v1/peers "$T/api-nolen.json"
expect_http 400 "API: a network without a length: 400"
expect_in "no prefix length" "$BODY" "API: the 400 names the missing length"
apijson "$T/api-over.json" api2 '["10.20.128.0/17"]'
req admin1 POST /api/v1/peers "$T/api-over.json"
expect_http 400 "API: a network overlapping another peer's: 400"
expect_in "of peer net1" "$BODY" "API: the 400 names the other peer"
apijson "$T/api-dup.json" api3 '["10.41.0.0/16","10.41.0.0/16"]'
req admin1 POST /api/v1/peers "$T/api-dup.json"
expect_http 400 "API: a network given twice: 400"
printf '{"name":"inv1","role":"tunnel","networks":["10.20.3.0/24"]}' >"$T/api-inv1.json"
req admin1 POST /api/v1/invites "$T/api-inv1.json"
expect_http 400 "API invite: a network overlapping another peer's: 400"
expect_in "of peer net1" "$BODY" "API invite: the 400 names the other peer"
printf '{"name":"inv2","role":"tunnel","networks":["0.0.0.0/0"]}' >"$T/api-inv2.json"
req admin1 POST /api/v1/invites "$T/api-inv2.json"
expect_http 400 "API invite: a default route without allow_default: 400"
expect_in "allow_default" "$BODY" "API invite: the 400 names allow_default"
printf '{"name":"BOB","role":"monitor"}' >"$T/api-inv3.json"
req admin1 POST /api/v1/invites "$T/api-inv3.json"
expect_http 409 "API invite: BOB after bob: 409"
apijson "$T/api-ok.json" api4 '["10.42.0.0/16"]'
req admin1 POST /api/v1/peers "$T/api-ok.json"
expect_http 201 "API: a network of its own: 201"

# ---- 9. what occtl and swanctl users reach for -------------------------------
req admin1 GET /api/v1/ca
expect_http 200 "GET /api/v1/ca as admin: 200"
printf '%s\n' "$BODY" >"$T/api-ca.pem"
ok_if "GET /api/v1/ca is the CA certificate" cmp -s "$T/api-ca.pem" "$P/ca.crt"
req mon1 GET /api/v1/crl
expect_http 200 "GET /api/v1/crl as monitor: 200"
printf '%s\n' "$BODY" >"$T/api-crl.pem"
ok_if "GET /api/v1/crl is a CRL signed by the CA" sh -c \
    "openssl crl -in '$T/api-crl.pem' -CAfile '$P/ca.crt' -noout 2>&1 | grep -q 'verify OK'"
req - GET /api/v1/crl
expect_not_in "BEGIN X509 CRL" "$BODY" "GET /api/v1/crl without a certificate gets nothing"

# A monitoring session held open: sessions lists it, peers shows it online.
hold_open h1 mon1
expect_in "CONNECTED" "$HOLD_ANS" "a monitor session is held open"
hold_cmd "REQ GET /api/v1/status"
expect_in "STATUS 200" "$HOLD_ANS" "the held session is served"
OUT=$(hub sessions)
expect_in "mon1" "$OUT" "sessions lists the held monitor session"
OUT=$(hub sessions)
expect_in "FROM" "$OUT" "sessions has a FROM column"
expect_in "127.0.0.1" "$OUT" "sessions says where it comes from"
OUT=$(hub sessions --json)
ok_if "sessions --json: peer, remote, since, bytes, listener" python3 -c '
import json, sys
s = [x for x in json.loads(sys.argv[1]) if x["peer"] == "mon1"]
assert s, sys.argv[1]
for k in ("remote", "since", "bytes_in", "bytes_out", "listener"):
    assert k in s[0], (k, s[0])' "$OUT"
PEERS=$(hub peers)
online_is() { printf '%s\n' "$PEERS" | awk -v n="$1" -v o="$2" '$1 == n && $4 == o' | grep -q .; }
ok_if "peers has an ONLINE column, yes for mon1" online_is mon1 yes
ok_if "peers: no for admin2 (no session)" online_is admin2 no
ok_if "peers --json: online true for mon1" python3 -c '
import json, sys
p = [x for x in json.loads(sys.argv[1]) if x["name"] == "mon1"]
assert p and p[0]["online"] is True, p' "$(hub peers --json)"
hold_close h1
OUT=$(hub peers --status revoked)
expect_in "gone1" "$OUT" "peers --status revoked lists gone1"
expect_not_in "admin1" "$OUT" "peers --status revoked leaves out active peers"
OUT=$(hub peers --status active)
expect_in "admin1" "$OUT" "peers --status active lists admin1"
expect_not_in "gone1" "$OUT" "peers --status active leaves out gone1"
expect_exit 2 "peers --status bogus is a usage error" hub peers --status bogus
# ---- 8. SIGHUP names each changed key that needs a restart -------------------
cp "$T/gw.conf" "$T/gw.conf.orig"
printf '[tunnel]\nmtu = 1300\n[daemon]\nban-time = 77\n' >>"$T/gw.conf"
sed -i 's/^max-body = 1024$/max-body = 2048/' "$T/gw.conf"
log_mark
kill -HUP "$DPID"
ok_if "SIGHUP: the log names [tunnel] mtu" log_wait '\[tunnel\] mtu' 1
expect_in "[daemon] ban-time" "$(log_since)" "SIGHUP: the log names [daemon] ban-time"
expect_in "restart" "$(log_since)" "SIGHUP: ... as needing a restart"
expect_not_in "max-body" "$(log_since)" "SIGHUP: max-body (applied now) is not named"
cp "$T/gw.conf.orig" "$T/gw.conf"
log_mark
kill -HUP "$DPID"
ok_if "SIGHUP with nothing for a restart: 'reloaded'" log_wait 'gw.conf: reloaded$' 1
dmn_stop
PEERS=$(hub peers)
ok_if "peers without a daemon: ONLINE is -" online_is mon1 -
expect_exit 1 "sessions without a daemon fails" hub sessions
expect_in "is mtlsgwd running?" "$OUT" "sessions without a daemon says so"

# ---- 9. bash completion and mtlsgw(8) name every command --------------------
SRC=$(readlink -f "$here/../..")
CMDS=$("$MTLSGW" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
missing=
for c in $CMDS; do
    grep -qE "^\*$c(\*| )" "$SRC/docs/man/mtlsgw.8.scd" || missing="$missing $c"
done
ok_if "mtlsgw(8) has an entry for every command of 'mtlsgw --help'" test -z "$missing"
[ -n "$missing" ] && echo "# not in docs/man/mtlsgw.8.scd:$missing"
# Completion as bash calls it: COMP_WORDS, COMP_CWORD, then COMPREPLY.
complete_of() { # words... (the last one is being completed)
    bash -c '
        complete() { :; }
        . "$1"; shift
        tool=$1; shift
        COMP_WORDS=("$tool" "$@"); COMP_CWORD=$#
        _mtlsgw
        printf "%s\n" "${COMPREPLY[@]}"' _ "$SRC/image/bash-completion/mtlsgw" "$MTLSGW" "$@"
}
expect_in "sessions" "$(complete_of sess)" "completion: 'sess' gives sessions"
OUT=$(complete_of "")
n_cmds=$(printf '%s\n' $CMDS | wc -l)
ok_if "completion: every command is offered ($n_cmds)" \
    test "$(printf '%s\n' "$OUT" | grep -c .)" = "$n_cmds"
expect_in "--role" "$(complete_of enroll --ro)" "completion: enroll --ro gives --role"
expect_in "--allow-default" "$(complete_of enroll --all)" "completion: enroll's --allow-default"
expect_in "revoked" "$(complete_of peers --status "")" "completion: peers --status values"
expect_in "keyCompromise" "$(complete_of revoke x --reason "")" "completion: revoke reasons"
tap_done
