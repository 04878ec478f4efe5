#!/bin/bash
# The CRL distribution point (issue #16 item 4, docs/pki.md "Revocation
# across hubs"): a hub A whose CA is an intermediate under an organization's
# root (openssl, RSA-4096), with [pki] crl-url and [crl] listen.
#
#   openssl root ──signs──▶ hub A's CA (token) ──issues──▶ mon1, mon2
#                                 │
#               mtlsgwd A: [crl] listen 127.0.0.1:$DP (plain HTTP)
#                                 │  GET /crl (DER), /crl.pem, /ca.crt
#                                 ▼
#               nginx: ssl_client_certificate root, ssl_verify_depth 2,
#                      ssl_crl = A's CRL fetched from the DP + the root's
#
#  - certificates A issues carry the DP URL (CRL Distribution Points);
#  - the DP serves the CRL (DER and PEM), ca.crt, with ETag and
#    Last-Modified; If-None-Match / If-Modified-Since give 304; HEAD has no
#    body; POST is 405, an unknown path 404; nothing else on that port;
#  - `mtlsgw revoke` at A is published at once: the next GET with the old
#    ETag gets the new CRL, which lists the serial;
#  - nginx accepts A's peer with the chain, and refuses it once the CRL
#    fetched from the DP lists it; openssl verify -crl_check_all agrees.
#
# usage: crldp.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"
. "$here/lib-org.sh"

dmn_need curl openssl certtool python3
MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
NGX_PID=
dmn_cleanup_more() {
    [ -n "$NGX_PID" ] && kill "$NGX_PID" 2>/dev/null && wait "$NGX_PID" 2>/dev/null
}
dmn_temp crldp
softhsm_setup "$T"
mkdir -p "$T/run"
chmod 700 "$T/run"
PORT=$(free_port)
DP=$(free_port)
URL="http://127.0.0.1:$DP/crl"

org_root || { echo "Bail out! openssl root"; exit 1; }
org_hub hubA "[crl]" "listen = 127.0.0.1:$DP" "[management]" "listen = 127.0.0.1:$PORT" ||
    { echo "Bail out! hub A"; exit 1; }
# [pki] crl-url after init: init's own gateway certificate has none then;
# every peer below gets it.
sed -i "s|^\[pki\]$|[pki]\ncrl-url = $URL|" "$T/hubA.conf"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T"/*.pin 2>/dev/null
for p in mon1 mon2; do
    org_peer hubA "$p" monitor || { echo "Bail out! peer $p"; exit 1; }
done
P=$T/hubA-pki

# ---- the DP in what is issued ----------------------------------------------
dp=$(openssl x509 -in "$T/mon1.crt" -noout -ext crlDistributionPoints 2>&1)
expect_in "URI:$URL" "$dp" "an issued certificate names the CRL distribution point"
ok_if "the peer chains to the openssl root through A's intermediate" \
    openssl verify -CAfile "$T/root/root.crt" -untrusted "$T/hubA.ica.crt" "$T/mon1.crt"

"$MTLSGWD" -c "$T/hubA.conf" -f >>"$T/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$DP/crl" && break
    sleep 0.1
done

get() { # path [curl args...] -> CODE, $T/h (headers), $T/b (body)
    local path=$1
    shift
    rm -f "$T/b" "$T/h"
    CODE=$(curl -sS --path-as-is --max-time 5 -o "$T/b" -D "$T/h" -w '%{http_code}' "$@" \
        "http://127.0.0.1:$DP$path" 2>"$T/e") || CODE="000 $(cat "$T/e")"
}
hdr() { sed -n "s/^$1: *//Ip" "$T/h" | tr -d '\r'; }

# ---- serving ---------------------------------------------------------------
get /crl
crl_type=$(hdr content-type)
etag=$(hdr etag)
lastmod=$(hdr last-modified)
ok_if "GET /crl: 200, a DER CRL that openssl reads (got $CODE, $crl_type)" \
    sh -c "[ '$CODE' = 200 ] && [ '$crl_type' = application/pkix-crl ] &&
           openssl crl -inform DER -in '$T/b' -noout"
openssl crl -in "$P/crl.pem" -outform DER -out "$T/disk.der" 2>/dev/null
ok_if "the CRL served is the CRL on disk" cmp -s "$T/b" "$T/disk.der"
ok_if "ETag and Last-Modified are sent ($etag, $lastmod)" test -n "$etag" -a -n "$lastmod"
get /crl -H "If-None-Match: $etag"
ok_if "If-None-Match with the current ETag: 304, no body (got $CODE)" \
    sh -c "[ '$CODE' = 304 ] && [ ! -s '$T/b' ]"
get /crl -H "If-Modified-Since: $lastmod"
ok_if "If-Modified-Since the Last-Modified: 304 (got $CODE)" test "$CODE" = 304
get /crl -H 'If-None-Match: "0000"'
ok_if "If-None-Match with another tag: 200 (got $CODE)" test "$CODE" = 200
get /crl.pem
ok_if "GET /crl.pem: the PEM CRL (got $CODE)" \
    sh -c "[ '$CODE' = 200 ] && openssl crl -in '$T/b' -noout"
get /ca.crt
ok_if "GET /ca.crt: A's CA certificate (AIA) (got $CODE)" \
    sh -c "[ '$CODE' = 200 ] && cmp -s '$T/b' '$P/ca.crt'"
raw() { # request bytes -> "STATUS-LINE|bytes after the head", the server closing
    printf "$1" | timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read())
d = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    d += b
head, _, body = d.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode(), len(body), sep="|")' "$DP" 2>&1
}
out=$(raw 'HEAD /crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
ok_if "HEAD /crl: 200 and no body ($out)" test "$out" = "HTTP/1.1 200 OK|0"
get /crl -X POST --data x
allow=$(hdr allow)
ok_if "POST /crl: 405 with Allow: GET, HEAD (got $CODE, '$allow')" \
    sh -c "[ '$CODE' = 405 ] && [ '$allow' = 'GET, HEAD' ]"
for path in /registry.json /pin /gateway.crt /../crl.pem /api/v1/status /crl?x=1 /; do
    get "$path"
    ok_if "GET $path: 404 (got $CODE)" test "$CODE" = 404
done
out=$(printf 'GET /crl HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n' "$(head -c 100000 /dev/zero | tr '\0' a)" |
    timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read())
print(s.recv(200).decode(errors="replace").split("\r\n")[0])' "$DP" 2>&1)
expect_in "HTTP/1.1 4" "$out" "a request head of 100 KB is refused (4xx, not served)"

# ---- revocation publishes at once ------------------------------------------
serial=$(openssl x509 -in "$T/mon1.crt" -noout -serial | cut -d= -f2)
"$MTLSGW" -c "$T/hubA.conf" revoke mon1 --reason keyCompromise >/dev/null 2>&1
get /crl -H "If-None-Match: $etag"
listed=$(openssl crl -inform DER -in "$T/b" -noout -text 2>/dev/null | tr -d ' :' |
    grep -ci "SerialNumber$serial")
ok_if "after revoke, the old ETag gets 200 and a CRL listing mon1 (got $CODE)" \
    sh -c "[ '$CODE' = 200 ] && [ '$listed' -ge 1 ] && [ '$(hdr etag)' != '$etag' ]"

# ---- nginx as a third-party verifier ---------------------------------------
if ! command -v nginx >/dev/null; then
    tap_skip "nginx verifies A's peers with the DP's CRL" "nginx missing"
    tap_done
    exit
fi
mkdir -p "$T/ngx/logs" "$T/ngx/tmp"
NPORT=$(free_port)
# Its server certificate, from the root (nginx is nobody's hub).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$T/ngx/srv.key" -out "$T/ngx/srv.csr" 2>/dev/null
openssl x509 -req -in "$T/ngx/srv.csr" -CA "$T/root/root.crt" -CAkey "$T/root/root.key" \
    -CAcreateserial -days 30 -out "$T/ngx/srv.crt" 2>/dev/null
fetch_crls() { # A's CRL from the DP, as an nginx would be fed by cron, plus the root's
    curl -sS --max-time 5 "http://127.0.0.1:$DP/crl" | openssl crl -inform DER -out "$T/ngx/a.crl"
    cat "$T/ngx/a.crl" "$T/root/root.crl.pem" >"$T/ngx/crls.pem"
}
cat >"$T/ngx/nginx.conf" <<NGX
error_log $T/ngx/logs/error.log;
pid $T/ngx/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path $T/ngx/tmp; proxy_temp_path $T/ngx/tmp;
    fastcgi_temp_path $T/ngx/tmp; uwsgi_temp_path $T/ngx/tmp; scgi_temp_path $T/ngx/tmp;
    server {
        listen 127.0.0.1:$NPORT ssl;
        ssl_certificate $T/ngx/srv.crt;
        ssl_certificate_key $T/ngx/srv.key;
        ssl_client_certificate $T/root/root.crt;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl $T/ngx/crls.pem;
        location / { return 200 "ok \$ssl_client_s_dn\n"; }
    }
}
NGX
fetch_crls
chmod -R a+rX "$T/ngx" "$T/root" "$T"/*.pem 2>/dev/null
nginx -p "$T/ngx" -c "$T/ngx/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
NGX_PID=$!
for _ in $(seq 50); do
    curl -sk -o /dev/null "https://127.0.0.1:$NPORT/" && break
    sleep 0.1
done
ngx() { # peer -> NCODE
    NCODE=$(curl -s --max-time 5 --cacert "$T/root/root.crt" --cert "$T/$1.chain.pem" \
        --key "$T/$1.key" -o "$T/nb" -w '%{http_code}' "https://127.0.0.1:$NPORT/")
}
ngx mon2
ok_if "nginx (root only, depth 2, A's CRL from the DP) accepts A's peer mon2 (got $NCODE)" \
    test "$NCODE" = 200
ngx mon1
ok_if "nginx refuses mon1, revoked at A and listed by the DP (got $NCODE)" test "$NCODE" = 400
"$MTLSGW" -c "$T/hubA.conf" revoke mon2 --reason keyCompromise >/dev/null 2>&1
fetch_crls
kill -HUP "$NGX_PID"
for _ in $(seq 50); do
    ngx mon2
    [ "$NCODE" = 400 ] && break
    sleep 0.1
done
ok_if "after revoke at A and a fetch from the DP, nginx refuses mon2 (got $NCODE)" \
    test "$NCODE" = 400
v=$(openssl verify -crl_check_all -CAfile "$T/root/root.crt" -untrusted "$T/hubA.ica.crt" \
    -CRLfile "$T/ngx/crls.pem" "$T/mon2.crt" 2>&1)
expect_in "certificate revoked" "$v" "openssl verify -crl_check_all agrees: mon2 revoked"
tap_done
