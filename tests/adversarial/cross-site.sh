#!/bin/bash
# Cross-site request forgery against the management API (docs/web.md): the
# admin's browser presents the admin's certificate to the gateway for any
# page that sends it a request, so a page on another site could revoke,
# kick or unban with the admin's authority. This script sends what such a
# browser sends (Origin, Sec-Fetch-Site, a form's Content-Type), with the
# admin's certificate, as the forged page would make it; tests/web does the
# same from a real Chromium.
#
#   curl --cert admin1 (the "browser")   --- mutual TLS 127.0.0.1:$PORT ---> mtlsgwd -f
#        Origin: https://evil.example, Sec-Fetch-Site: cross-site,
#        Content-Type: text/plain, body {"reason":"keyCompromise"}
#
# Before web.c's check every forged request below revoked vica.
#
# usage: cross-site.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/../interop/lib-daemon.sh" "$@"

dmn_begin xsite curl certtool openssl python3
dmn_start || { echo "Bail out! the daemon did not start: $(tail -n 5 "$DLOG")"; exit 1; }

# As the admin's browser: curl with admin1's certificate and the headers a
# browser adds. Sets CODE and the answer in $T/x.body.
as_browser() { # method path [curl args...]
    local m=$1 path=$2
    shift 2
    CODE=$(curl -sS --max-time 10 --cacert "$P/ca.crt" --cert "$T/admin1.crt" \
        --key "$T/admin1.key" -X "$m" -o "$T/x.body" -w '%{http_code}' "$@" \
        "https://127.0.0.1:$PORT$path" 2>"$T/x.err")
}
still_active() { # peer what
    local out
    out=$(hub show "$1" 2>&1)
    expect_in "status:     active" "$out" "$1 still active after $2"
}
BODY='{"reason":"keyCompromise"}'

# 1. A form on another site: text/plain body that is valid JSON.
as_browser POST /api/v1/peers/vica/revoke -H 'Origin: https://evil.example' \
    -H 'Sec-Fetch-Site: cross-site' -H 'Content-Type: text/plain' --data-binary "$BODY"
expect_in 403 "$CODE" "a cross-site text/plain form POST is refused (403)"
expect_in "cross-site request refused" "$(cat "$T/x.body")" "the refusal says why"
still_active vica "the cross-site form"

# 2. The same from a browser that sends no Fetch Metadata: Origin alone.
as_browser POST /api/v1/peers/vica/revoke -H 'Origin: https://evil.example' \
    -H 'Content-Type: application/json' --data-binary "$BODY"
expect_in 403 "$CODE" "a POST with a foreign Origin is refused, JSON or not"
still_active vica "the foreign Origin"

# 3. A sibling host (same-site, not same-origin), and an opaque origin.
as_browser POST /api/v1/peers/vica/revoke -H 'Origin: https://127.0.0.1:1' \
    -H 'Sec-Fetch-Site: same-site' -H 'Content-Type: application/json' --data-binary "$BODY"
expect_in 403 "$CODE" "a same-site but other-origin POST is refused"
as_browser POST /api/v1/peers/vica/revoke -H 'Origin: null' \
    -H 'Content-Type: application/json' --data-binary "$BODY"
expect_in 403 "$CODE" "Origin: null (sandboxed frame, data: URL) is refused"
still_active vica "the same-site and null origins"

# 4. Same origin but a form's body type.
as_browser POST /api/v1/peers/vica/revoke -H "Origin: https://127.0.0.1:$PORT" \
    -H 'Sec-Fetch-Site: same-origin' -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-binary "$BODY"
expect_in 403 "$CODE" "a urlencoded body is refused even from the same origin"
still_active vica "the urlencoded body"

# 5. Lifting a ban and kicking are changes too.
as_browser DELETE /api/v1/bans/192.0.2.1 -H 'Origin: https://evil.example' \
    -H 'Sec-Fetch-Site: cross-site'
expect_in 403 "$CODE" "a cross-site DELETE is refused"

# What still works: the page's own request, and curl without browser headers.
as_browser POST /api/v1/peers/vica/revoke -H "Origin: https://127.0.0.1:$PORT" \
    -H 'Sec-Fetch-Site: same-origin' -H 'Content-Type: application/json' \
    --data-binary "$BODY"
expect_in 200 "$CODE" "the page's own same-origin JSON POST revokes (200)"
as_browser POST /api/v1/peers/vicc/revoke
expect_in 200 "$CODE" "curl's body-less POST (no browser headers) still revokes (200)"
tap_done
