#!/bin/bash
# The management page (docs/web.md) in a real browser: headless Chromium
# with the admin's .p12 in an NSS database, the certificate picked by the
# AutoSelectCertificateForUrls policy, driven by chromedriver (browser.py).
#
#   Chromium HOME=admin  (NSS: webadmin.p12 + CA) --+
#   Chromium HOME=mon    (NSS: webmon.p12 + CA)   --+-- mutual TLS --> mtlsgwd -f
#   Chromium HOME=none   (NSS: CA only)           --+   127.0.0.1:$PORT
#   http.server 127.0.0.1:$EVIL (a page that POSTs a revoke cross-site)
#
# usage: web.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd SCREENSHOT-DIR
set -u
SCREENS=$3
web=$(dirname "$(readlink -f "$0")")
. "$web/../interop/lib-daemon.sh" "$@"
. "$web/lib-web.sh"

skip() { echo "1..0 # SKIP $*"; exit 77; }
for tool in curl certtool certutil pk12util chromium chromedriver; do
    command -v "$tool" >/dev/null ||
        skip "$tool missing (dev/deps: chromium chromium-driver libnss3-tools)"
done
/usr/bin/python3 -c 'import selenium' 2>/dev/null || skip "python3-selenium missing"
[ "$(id -u)" = 0 ] || skip "the daemon switches users and the policy is in /etc: run as root"

POLICY_DIR=/etc/chromium/policies/managed
POLICY=$POLICY_DIR/mtlsgw-web-test-$$.json
EVIL_PID=
dmn_cleanup_more() {
    [ -n "$EVIL_PID" ] && kill "$EVIL_PID" 2>/dev/null
    rm -f "$POLICY"
    rmdir "$POLICY_DIR" /etc/chromium/policies 2>/dev/null
}
dmn_temp web
dmn_fixture_or_bail

# The admin's and the monitor's .p12, as an admin hands them out.
printf 'p12-pass-%s\n' "$$" >"$T/p12.pass"
hub enroll webadmin --role admin --p12 "$T/webadmin.p12" --password-file "$T/p12.pass" \
    >/dev/null 2>&1 || { echo "Bail out! enroll --p12 webadmin failed"; exit 1; }
hub enroll webmon --role monitor --p12 "$T/webmon.p12" --password-file "$T/p12.pass" \
    >/dev/null 2>&1 || { echo "Bail out! enroll --p12 webmon failed"; exit 1; }

# One NSS database per browser HOME: the CA trusted for servers, and the
# .p12 (none for the third).
nssdb() { # home [p12]
    local db=$1/.pki/nssdb
    mkdir -p "$db"
    certutil -N -d "sql:$db" --empty-password &&
        certutil -A -d "sql:$db" -n mtlsgw-ca -t "C,," -i "$P/ca.crt" || return 1
    [ -z "${2:-}" ] || pk12util -d "sql:$db" -i "$2" -w "$T/p12.pass" -K "" >/dev/null
}
nssdb "$T/home-admin" "$T/webadmin.p12" && nssdb "$T/home-mon" "$T/webmon.p12" &&
    nssdb "$T/home-none" || { echo "Bail out! NSS databases could not be made"; exit 1; }

# The policy Debian's chromium reads: present the one certificate the
# profile holds to this listener, without asking.
mkdir -p "$POLICY_DIR"
SELECT='{\"pattern\":\"https://127.0.0.1:'$PORT'\",\"filter\":{}}'
printf '{"AutoSelectCertificateForUrls": ["%s"]}\n' "$SELECT" >"$POLICY"

dmn_start || { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }
URL=https://127.0.0.1:$PORT

