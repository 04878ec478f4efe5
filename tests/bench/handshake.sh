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
[ -n "${MTLSGWD_BEFORE:-}" ] && SYSTEMS="$SYSTEMS mtlsgwd-before"

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

HZ=$(getconf CLK_TCK)
declare -A FULL RES ERRS CF CR
for s in "${SYS[@]}"; do FULL[$s]=""; RES[$s]=""; ERRS[$s]=0; CF[$s]=""; CR[$s]=""; done
for mode in full resumed; do
    for r in $(seq "$RUNS"); do
        for s in $(rotate "$r" "${SYS[@]}"); do
            c0=$(srv_cpu_ticks "$s")
            line=$(hs "$s" "$CONC" "$SECS" "$mode")
            c1=$(srv_cpu_ticks "$s")
            rate=$(field "$line" rate)
            # The server's CPU time per handshake: what the rate costs it,
            # much less at the mercy of whatever else the machine runs.
            cpu=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v n="$(field "$line" ok)" \
                'BEGIN { if (n > 0) printf "%.3f", d * 1000 / hz / n; else print "nan" }')
            if [ "$mode" = full ]; then CF[$s]="${CF[$s]} $cpu"; else CR[$s]="${CR[$s]} $cpu"; fi
            err=$(field "$line" err)
            [ -n "$rate" ] || rate=0
            ERRS[$s]=$((ERRS[$s] + ${err:-0}))
            if [ "$mode" = full ]; then FULL[$s]="${FULL[$s]} $rate"; else RES[$s]="${RES[$s]} $rate"; fi
            note "$mode round $r $s: $line server_cpu_ms=$cpu"
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
echo "server CPU per handshake (ms, utime + stime of all its processes; median):"
printf '%-12s %10s %10s   %-24s %s\n' server full resumed "full runs" "resumed runs"
declare -A MCF MCR
for s in "${SYS[@]}"; do
    # shellcheck disable=SC2086
    MCF[$s]=$(median ${CF[$s]})
    # shellcheck disable=SC2086
    MCR[$s]=$(median ${CR[$s]})
    printf '%-12s %10s %10s   %-24s %s\n' "$s" "${MCF[$s]}" "${MCR[$s]}" "${CF[$s]# }" "${CR[$s]# }"
done
if [ -n "${MF[mtlsgwd]:-}" ]; then
    echo "ratios (mtlsgwd/peer: rate higher is better; CPU per handshake lower is better):"
    for s in "${SYS[@]}"; do
        [ "$s" = mtlsgwd ] && continue
        printf 'mtlsgwd/%-12s CPU/handshake full %s  resumed %s\n' "$s" \
            "$(ratio "${MCF[mtlsgwd]}" "${MCF[$s]}")" "$(ratio "${MCR[mtlsgwd]}" "${MCR[$s]}")"
    done
    for s in "${SYS[@]}"; do
        [ "$s" = mtlsgwd ] && continue
        printf 'mtlsgwd/%-12s rate full %s  resumed %s\n' "$s" "$(ratio "${MF[mtlsgwd]}" "${MF[$s]}")" \
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
