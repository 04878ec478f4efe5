#!/bin/bash
# Attack: forge a line in the daemon's log (docs/security.md "Log lines
# cannot be forged"). A stranger puts a newline and a fake line into every
# string of its own that the daemon logs:
#
#   - the subject and issuer of a client certificate from its own CA (the
#     refusal, unknown issuer, logs both);
#   - the user name of an EST simpleenroll (HTTP Basic);
#   - the reason of a tunnel's CLOSE frame (a holder of a tunnel key);
#   - a peer name in enroll, invite and the API (refused before any log).
#
# The daemon runs in a namespace of its own (a tunnel makes an interface):
#
#   [ns mtlsgw-lf-PID]  curl / python (attacker) --> 127.0.0.1 --> mtlsgwd -f
#                       management :PORT, enroll :EPORT, tunnel :TPORT
#
# Passes when no line of the daemon's log starts with the forged text, and
# the forged text is there, escaped, inside the line it was put in.
# usage: log-forge.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")

. "$here/lib.sh"

adv_need curl openssl certtool python3 ip
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (a namespace, the daemon's user)"; exit 77; }

# Re-run inside a fresh network namespace, removed whatever happens.
if [ -z "${LOGFORGE_NS:-}" ]; then
    NS=mtlsgw-lf-$$
    ip netns add "$NS" 2>/dev/null || { echo "1..0 # SKIP cannot create a namespace"; exit 77; }
    ip -n "$NS" link set lo up
    LOGFORGE_NS=$NS ip netns exec "$NS" bash "$0" "$@"
    rc=$?
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$NS"
    exit "$rc"
fi

. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/../interop/lib-daemon.sh"

adv_loopback logforge

FORGED='mtlsgwd[1]: peer admin accepted'
NL=$'\n'
EPORT=$(free_port)
TPORT=$(free_port)
printf '[enroll]\nlisten = 127.0.0.1:%s\n[tunnel]\nlisten = 127.0.0.1:%s\npool = 10.77.0.0/24\n' \
    "$EPORT" "$TPORT" >>"$T/gw.conf"

# No line may start with the forged text (with or without the ident).
expect_no_forged_line() { # name
    local bad
    bad=$(grep -nE '^(mtlsgwd: )?mtlsgwd\[1\]' "$DLOG")
    if [ -z "$bad" ]; then
        tap_result 0 "$1: no forged line in the log"
    else
        tap_result 1 "$1: no forged line in the log" "forged lines:
$bad"
    fi
}
# The forged text did reach the log, escaped, in the line of its vector.
expect_escaped() { # ere-before name [ere-after]
    local n re="$1.*\\\\x0amtlsgwd\\[1\\]${3-: peer admin accepted}"
    log_wait "$re" 1
    n=$(log_since | grep -cE "$re")
    if [ "$n" -ge 1 ]; then
        tap_result 0 "$2: logged, with the newline as \\x0a"
    else
        tap_result 1 "$2: logged, with the newline as \\x0a" "log since mark:
$(log_since | tail -n 10)"
    fi
}

if ! dmn_start; then
    echo "Bail out! the daemon did not start: $(tail -n 20 "$DLOG")"
    exit 1
fi

# ---- 1. a certificate whose subject and issuer carry a line ------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
    -keyout "$T/evilca.key" -out "$T/evilca.crt" -subj "/CN=evil CA$NL$FORGED" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/evil.key" -out "$T/evil.csr" -subj "/CN=x$NL$FORGED" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nsubjectAltName=URI:urn:mtlsgw:role:admin\n' >"$T/evil.ext"
openssl x509 -req -in "$T/evil.csr" -CA "$T/evilca.crt" -CAkey "$T/evilca.key" \
    -CAcreateserial -days 3 -extfile "$T/evil.ext" -out "$T/evil.crt" 2>/dev/null
if certtool -i --infile "$T/evil.crt" 2>/dev/null | grep -qxF "$FORGED"; then
    tap_result 0 "the attacker's certificate has a newline and the forged text in its subject"
else
    tap_result 1 "the attacker's certificate has a newline and the forged text in its subject"
fi
log_mark
req evil GET /api/v1/status
expect_escaped "refused \(unknown-issuer\)" "subject and issuer of a refused certificate"
expect_no_forged_line "certificate subject and issuer"

# ---- 2. an EST user name with a line ---------------------------------------
# HTTP Basic ends the user name at the first colon: the forged line is
# "mtlsgwd[1]" and what follows the quote the daemon writes after the name.
log_mark
auth=$(printf 'x\n%s:AAAA-BBBB-CCCC-DDDD-EEEE' "$FORGED" | base64 -w0)
code=$(curl -sS --max-time 10 --cacert "$P/ca.crt" -o /dev/null -w '%{http_code}' \
    -H "Authorization: Basic $auth" -H 'Content-Type: application/pkcs10' --data-binary 'x' \
    "https://127.0.0.1:$EPORT/.well-known/est/simpleenroll" 2>&1)
ok_if "EST simpleenroll with that user name is refused (HTTP $code)" test "$code" = 401 -o "$code" = 403
expect_escaped "simpleenroll for 'x" "EST user name" "'"
expect_no_forged_line "EST user name"

# ---- 3. a tunnel CLOSE reason with a line ----------------------------------------
log_mark
cat >"$T/closer.py" <<'PY'
# A tunnel peer: handshake, read CONFIG, send CLOSE with the reason in argv[5].
import socket, ssl, struct, sys
port, ca, crt, key, reason = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.load_cert_chain(crt, key)
ctx.set_alpn_protocols(["mtlsgw/1"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=10),
                    server_hostname="127.0.0.1")
buf = b""
while len(buf) < 4 or len(buf) < 4 + struct.unpack(">BBH", buf[:4])[2]:
    d = s.recv(4096)
    if not d:
        sys.exit("no CONFIG")
    buf += d
assert buf[0] == 1, "first frame is not CONFIG"
r = reason.encode()
s.sendall(struct.pack(">BBH", 4, 0, len(r)) + r)
try:
    while s.recv(4096):
        pass
except (ssl.SSLError, OSError):
    pass
print("CLOSED")
PY
OUT=$(timeout 20 python3 "$T/closer.py" "$TPORT" "$P/ca.crt" "$T/tun1.crt" "$T/tun1.key" \
    "bye$NL$FORGED" 2>&1)
expect_in CLOSED "$OUT" "tun1 opened a tunnel and closed it with that reason"
expect_escaped "closed by peer: bye" "tunnel CLOSE reason"
expect_no_forged_line "tunnel CLOSE reason"

# ---- 4. a peer name with a line never gets that far ---------------------------
keycsr nl1 >/dev/null 2>&1
expect_exit 2 "mtlsgw enroll refuses a name with a newline" \
    hub enroll "nl1$NL$FORGED" --role admin --csr "$T/nl1.csr" --out "$T/nl1.crt"
expect_in "not a valid peer name" "$OUT" "... saying why"
expect_exit 2 "mtlsgw invite refuses a name with a newline" \
    hub invite "nl1$NL$FORGED" --role admin
python3 -c 'import json, sys
print(json.dumps({"name": "nl1\n" + sys.argv[1], "role": "admin", "csr": open(sys.argv[2]).read()}))' \
    "$FORGED" "$T/nl1.csr" >"$T/nl1.json"
req admin1 POST /api/v1/peers "$T/nl1.json"
expect_http 400 "POST /api/v1/peers refuses a name with a newline"
expect_no_forged_line "peer names"

dmn_stop
expect_no_forged_line "the whole run"
tap_done