# ---- the page over curl: headers, gzip, ETag ----------------------------
page() { # extra curl args...
    curl -sS --max-time 10 --cacert "$P/ca.crt" --cert "$T/admin1.crt" --key "$T/admin1.key" \
        -o "$T/page.body" -D "$T/page.hdr" -w '%{http_code}' "$@" 2>"$T/page.err"
}
CODE=$(page --compressed "$URL/")
HDR=$(tr -d '\r' <"$T/page.hdr")
expect_in 200 "$CODE" "GET / with a client certificate: 200"
CSP="default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
expect_in "Content-Security-Policy: $CSP" "$HDR" "the page carries the CSP"
expect_in "X-Content-Type-Options: nosniff" "$HDR" "the page carries nosniff"
expect_in "Referrer-Policy: no-referrer" "$HDR" "the page carries no-referrer"
expect_in "Content-Encoding: gzip" "$HDR" "the page is served gzip"
ETAG=$(sed -n 's/^ETag: //p' <<<"$HDR")
CODE=$(page --compressed -H "If-None-Match: $ETAG" "$URL/")
expect_in 304 "$CODE" "If-None-Match with the page's ETag: 304"
CODE=$(page "$URL/ui/app.js")
expect_in 406 "$CODE" "no Accept-Encoding: gzip: 406 with what to do"
CODE=$(curl -sS --max-time 10 --cacert "$P/ca.crt" -o /dev/null -w '%{http_code}' \
    --compressed "$URL/" 2>/dev/null)
expect_in 000 "$CODE" "GET / without a client certificate: no answer"
CODE=$(page "$URL/api/v1/status")
expect_in "Cache-Control: no-store" "$(tr -d '\r' <"$T/page.hdr")" "API answers are not stored"
SIZE=$(curl -sS --cacert "$P/ca.crt" --cert "$T/admin1.crt" --key "$T/admin1.key" -H \
    'Accept-Encoding: gzip' "$URL/" "$URL/ui/app.js" "$URL/ui/app.css" | wc -c)
echo "# assets: $SIZE bytes gzip in all (index.html, app.js, app.css)"

# ---- another site's page reading, HEAD, names in paths ------------------
# What a page on another site makes the admin's browser send along with its
# certificate: refused whether or not the peer exists (no name oracle).
xs() { # path [curl args...]
    local path=$1
    shift
    page -H 'Sec-Fetch-Site: cross-site' "$@" "$URL$path"
}
CODE=$(xs /api/v1/peers/tun1)
expect_in 403 "$CODE" "a cross-site GET of an enrolled peer: 403"
expect_in "cross-site request refused" "$(cat "$T/page.body")" "... saying why"
CODE=$(xs /api/v1/peers/nosuch)
expect_in 403 "$CODE" "a cross-site GET of a missing peer: 403 too"
CODE=$(xs / --compressed)
expect_in 403 "$CODE" "a cross-site GET of the page: 403"
CODE=$(page -H 'Sec-Fetch-Site: same-site' "$URL/api/v1/status")
expect_in 403 "$CODE" "a same-site (sibling host) GET of the API: 403"
CODE=$(page -H 'Sec-Fetch-Site: same-origin' "$URL/api/v1/peers/tun1")
expect_in 200 "$CODE" "the page's own GET (Sec-Fetch-Site: same-origin): 200"
CODE=$(page --compressed -H 'Sec-Fetch-Site: none' "$URL/")
expect_in 200 "$CODE" "a typed address (Sec-Fetch-Site: none): 200"
# Cross-Origin-Resource-Policy on every answer: the page, the API, errors.
corp_on() { # name curl-args...
    local name=$1
    shift
    page "$@" >/dev/null
    expect_in "Cross-Origin-Resource-Policy: same-origin" "$(tr -d '\r' <"$T/page.hdr")" "$name"
}
corp_on "CORP: same-origin on the page" --compressed "$URL/"
corp_on "CORP: same-origin on an API answer" "$URL/api/v1/status"
corp_on "CORP: same-origin on a 404" "$URL/api/v1/nosuch"
corp_on "CORP: same-origin on a cross-site 403" -H 'Sec-Fetch-Site: cross-site' "$URL/"
# HEAD on the page: the GET's head, Content-Length included, no body.
GZ_LEN=$(page -H 'Accept-Encoding: gzip' "$URL/" >/dev/null; stat -c %s "$T/page.body")
OUTW=$(page -I -H 'Accept-Encoding: gzip' -w '%{http_code} %{size_download}' "$URL/")
HDR=$(tr -d '\r' <"$T/page.hdr")
expect_in "200 0" "$OUTW" "HEAD /: 200 without a body"
expect_in "Content-Length: $GZ_LEN" "$HDR" "HEAD /: the Content-Length of the GET ($GZ_LEN)"
OUTW=$(page -I -H 'Accept-Encoding: gzip' "$URL/ui/peers")
expect_in 200 "$OUTW" "HEAD /ui/peers (a view): 200"
# Names in paths are percent-decoded once.
req mon1 GET /api/v1/peers/%74un%31
expect_json "GET /api/v1/peers/%74un%31 is tun1" 'assert b["name"] == "tun1", b'
for bad in 'tun1%00' 'a%2Fb' 'a%2fb' 'a%zz' 'tun%3' 'x%'; do
    req mon1 GET "/api/v1/peers/$bad"
    expect_http 400 "GET /api/v1/peers/$bad: 400"
