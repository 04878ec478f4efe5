#!/bin/bash
# tests/bench/run handshake: full and resumed mutual-TLS handshakes per
# second, 16 concurrent clients (hsload), against mtlsgwd's management
# listener, nginx (ssl_verify_client on, key through the PKCS#11 engine),
# gnutls-serv and stunnel4, all with the same token key (ECDSA P-256 on
# SoftHSM), certificate and CA; plus the raw signing rate of the token key.
#
#   tests/bench/handshake.sh BUILD_DIR        (root; normally via tests/bench/run)
#   RUNS=3 SECS=8 CONC=16
#
# All four servers run at once, each on its own port; in each round every
# server is measured once, in an order that rotates from round to round, so
# that drift of the machine hits all of them alike. Printed: the median of
# the rounds per server and mode, and mtlsgwd's ratio to each peer.
set -u
here=$(dirname "$(readlink -f "$0")")
top=$(readlink -f "$here/../..")
build=$(readlink -f "${1:-$top/build/bench}")
RUNS=${RUNS:-3}
SECS=${SECS:-8}
CONC=${CONC:-16}
SYSTEMS=${SYSTEMS:-"mtlsgwd nginx gnutls-serv stunnel"}

. "$here/handshake-lib.sh"
hb_init handshake
hb_fixture

started=""
for s in $SYSTEMS; do
    if srv_start "$s" "$(free_port)"; then
        started="$started $s"
    else
        note "$s skipped"
    fi
done
read -ra SYS <<<"$started"
[ "${#SYS[@]}" -gt 0 ] || die "no server started"

# The token's raw signing rate: one thread, and one per CPU.
ncpu=$(nproc)
SIGN1=$(GNUTLS_PIN=$PIN "$HSSIGN" "$MODULE" "$KEYURI" 1 3) || note "hssign failed: $SIGN1"
SIGNN=$(GNUTLS_PIN=$PIN "$HSSIGN" "$MODULE" "$KEYURI" "$ncpu" 3) || note "hssign failed: $SIGNN"

declare -A FULL RES ERRS
for s in "${SYS[@]}"; do FULL[$s]=""; RES[$s]=""; ERRS[$s]=0; done
for mode in full resumed; do
    for r in $(seq "$RUNS"); do
        for s in $(rotate "$r" "${SYS[@]}"); do
            line=$(hs "$s" "$CONC" "$SECS" "$mode")
            rate=$(field "$line" rate)
            err=$(field "$line" err)
            [ -n "$rate" ] || rate=0
            ERRS[$s]=$((ERRS[$s] + ${err:-0}))
            if [ "$mode" = full ]; then FULL[$s]="${FULL[$s]} $rate"; else RES[$s]="${RES[$s]} $rate"; fi
            note "$mode round $r $s: $line"
            if [ "$mode" = resumed ] && [ "$(field "$line" full)" != 0 ]; then
                note "$s: $(field "$line" full) of the resumed handshakes were full ones"
            fi
        done
    done
done

echo "handshake: $CONC concurrent clients, $SECS s per run, median of $RUNS rounds (alternating)"
echo "server key: ECDSA P-256 on SoftHSM ($MODULE), TLS 1.3, client certificate required"
printf 'token signing (hssign, ECDSA P-256): 1 thread: %s\n' "${SIGN1:-n/a}"
printf 'token signing (hssign, ECDSA P-256): %s threads: %s\n' "$ncpu" "${SIGNN:-n/a}"
printf '%-12s %10s %10s   %-24s %-24s %s\n' server full/s resumed/s "full runs" "resumed runs" errors
declare -A MF MR
for s in "${SYS[@]}"; do
    # shellcheck disable=SC2086
    MF[$s]=$(median ${FULL[$s]})
    # shellcheck disable=SC2086
    MR[$s]=$(median ${RES[$s]})
    printf '%-12s %10s %10s   %-24s %-24s %s\n' "$s" "${MF[$s]}" "${MR[$s]}" "${FULL[$s]# }" \
        "${RES[$s]# }" "${ERRS[$s]}"
done
if [ -n "${MF[mtlsgwd]:-}" ]; then
    for s in "${SYS[@]}"; do
        [ "$s" = mtlsgwd ] && continue
        printf 'mtlsgwd/%-12s full %s  resumed %s\n' "$s" "$(ratio "${MF[mtlsgwd]}" "${MF[$s]}")" \
            "$(ratio "${MR[mtlsgwd]}" "${MR[$s]}")"
    done
    if [ -n "${MF[nginx]:-}" ]; then
        rf=$(ratio "${MF[mtlsgwd]}" "${MF[nginx]}")
        rr=$(ratio "${MR[mtlsgwd]}" "${MR[nginx]}")
        awk -v f="$rf" -v r="$rr" 'BEGIN {
            printf "target full >= 1.10x nginx: %s (%s)\n", (f >= 1.10 ? "met" : "MISSED"), f
            printf "target resumed >= 1.50x nginx: %s (%s)\n", (r >= 1.50 ? "met" : "MISSED"), r }'
    fi
fi
