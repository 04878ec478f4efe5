#!/bin/bash
# The CRL as the console writes it and the daemon reads it:
#  - a revoke whose CRL signature fails (a token fault injected at that one
#    signature) leaves registry.json and crl.pem byte for byte as they were:
#    the CRL is written before the registry (fail closed);
#  - CRL numbers strictly increase, and after each revoke equal the
#    registry's counter;
#  - a peer the CRL lists is refused even while registry.json still calls
#    it active (the two checks are independent: either one refuses).
#
# usage: crl.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
here=$(dirname "$(readlink -f "$0")")
. "$here/lib-daemon.sh" "$@"

dmn_begin crl curl openssl certtool python3

crl_number() { # the CRL Number extension of the CRL, in decimal
    openssl crl -in "$P/crl.pem" -noout -crlnumber | sed 's/^crlNumber=//' |
        python3 -c 'import sys; print(int(sys.stdin.read().strip(), 16))'
}
reg_number() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["crl_number"])' \
        "$P/registry.json"
}
sums() { sha256sum "$P/registry.json" "$P/crl.pem"; }

# ---- CRL numbers ---------------------------------------------------------
for p in num1 num2 num3; do
    enroll_file_peer "$p" monitor >/dev/null 2>&1 || tap_result 1 "enroll $p"
done
last=$(crl_number)
for p in num1 num2; do
    expect_exit 3 "revoke $p (no daemon to acknowledge: exit 3)" hub_quiet revoke "$p" --reason superseded
    n=$(crl_number)
    r=$(reg_number)
    if [ "$n" -gt "$last" ] && [ "$n" = "$r" ]; then
        tap_result 0 "revoke $p: CRL number $n follows $last and equals the registry's"
    else
        tap_result 1 "revoke $p: CRL number" "CRL $n after $last, registry says $r"
    fi
    last=$n
done
expect_exit 0 "crl re-sign" hub_quiet crl --out "$T/crl-copy.pem"
n=$(crl_number)
if [ "$n" -ge "$last" ] && [ "$n" = "$(reg_number)" ]; then
    tap_result 0 "after crl: CRL number $n, equal to the registry's"
else
    tap_result 1 "after crl: CRL number" "CRL $n after $last, registry says $(reg_number)"
fi

# ---- a revoke whose CRL signature fails ----------------------------------
if [ "${FAULT_INJECTION:-0}" = 1 ]; then
    before=$(sums)
    out=$(MTLSGW_FAULT=crl-sign:fail hub_quiet revoke num3 --reason keyCompromise 2>&1)
    rc=$?
    if [ "$rc" != 0 ]; then
        tap_result 0 "revoke with the CRL signature failing: exit $rc"
    else
        tap_result 1 "revoke with the CRL signature failing" "exit 0: $out"
    fi
    expect_in "CRL" "$out" "its message names the CRL"
    if [ "$(sums)" = "$before" ]; then
        tap_result 0 "registry.json and crl.pem byte-identical after the failed revoke"
    else
        tap_result 1 "registry.json and crl.pem unchanged" "they changed: $(sums)"
    fi
    expect_in '"status":"active"' "$(hub show num3 --json 2>&1)" "num3 is still active"
    expect_exit 3 "the same revoke succeeds once the token signs (exit 3: no daemon)" \
        hub_quiet revoke num3 --reason keyCompromise
else
    tap_skip "revoke with a failing CRL signature" "needs -Dfault_injection=true"
fi

# ---- the CRL refuses a peer the registry still calls active ---------------
enroll_file_peer crl1 monitor >/dev/null 2>&1 || tap_result 1 "enroll crl1"
dmn_start || { echo "Bail out! the daemon did not start"; exit 1; }
req crl1 GET /api/v1/status
expect_http 200 "crl1 is served while active"
cp "$P/registry.json" "$T/registry-active.json"
expect_exit 3 "revoke crl1 without telling the daemon" hub_quiet revoke crl1 --reason keyCompromise
# registry.json says active again (as a half-restored backup would), the CRL
# still lists crl1.
python3 - "$T/registry-active.json" "$P/registry.json" <<'PY'
import os, shutil, sys
shutil.copyfile(sys.argv[1], sys.argv[2] + ".tmp")
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
PY
serial=$(openssl x509 -in "$T/crl1.crt" -noout -serial | cut -d= -f2)
expect_in "$serial" "$(openssl crl -in "$P/crl.pem" -noout -text | tr -d ':' | tr a-f A-F)" \
    "the CRL lists crl1's serial"
expect_in '"status":"active"' "$(hub show crl1 --json 2>&1)" "the registry says crl1 is active"
kill -HUP "$DPID"
sleep 1
req crl1 GET /api/v1/status
if [ "$HTTP" = 000 ]; then
    tap_result 0 "crl1 refused at the handshake: on the CRL, active in the registry"
else
    tap_result 1 "crl1 refused while on the CRL" "$(got)"
fi
expect_in "revoked" "$(grep 'crl1\|'"$serial" "$DLOG" | tail -n 3)" "the daemon logs why"
req admin1 GET /api/v1/status
expect_http 200 "others are still served"
dmn_stop
tap_done
