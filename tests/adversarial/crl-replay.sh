#!/bin/bash
# A path attacker on a sibling's CRL distribution point (docs/pki.md
# "Revocation across hubs"): the DP is plain HTTP, so someone between hub B
# and hub A cannot forge A's CRL but can hold back a new one, replaying the
# CRL B already holds or answering 304. Before freshness came from the
# CRL's signed thisUpdate, either kept that CRL "fresh" until its nextUpdate
# (30 days): a peer A revoked stayed accepted at B. Now B refuses A's peers
# once the held CRL was signed max-stale ago, and not before.
#
#   hub A (openssl CA, key in a file; its CRLs by openssl ca -gencrl)
#      |  crl.der, written by A        (the attacker serves what it chooses)
#      v
#   python3 "DP" 127.0.0.1:$HPORT/crl  modes: pass (ETag, 304 on a match),
#      |                                     replay (200, the held CRL), 304
#      v
#   mtlsgwd B -f: [trust hubA] refresh = 1, max-stale = $MS, roles = monitor;
#                 [management] 127.0.0.1:$PORT  <- curl as mona/monb/monc
#                 [crl] listen, resign = 2 (B is a publisher too)
#
# usage: crl-replay.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../interop/lib-daemon.sh" "$@"

dmn_need openssl python3 curl certtool
dmn_temp crlreplay
MS=8
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
softhsm_token gw "$PIN" >/dev/null || { echo "Bail out! token"; exit 1; }
printf '%s\n' "$PIN" >"$T/gw.pin"
chmod 600 "$T/gw.pin"
mkdir -p "$T/run" "$T/a" "$T/www"
chmod 700 "$T/run"
P=$T/gw-pki
DLOG=$T/daemon.log
PORT=$(free_port)
HPORT=$(free_port)
CPORT=$(free_port)
gw_conf "$T/gw.conf"
printf '%s\n' "[crl]" "listen = 127.0.0.1:$CPORT" "resign = 2" "[trust hubA]" \
    "ca = $T/a/ca.crt" "crl-url = http://127.0.0.1:$HPORT/crl" "roles = monitor" \
    "refresh = 1" "max-stale = $MS" >>"$T/gw.conf"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T/gw.pin"
hub init --cn gwb --host 127.0.0.1 >/dev/null 2>&1 &&
    enroll_file_peer admin1 admin >/dev/null 2>&1 || { echo "Bail out! B's CA"; exit 1; }

# ---- hub A: a CA in files, three monitors, its CRLs -----------------------------------
A=$T/a
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=hubA-CA \
    -days 30 -keyout "$A/ca.key" -out "$A/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE,pathlen:0 \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null || { echo "Bail out! A"; exit 1; }
printf 'extendedKeyUsage = clientAuth\nsubjectAltName = URI:urn:mtlsgw:role:monitor\n' \
    >"$A/leaf.ext"
serial=100
for p in mona monb monc; do
    serial=$((serial + 1))
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$p" \
        -keyout "$T/$p.key" -out "$A/$p.csr" 2>/dev/null &&
        openssl x509 -req -in "$A/$p.csr" -CA "$A/ca.crt" -CAkey "$A/ca.key" \
            -set_serial "$serial" -days 10 -extfile "$A/leaf.ext" -out "$T/$p.crt" \
            2>/dev/null || { echo "Bail out! $p"; exit 1; }
done
: >"$A/index.txt"
echo 01 >"$A/crlnumber"
printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s\ncrlnumber=%s\ndefault_md=sha256\n%s\n' \
    "$A/index.txt" "$A/crlnumber" "default_crl_days=30" >"$A/ca.cnf"
a_revoke() { # name: on A's next CRL
    printf 'R\t301231000000Z\t260101000000Z\t%s\tunknown\t/CN=%s\n' \
        "$(openssl x509 -in "$T/$1.crt" -noout -serial | cut -d= -f2)" "$1" >>"$A/index.txt"
}
a_crl() { # -> $A/crl.der: A signs its CRL now (the entries of index.txt, the next number)
    openssl ca -gencrl -config "$A/ca.cnf" -keyfile "$A/ca.key" -cert "$A/ca.crt" \
        -out "$A/crl.pem" 2>/dev/null &&
        openssl crl -in "$A/crl.pem" -outform DER -out "$A/crl.der"
}
this_update() { # crl.der -> epoch seconds
    date -d "$(openssl crl -inform DER -in "$1" -noout -lastupdate | cut -d= -f2)" +%s
}
publish() { cp "$A/crl.der" "$T/www/crl.tmp" && mv "$T/www/crl.tmp" "$T/www/crl"; }
mode() { echo "$1" >"$T/www/mode.tmp" && mv "$T/www/mode.tmp" "$T/www/mode"; }