done
expect_json_error "... with a JSON error"
req admin1 DELETE /api/v1/invites/apiinv%00
expect_http 400 "DELETE /api/v1/invites/apiinv%00: 400"

# ---- the API lines the page added, over curl ----------------------------
req admin1 GET "/api/v1/refusals"
expect_json "GET /api/v1/refusals counts the certificate-less handshake by minute" \
    'r = b["reasons"]["no-certificate"]
assert b["minutes"] == 60 and len(r) == 60 and sum(r) >= 1 and b["total"] >= 1, b'
req admin1 GET "/api/v1/audit?limit=2"
expect_json "GET /api/v1/audit?limit=2: the two newest lines, newest first" \
    'assert len(b) == 2 and b[0]["name"] == "webmon" and b[1]["name"] == "webadmin", b'
req mon1 GET "/api/v1/audit?limit=0"
expect_http 400 "GET /api/v1/audit?limit=0: 400"
printf '{"name":"apiinv","role":"monitor","ttl":"1h"}' >"$T/inv.json"
req mon1 POST /api/v1/invites "$T/inv.json"
expect_http 403 "POST /api/v1/invites as a monitor: 403"
req admin1 POST /api/v1/invites "$T/inv.json"
expect_json "POST /api/v1/invites: 201 with the code, the join line and an SVG QR code" \
    'assert b["state"] == "pending" and b["code"] in b["join"], b
assert b["join"].startswith("mtlsgw join https://") and b["qr_svg"].startswith("<svg "), b'
[ "$HTTP" = 201 ] || tap_result 1 "... and it answered 201" "$(got)"
CODE_API=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["code"])' "$BODY" \
    2>/dev/null)
req admin1 POST /api/v1/invites "$T/inv.json"
expect_http 409 "the same invite again: 409 (one pending invite a name)"
req mon1 GET /api/v1/invites
expect_json "GET /api/v1/invites (monitor): listed, without its code or hash" \
    'x = [i for i in b if i["name"] == "apiinv"]
assert x and x[0]["state"] == "pending", b
assert sys.argv[2] not in sys.argv[1] and "hash" not in sys.argv[1], "code or hash listed"' \
    "${CODE_API:-no-code}"
req admin1 DELETE /api/v1/invites/apiinv
expect_http 200 "DELETE /api/v1/invites/apiinv: withdrawn"
req admin1 DELETE /api/v1/invites/apiinv
expect_http 404 "... and again: 404"
printf '{"name":"vica","role":"monitor"}' >"$T/inv2.json"
req admin1 POST /api/v1/invites "$T/inv2.json"
expect_http 409 "an invite for an enrolled, active peer's name: 409"
req admin1 POST /
expect_http 405 "POST / (the page is a route): 405"

