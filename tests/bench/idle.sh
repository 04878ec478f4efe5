#!/bin/bash
# tests/bench/run idle: RSS growth per idle authenticated session, at 1,000
# and 10,000 sessions, for mtlsgwd, gnutls-serv, nginx and stunnel4 (same
# token key, certificate, CA as the handshake benchmark).
#
#   tests/bench/idle.sh BUILD_DIR          (root; normally via tests/bench/run)
#   RUNS=3 BIG_RUNS=1 SMALL=1000 BIG=10000
#
# Each measurement starts the server afresh, warms it with a second of
# handshakes, reads its RSS (summed over its processes), opens SMALL
# sessions with `hsload hold` (full mutual-TLS handshakes, each session
# complete once the server's ticket arrived, then left idle), reads the RSS
# again, and in BIG rounds opens BIG - SMALL more and reads it a third time.
# Growth per session = (RSS - RSS before) / sessions held. The SMALL figure
# is the median of RUNS rounds; BIG is the median of BIG_RUNS rounds (10,000
# full handshakes per server take about a minute on two CPUs, and the figure
# varies far less than a rate does). The servers alternate within a round.
set -u
here=$(dirname "$(readlink -f "$0")")
top=$(readlink -f "$here/../..")
build=$(readlink -f "${1:-$top/build/bench}")
RUNS=${RUNS:-3}
BIG_RUNS=${BIG_RUNS:-1}
SMALL=${SMALL:-1000}
BIG=${BIG:-10000}
SYSTEMS=${SYSTEMS:-"mtlsgwd gnutls-serv nginx stunnel"}
TARGET_KIB=16

. "$here/handshake-lib.sh"
hb_init idle
# Two descriptors per session for stunnel, one for the rest, plus the client.
want=$((BIG * 2 + 4096))
if [ "$NOFILE" -lt "$want" ]; then
    ulimit -Hn "$want" 2>/dev/null && ulimit -n "$want" 2>/dev/null
    NOFILE=$(ulimit -n)
fi
[ "$NOFILE" -ge $((BIG + 1024)) ] || die "descriptor limit $NOFILE is too low for $BIG sessions"
hb_fixture
read -ra SYS <<<"$SYSTEMS"

HOLD_PIDS=()
HOLD_FDS=()
# Open N more sessions to the running server SYS; waits until they are up.
# HELD: how many it holds. (Not in a subshell: the fifo must stay open.)
hold() { # sys n tag
    local out=$T/hold-$1-$3.out fifo=$T/hold-$1-$3.fifo fd i
    rm -f "$fifo" "$out"
    mkfifo "$fifo"
    "$HSLOAD" 127.0.0.1 "${SRV_PORT[$1]}" "$P/ca.crt" "$T/bench1.crt" "$T/bench1.key" "$2" 3600 \
        hold <"$fifo" >"$out" 2>>"$T/hsload.err" &
    HOLD_PIDS+=("$!")
    HB_PIDS="$HB_PIDS $!"
    exec {fd}>"$fifo"
    HOLD_FDS+=("$fd")
    for i in $(seq 6000); do
        grep -q '^held=' "$out" 2>/dev/null && break
        kill -0 "$!" 2>/dev/null || break
        sleep 0.1
    done
    HELD=$(sed -n 's/^held=\([0-9]*\).*/\1/p' "$out")
}

release() {
    local fd p
    for fd in "${HOLD_FDS[@]}"; do exec {fd}>&-; done
    for p in "${HOLD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    HOLD_FDS=()
    HOLD_PIDS=()
}

settle_rss() { # sys: RSS once it stops moving (freed memory, lazy work)
    local a b i
    a=$(srv_rss_kib "$1")
    for i in 1 2 3 4 5; do
        sleep 0.5
        b=$(srv_rss_kib "$1")
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$b"
}

per_session() { # base now n
    awk -v b="$1" -v a="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "n/a" }'
}

declare -A PS_SMALL PS_BIG
for s in "${SYS[@]}"; do PS_SMALL[$s]=""; PS_BIG[$s]=""; done
for r in $(seq "$RUNS"); do
    for s in $(rotate "$r" "${SYS[@]}"); do
        srv_start "$s" "$(free_port)" || { note "$s did not start"; continue; }
        hs "$s" 16 1 full >/dev/null
        base=$(settle_rss "$s")
        hold "$s" "$SMALL" a
        n1=$HELD
        rss1=$(settle_rss "$s")
        [ "${n1:-0}" -eq "$SMALL" ] || note "$s: only ${n1:-0} of $SMALL sessions held ($(tail -n 1 "$T/hold-$s-a.out"))"
        ps1=$(per_session "$base" "$rss1" "${n1:-0}")
        PS_SMALL[$s]="${PS_SMALL[$s]} $ps1"
        line="round $r $s: base $base KiB, $n1 sessions $rss1 KiB ($ps1 KiB/session)"
        if [ "$r" -le "$BIG_RUNS" ]; then
            hold "$s" $((BIG - SMALL)) b
            n2=$HELD
            rss2=$(settle_rss "$s")
            tot=$((${n1:-0} + ${n2:-0}))
            [ "$tot" -eq "$BIG" ] || note "$s: only $tot of $BIG sessions held ($(tail -n 1 "$T/hold-$s-b.out"))"
            # A server that cannot hold them (gnutls-serv: select(), at most
            # FD_SETSIZE descriptors) has no figure here.
            if [ "$tot" -ge $((BIG * 95 / 100)) ] && kill -0 "${SRV_PID[$s]}" 2>/dev/null; then
                ps2=$(per_session "$base" "$rss2" "$tot")
                PS_BIG[$s]="${PS_BIG[$s]} $ps2"
            else
                ps2="n/a (the server held $tot)"
            fi
            line="$line, $tot sessions $rss2 KiB ($ps2 KiB/session)"
        fi
        note "$line"
        release
        srv_stop "$s"
    done
done

echo "idle: RSS growth per idle authenticated session (KiB), full mutual-TLS handshakes,"
echo "$SMALL sessions: median of $RUNS rounds; $BIG sessions: median of $BIG_RUNS round(s)"
printf '%-12s %12s %12s   %-22s %s\n' server "at $SMALL" "at $BIG" "runs at $SMALL" "runs at $BIG"
declare -A MS MB
for s in "${SYS[@]}"; do
    # shellcheck disable=SC2086
    MS[$s]=$(median ${PS_SMALL[$s]})
    # shellcheck disable=SC2086
    MB[$s]=n/a
    [ -n "${PS_BIG[$s]}" ] && MB[$s]=$(median ${PS_BIG[$s]})
    printf '%-12s %12s %12s   %-22s %s\n' "$s" "${MS[$s]}" "${MB[$s]}" "${PS_SMALL[$s]# }" "${PS_BIG[$s]# }"
done
if [ -n "${MS[mtlsgwd]:-}" ]; then
    for s in "${SYS[@]}"; do
        [ "$s" = mtlsgwd ] && continue
        printf 'mtlsgwd/%-12s at %s: %s  at %s: %s (lower is better)\n' "$s" "$SMALL" \
            "$(ratio "${MS[mtlsgwd]}" "${MS[$s]}")" "$BIG" "$(ratio "${MB[mtlsgwd]}" "${MB[$s]}")"
    done
    awk -v a="${MS[mtlsgwd]}" -v b="${MB[mtlsgwd]}" -v t=$TARGET_KIB 'BEGIN {
        printf "target <= %d KiB/session: %s (%s at small, %s at big)\n", t,
            ((a + 0 <= t && (b == "n/a" || b + 0 <= t)) ? "met" : "MISSED"), a, b }'
fi