# ---- the path attacker: a DP that serves what it chooses ------------------------------
mode pass
# python3 may be a wrapper (a pyenv shim runs python as its child): killing
# $! left the DP running after the test. The DP writes its own pid, and both
# are killed.
cat >"$T/dp.py" <<'PY'
import hashlib, http.server, os, sys, time
port, www = int(sys.argv[1]), sys.argv[2]
open(os.path.join(www, "..", "dp.pid"), "w").write("%d\n" % os.getpid())
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        mode = open(os.path.join(www, "mode")).read().strip()
        if mode.startswith("slowat"):
            # replay the CRL held at once, but from the epoch given on, hold
            # one answer 9.5 s (the fetcher's deadline is 10): a drip
            if not hasattr(H, "dripped") and time.time() >= float(mode.split()[1]):
                H.dripped = True
                time.sleep(9.5)
            mode = "replay"
        body = open(os.path.join(www, "crl"), "rb").read()
        tag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
        if mode == "304" or (mode == "pass" and self.headers.get("If-None-Match") == tag):
            self.send_response(304)
            self.send_header("ETag", tag)
            self.end_headers()
            return
        # replay: the CRL held, whole, whatever the client already has
        self.send_response(200)
        self.send_header("Content-Type", "application/pkix-crl")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", tag)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (mode_now(), fmt % args))
def mode_now():
    return open(os.path.join(www, "mode")).read().strip()
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$T/dp.py" "$HPORT" "$T/www" >"$T/dp.log" 2>&1 &
DP_PID=$!
for _ in $(seq 50); do [ -s "$T/dp.pid" ] && break; sleep 0.1; done
DP_PID="$DP_PID $(cat "$T/dp.pid" 2>/dev/null)"
LOCAL_PIDS="$LOCAL_PIDS $DP_PID"
# The DP is stopped and reaped on every way out, failures too.
dp_stop() {
    local p
    for p in $DP_PID; do kill "$p" 2>/dev/null; done
    wait "${DP_PID%% *}" 2>/dev/null
}
dmn_cleanup_more() { dp_stop; }

# As peer: the management API's status; "200" when B admits it.
code_of() { # peer
    curl -s --max-time 5 --cacert "$P/ca.crt" --cert "$T/$1.crt" --key "$T/$1.key" \
        -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/api/v1/status" 2>/dev/null
}
# Polls peer every 0.5 s until it is refused or deadline (epoch) passes;
# sets LAST_OK (epoch of the last 200) and REFUSED (epoch, "" if never).
watch_refusal() { # peer deadline
    LAST_OK=
    REFUSED=
    while [ "$(date +%s)" -le "$2" ]; do
        local t c
        t=$(date +%s.%N)
        c=$(code_of "$1")
        if [ "$c" = 200 ]; then
            LAST_OK=$t
        else
            REFUSED=$t
            return
        fi
        sleep 0.5
    done
}
in_log() { grep -q -- "$1" "$DLOG"; }
wait_log() { # pattern seconds
    local i
    for i in $(seq $(($2 * 10))); do in_log "$1" && return 0; sleep 0.1; done
    return 1
}
# Until B has taken the CRL the DP serves (its number in B's log), and a
# second for the reload that follows.
wait_taken() {
    local n
    n=$(openssl crl -inform DER -in "$T/www/crl" -noout -crlnumber | cut -d= -f2)
    wait_log "trust hubA: CRL $((n)) from" 10
    sleep 1
}

a_crl && publish || { echo "Bail out! A's first CRL"; exit 1; }
dmn_start || { echo "Bail out! B did not start: $(tail -n 5 "$DLOG")"; exit 1; }
wait_log "trust hubA: CRL fresh" 10
ok_if "B takes A's CRL from the DP: mona accepted" test "$(code_of mona)" = 200

# ---- 1. replay: A revokes mona, the attacker keeps serving the CRL B holds ------------
TU=$(this_update "$T/www/crl")
a_revoke mona
a_crl # A's new CRL lists mona; the attacker never lets it through
mode replay
watch_refusal mona $((TU + MS + 6))
echo "# replay: CRL signed at $TU, max-stale $MS: mona last accepted at ${LAST_OK:-never}," \
    "refused at ${REFUSED:-never}"
ok_if "replay: mona refused at B once the replayed CRL was signed max-stale ago (by +3 s)" \
    eval '[ -n "$REFUSED" ] && [ "${REFUSED%.*}" -le $((TU + MS + 3)) ]'
ok_if "replay: ... and not before max-stale ran out" \
    eval '[ -n "$LAST_OK" ] && [ -n "$REFUSED" ] && [ "${REFUSED%.*}" -ge $((TU + MS)) ]'
ok_if "replay: B's log says the CRL is past max-stale" in_log "signed [0-9]* s ago, past max-stale"
ok_if "replay: B warned that the CRL it fetched was older than max-stale/2" \
    in_log "lower the issuer's \[crl\] resign or raise max-stale"
ok_if "replay: another peer of A (monb) is refused too (fail closed)" \
    test "$(code_of monb)" != 200