# ---- the forged cross-site POST: a page on another origin ---------------
mkdir -p "$T/evil"
cat >"$T/evil/evil.html" <<HTML
<!DOCTYPE html><html><body>
<form id="f" method="POST" enctype="text/plain" action="$URL/api/v1/peers/vicc/revoke">
<input type="hidden" name='{"reason":"keyCompromise","x":"' value='"}'>
</form>
<script>document.getElementById('f').submit();</script>
</body></html>
HTML
EVIL=$(free_port)
(cd "$T/evil" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$EVIL") \
    >"$T/evil.log" 2>&1 &
EVIL_PID=$!
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$EVIL/evil.html" && break
    sleep 0.1
done

# A session for the peer the page will revoke, open while it does.
VICTIM=vicb
hold_open held "$VICTIM"
# And one the page will kick.
KICKED=vica
hold_open kicked "$KICKED"

# The CSR an admin uploads in the page (its key stays here).
keycsr csrpeer || { echo "Bail out! the CSR to upload could not be made"; exit 1; }
args=(--csr "$T/csrpeer.csr" --url "$URL" --evil "http://127.0.0.1:$EVIL/evil.html"
    --screens "$SCREENS"
    --victim "$VICTIM" --kick "$KICKED" --home-admin "$T/home-admin" --home-monitor "$T/home-mon"
    --home-none "$T/home-none")
run_browser() { # stage
    local rc
    /usr/bin/python3 "$web/browser.py" "${args[@]}" --stage "$1" >"$T/browser.out" \
        2>"$T/browser.err"
    rc=$?
    if [ "$rc" = 77 ] && [ "$TAP_N" -gt 0 ]; then
        tap_skip "the browser checks" "$(grep SKIP "$T/browser.out")"
        return
    fi
    browser_tap "$1" "$rc"
}

# ---- mtlsgw invite --qr: the terminal QR code decodes to the join line ----
if command -v zbarimg >/dev/null; then
    hub invite phone1 --role monitor --ttl 1h --qr >"$T/invite.out" 2>&1
    JOIN=$(sed -n 's/^  \(mtlsgw join .*\)$/\1/p' "$T/invite.out")
    # Half blocks back into modules (light drawn), 4 pixels a module, as PBM.
    sed '1,/^the same line as a QR code:$/d' "$T/invite.out" | /usr/bin/python3 -c '
import sys
rows = []
for line in sys.stdin.buffer.read().decode("utf-8").splitlines():
    if not line or set(line) - set(" \u2580\u2584\u2588"):
        continue  # the note after the code
    top = [0 if c in "\u2580\u2588" else 1 for c in line]
    bot = [0 if c in "\u2584\u2588" else 1 for c in line]
    rows += [top, bot]
w = max(len(r) for r in rows)
print("P1\n%d %d" % (w * 4, len(rows) * 4))
for r in rows:
    line = " ".join(str(v) for v in r for _ in range(4))
    print("\n".join([line] * 4))' >"$T/invite.pbm"
    GOT=$(zbarimg -q --raw "$T/invite.pbm" 2>/dev/null)
    if [ -n "$JOIN" ] && [ "$GOT" = "$JOIN" ]; then
        tap_result 0 "mtlsgw invite --qr: the QR code decodes to the join line"
    else
        tap_result 1 "mtlsgw invite --qr: the QR code decodes to the join line" \
            "join line: '$JOIN', decoded: '$GOT'; output: $(head -n 12 "$T/invite.out")"
    fi
else
    tap_skip "mtlsgw invite --qr decodes" "zbarimg (zbar-tools) missing"
fi

# One admin browser for every admin step (a Chromium start and a first
# load with the certificate cost 10-20 s each here), then the monitor's
# and the certificate-less one.
run_browser all
OUT=$(hub peers 2>&1)
expect_in "$(printf '%-20s %-8s %-10s' vicc monitor active)" "$OUT" \
    "after the cross-site POST, vicc is still active"
expect_in "$(printf '%-20s %-8s %-10s' "$VICTIM" monitor revoked)" "$OUT" \
    "mtlsgw peers shows $VICTIM revoked from the page"
hold_use kicked
hold_cmd "WAIT 5" 10
case "$HOLD_ANS" in
CLOSED*) tap_result 0 "$KICKED's session, kicked from the page, is closed" ;;
*) tap_result 1 "$KICKED's session, kicked from the page, is closed" "got: $HOLD_ANS" ;;
esac
hold_use held
hold_cmd "WAIT 5" 10
case "$HOLD_ANS" in
GONE* | CLOSED*) tap_result 0 "$VICTIM's open session ended with the revocation" ;;
*) tap_result 1 "$VICTIM's open session ended with the revocation" "got: $HOLD_ANS" ;;
esac
# audit.log turned into a FIFO (a writer of the pki dir could): the audit
# view must answer at once, not hold an API worker until someone writes.
mv "$P/audit.log" "$P/audit.real"
mkfifo -m 0640 "$P/audit.log"
chown "$DUSER:" "$P/audit.log" 2>/dev/null
req admin1 GET /api/v1/audit
rm -f "$P/audit.log"
mv "$P/audit.real" "$P/audit.log"
expect_http 500 "audit.log a FIFO: GET /api/v1/audit answers 500 at once"
expect_in "not a regular file" "$BODY" "... saying audit.log is not a regular file"
echo "# screenshots: $(readlink -f "$SCREENS")"
tap_done