# ---- 2. 304: a new CRL gets through, then every answer is 304 -------------------------
mode pass
a_crl && publish # A re-signs: the CRL listing mona
TU=$(this_update "$T/www/crl")
wait_taken
ok_if "A's current CRL through: monb accepted again" test "$(code_of monb)" = 200
ok_if "... mona stays refused (revoked by A)" test "$(code_of mona)" != 200
a_revoke monb
mode 304 # from now on every answer is 304
a_crl && publish # A publishes the CRL listing monb: it never gets through
watch_refusal monb $((TU + MS + 6))
echo "# 304: CRL signed at $TU, max-stale $MS: monb last accepted at ${LAST_OK:-never}," \
    "refused at ${REFUSED:-never}"
ok_if "304: monb refused at B once the held CRL was signed max-stale ago (by +3 s)" \
    eval '[ -n "$REFUSED" ] && [ "${REFUSED%.*}" -le $((TU + MS + 3)) ]'
ok_if "304: ... and not before max-stale ran out" \
    eval '[ -n "$LAST_OK" ] && [ -n "$REFUSED" ] && [ "${REFUSED%.*}" -ge $((TU + MS)) ]'

# ---- 3. an honest issuer that re-signs every 2 s stays fresh past max-stale -------------
mode pass
a_crl && publish
wait_taken
t_end=$(($(date +%s) + MS + 4))
bad=0
while [ "$(date +%s)" -lt "$t_end" ]; do
    a_crl && publish
    [ "$(code_of monc)" = 200 ] || bad=$((bad + 1))
    sleep 1
done
ok_if "A re-signing every ~2 s: monc accepted throughout max-stale + 4 s ($bad refusals)" \
    test "$bad" = 0

# ---- 4. B as a publisher re-signs its own CRL every [crl] resign seconds ---------------
curl -s --max-time 5 -o "$T/b1.der" "http://127.0.0.1:$CPORT/crl"
sleep 4.2
curl -s --max-time 5 -o "$T/b2.der" "http://127.0.0.1:$CPORT/crl"
n1=$(openssl crl -inform DER -in "$T/b1.der" -noout -crlnumber 2>/dev/null | cut -d= -f2)
n2=$(openssl crl -inform DER -in "$T/b2.der" -noout -crlnumber 2>/dev/null | cut -d= -f2)
u1=$(this_update "$T/b1.der")
u2=$(this_update "$T/b2.der")
ok_if "B ([crl] resign = 2) re-signed its CRL: thisUpdate $u1 -> $u2, number $n1 -> $n2" \
    eval '[ "$(this_update "$T/b2.der")" -gt "$(this_update "$T/b1.der")" ] &&
          [ $((n2)) -gt $((n1)) ]'

# ---- 5. drip: B does not publish (no [crl] resign reloads to re-judge freshness); A
# revokes monc; the attacker replays the held CRL at once, but holds the one fetch that
# starts just before max-stale runs out for 9.5 s (the fetcher's deadline is 10 s).
# Freshness is judged on its own timer: monc is refused by max-stale + ~1 s all the same.
dmn_stop
gw_conf "$T/gw2.conf"
printf '%s\n' "[trust hubA]" "ca = $T/a/ca.crt" "crl-url = http://127.0.0.1:$HPORT/crl" \
    "roles = monitor" "refresh = 1" "max-stale = $MS" >>"$T/gw2.conf"
mode pass
a_crl && publish
log_mark
dmn_start "$T/gw2.conf" || { echo "Bail out! B did not restart: $(tail -n 5 "$DLOG")"; exit 1; }
for _ in $(seq 100); do log_since | grep -q "trust hubA: CRL fresh" && break; sleep 0.1; done
ok_if "drip: B (not a publisher) takes A's CRL: monc accepted" test "$(code_of monc)" = 200
TU=$(this_update "$T/www/crl")
a_revoke monc
a_crl # A's new CRL lists monc; the attacker never lets it through
mode "slowat $((TU + MS - 1))"
watch_refusal monc $((TU + MS + 25))
echo "# drip: CRL signed at $TU, max-stale $MS: monc last accepted at ${LAST_OK:-never}," \
    "refused at ${REFUSED:-never} ($(uptime))"
ok_if "drip: monc refused at B by thisUpdate + max-stale + 3 s, fetch held or not" \
    eval '[ -n "$REFUSED" ] && [ "${REFUSED%.*}" -le $((TU + MS + 3)) ]'
ok_if "drip: ... and not before max-stale ran out" \
    eval '[ -n "$LAST_OK" ] && [ -n "$REFUSED" ] && [ "${REFUSED%.*}" -ge $((TU + MS)) ]'

# ---- hygiene: the DP is stopped, and no process of this test is left ------------------
dmn_stop
dp_stop
for _ in $(seq 20); do kill -0 $DP_PID 2>/dev/null || break; sleep 0.1; done
ps -o pid,stat,args -p "${DP_PID// /,}" 2>/dev/null | sed 's/^/# /'
ok_if "the test's DP (pids $DP_PID) is gone" eval '! kill -0 $DP_PID 2>/dev/null'
LEFT=$(pgrep -af -- "$T/www")
echo "${LEFT:+# left: $LEFT}"
ok_if "no process is left serving $T" test -z "$LEFT"
tap_done
