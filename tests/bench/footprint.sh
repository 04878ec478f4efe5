#!/bin/bash
# tests/bench/run footprint: memory, threads, descriptors and CPU of the
# daemon idle, with management sessions and tunnels, and of a hub at 1,000
# tunnel spokes; the same for an OpenVPN server with as many clients.
#
#   tests/bench/footprint.sh BUILD_DIR        (root; normally via tests/bench/run)
#   N_MGMT=100 N_SMALL=100 N_BIG=1000 PER_SPOKE=100 CPU_SECS=30 OVPN=yes
#   MTLSGW_BIN, MTLSGWD_BIN: other binaries (an A/B of a change) than BUILD_DIR's
#   PERF=PREFIX: `perf record -g` of the hub (PREFIX-hub.data) and of the
#   spokes (PREFIX-spokes.data) during the N_BIG ramp (its time is then not
#   the figure: perf costs CPU on the same cores)
#
# Namespaces (names carry $$): the hub, with its addresses on lo
# (192.168.50.1 for mtlsgwd, 192.168.50.3 for OpenVPN), and N_BIG/PER_SPOKE
# spoke namespaces, each a veth to the hub (172.30.K.2 -> .1). Spoke K runs
# one mtlsgwd with PER_SPOKE `[uplink upNNNN]` sections, each its own ECDSA
# key on the spoke's own SoftHSM token and its own certificate from the hub's
# CA (enrolled as a tunnel peer without networks; the hub pushes no routes).
# Several spokes and not one with 1,000 keys: SoftHSM's file store re-reads
# every object of a token after each write, so making 1,000 keys on one token
# takes minutes (200 take 8 s, the next 200 37 s), and that cost is SoftHSM's,
# not the daemon's. The management clients (tests/bench/mgmthold.py: Python's
# ssl, OpenSSL) run in spoke 0; each holds a keep-alive HTTPS connection after
# a GET /api/v1/status.
#
#   1. mtlsgwd idle, then with N_MGMT management sessions and N_SMALL tunnels
#      (spoke 0): per process (parent, session) PSS, private and anonymous memory
#      (Private_Clean + Private_Dirty; Anonymous of /proc/PID/smaps_rollup,
#      which the idle target is judged on: see proc_fig), threads and
#      open descriptors.
#   2. a fresh hub, idle, then all N_BIG/PER_SPOKE spokes started at once:
#      seconds from their start until the hub's `mtlsgw status` counts N_BIG
#      tunnels, private memory and threads per tunnel ((at N_BIG - idle) /
#      N_BIG, both processes), CPU of both processes over CPU_SECS seconds
#      of idle tunnels with keepalives (utime + stime of /proc/PID/stat),
#      descriptors.
#   3. OpenVPN 2.6 (TCP, TLS with EC P-256 certificates, no DCO, keepalive
#      10 60 like mtlsgw's 10 s keepalive): one server, one `openvpn`
#      client process per client (all in one namespace, one shared client
#      certificate with duplicate-cn), N_SMALL then N_BIG clients: the same
#      figures. OVPN=no skips it.
#
# The targets of issue 17 are printed next to the figures with PASS/MISS;
# the figures and what limits each: docs/performance.md, "Footprint". A run
# takes about 9 minutes on two CPUs once the fixture exists (5 of them
# OpenVPN's 1,000 client processes); the first adds the enrollments (4 to 9
# minutes for 1,001 on a busy machine).
set -u
here=$(dirname "$(readlink -f "$0")")
top=$(readlink -f "$here/../..")
build=$(readlink -f "${1:-$top/build/bench}")
N_MGMT=${N_MGMT:-100}
N_SMALL=${N_SMALL:-100}
N_BIG=${N_BIG:-1000}
PER_SPOKE=${PER_SPOKE:-100}
CPU_SECS=${CPU_SECS:-30}
OVPN=${OVPN:-yes}
UP_TIMEOUT=${UP_TIMEOUT:-120}
PERF=${PERF:-}
PERF_PIDS=
LOGLEVEL=${LOGLEVEL:-warn}
MTLSGW=$(readlink -f "${MTLSGW_BIN:-$build/gateway/mtlsgw}")
MTLSGWD=$(readlink -f "${MTLSGWD_BIN:-$build/gateway/mtlsgwd}")
MKDEVKEYS=$build/tests/bench/mkdevkeys
TARGET_IDLE_KIB=3072
TARGET_TUN_KIB=64
TARGET_UP_S=10

die() { echo "bench/footprint: $*" >&2; exit 1; }
note() { echo "# $(date -u +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || die "run as root (namespaces, TUN devices, descriptor limits)"
[ -x "$MTLSGWD" ] || die "$build/gateway/mtlsgwd not built (meson setup $build && ninja -C $build)"
ninja -C "$build" tests/bench/mkdevkeys >/dev/null || die "cannot build tests/bench/mkdevkeys"
[ $((N_BIG % PER_SPOKE)) = 0 ] && [ $((N_SMALL % PER_SPOKE)) = 0 ] ||
    die "N_SMALL and N_BIG must be multiples of PER_SPOKE"
N_SPOKES=$((N_BIG / PER_SPOKE))
if [ "$OVPN" = yes ]; then
    command -v openvpn >/dev/null || "$top/dev/deps" base bench || die "dev/deps base bench failed"
fi

# Descriptors: the hub holds a socket and a TUN per tunnel, each OpenVPN
# client process its own; the shell passes its limit on.
want=$((N_BIG * 4 + N_MGMT * 2 + 4096))
if [ "$(ulimit -n)" -lt "$want" ]; then
    ulimit -Hn "$want" 2>/dev/null
    ulimit -n "$want" 2>/dev/null || die "cannot raise RLIMIT_NOFILE to $want"
fi

# The tokens, keys, certificates and configs (T) are kept between runs in
# the build dir: 1,000 enrollments take one to four minutes here (each
# `mtlsgw enroll` signs on the token and writes the registry, CRL and audit
# log with fsync), the measurements a few minutes. BENCH_FRESH=1 makes them
# again. Logs, fifos and OpenVPN's files go to a temp dir (R).
T=$build/footprint-fixture-$N_BIG-$PER_SPOKE
[ -n "${BENCH_FRESH:-}" ] && rm -rf "$T"
[ -f "$T/ready" ] || rm -rf "$T"
mkdir -p "$T"
chmod 755 "$T"
R=$(mktemp -d /tmp/mtlsgw-bench-footprint.XXXXXX)
chmod 755 "$R"
. "$top/tests/lib/softhsm.sh"
. "$top/tests/netns/lib-topo.sh"

HUB=192.168.50.1
OV_HUB=192.168.50.3
NS_HUB=fp-hub-$$
spoke_ns() { echo "fp-s$1-$$"; }
TOPO_NS=$NS_HUB
for k in $(seq 0 $((N_SPOKES - 1))); do TOPO_NS="$TOPO_NS $(spoke_ns "$k")"; done
NS_OVC=fp-ovc-$$
TOPO_NS="$TOPO_NS $NS_OVC"
PIDS=""
HOLD_FD=

cleanup() {
    local p
    [ -n "$HOLD_FD" ] && exec {HOLD_FD}>&-
    nsd_stop_all
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    topo_down
    if [ -n "${BENCH_KEEP:-}" ]; then note "kept $R"; else rm -rf "$R"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- topology -------------------------------------------------------------------
ip netns add "$NS_HUB" 2>/dev/null || die "cannot create network namespaces"
hub ip link set lo up && hub ip addr add "$HUB/32" dev lo && hub ip addr add "$OV_HUB/32" dev lo &&
    hub sysctl -qw net.ipv4.ip_forward=1 || die "hub namespace"
for k in $(seq 0 $((N_SPOKES - 1))); do
    ns=$(spoke_ns "$k")
    ip netns add "$ns" && ip -n "$ns" link set lo up &&
        topo_link "$NS_HUB" "s$k" "172.30.$k.1/24" "$ns" wan "172.30.$k.2/24" &&
        ip -n "$ns" route add "$HUB/32" via "172.30.$k.1" &&
        ip -n "$ns" route add "$OV_HUB/32" via "172.30.$k.1" || die "spoke namespace $k"
done
ip netns add "$NS_OVC" && ip -n "$NS_OVC" link set lo up &&
    topo_link "$NS_HUB" ovc 172.31.0.1/24 "$NS_OVC" wan 172.31.0.2/24 &&
    ip -n "$NS_OVC" route add "$OV_HUB/32" via 172.31.0.1 || die "OpenVPN client namespace"

# ---- the fixture: hub token, CA, config; the management peer; the spokes ----
MODULE=$(softhsm_find_module) || die "SoftHSM module not found"
# A hub's token, CA and config (hub: the one the spokes enroll with; hub0:
# the same daemon with no peer enrolled, for the idle figure).
hub_node() { # id
    mtg_node "$1" "$1" "$HUB_PIN" || die "$1 token"
    cat >>"$T/$1/$1.conf" <<EOF
log-level = $LOGLEVEL
ban-threshold = 1000000
[management]
listen = $HUB:8443
max-sessions = $((N_MGMT + 1000))
max-per-source = $((N_MGMT + 1000))
handshake-timeout = 60
idle-timeout = 3600
[tunnel]
listen = $HUB:4433
pool = 10.96.0.0/20
max-sessions = $((N_BIG + 100))
max-per-source = $((PER_SPOKE + 100))
handshake-timeout = 60
EOF
    mtg_at "$1" init --cn hub1 --host "$HUB" >"$T/init.log" 2>&1 ||
        die "mtlsgw init: $(cat "$T/init.log")"
}
make_fixture() {
    hub_node hub
    certtool --generate-privkey --key-type ecdsa --outfile "$T/admin.key" 2>/dev/null &&
        printf 'cn = bench-admin\n' >"$T/admin.tmpl" &&
        certtool --generate-request --no-text --load-privkey "$T/admin.key" \
            --template "$T/admin.tmpl" --outfile "$T/admin.csr" 2>/dev/null &&
        mtg_at hub enroll bench-admin --role admin --csr "$T/admin.csr" --out "$T/admin.crt" \
            >"$T/enroll.log" 2>&1 ||
        die "cannot enroll the management peer: $(cat "$T/enroll.log")"
    # The spokes: a token each, PER_SPOKE keys and certificates.
    t0=$(date +%s)
    for k in $(seq 0 $((N_SPOKES - 1))); do
        id=s$k
        mtg_node "$id" "spk$k" "spk-pin-$k" >/dev/null || die "spoke $k token"
        mkdir -p "$T/$id/pki" "$T/$id/csr" "$T/$id/crt"
        printf 'log-level = %s\n' "$LOGLEVEL" >>"$T/$id/$id.conf"
        cp "$T/hub/pki/ca.crt" "$T/$id/pki/hub-ca.crt"
        first=$((k * PER_SPOKE))
        SOFTHSM2_CONF=$T/$id/softhsm2.conf GNUTLS_PIN=spk-pin-$k \
            "$MKDEVKEYS" "$MODULE" "pkcs11:token=spk$k" up "$first" "$PER_SPOKE" "$T/$id/csr" ||
            die "spoke $k: cannot make its keys"
        for i in $(seq "$first" $((first + PER_SPOKE - 1))); do
            n=$(printf 'up%04d' "$i")
            mtg_at hub enroll "$n" --role tunnel --csr "$T/$id/csr/$n.csr" \
                --out "$T/$id/crt/$n.crt" >>"$T/enroll.log" 2>&1 ||
                die "cannot enroll $n: $(tail -n 2 "$T/enroll.log")"
            printf '[uplink %s]\nserver = %s:4433\nkey = %s\ncert = %s\nca = %s\n' \
                "$n" "$HUB" "$n" \
                "$T/$id/crt/$n.crt" "$T/$id/pki/hub-ca.crt" >>"$T/$id/$id.conf"
        done
        softhsm_give_to "$DUSER" "$T/$id"
    done
    note "$N_BIG device keys made on $N_SPOKES tokens and enrolled in $(($(date +%s) - t0)) s"
}
[ -f "$T/hub0/hub0.conf" ] || hub_node hub0
if [ -f "$T/ready" ]; then
    note "reusing the fixture in $T ($N_BIG enrolled spokes; BENCH_FRESH=1 makes it again)"
else
    make_fixture
    touch "$T/ready"
fi
for f in "$T"/*.log; do : >"$f"; done
sed -i "s/^log-level = .*/log-level = $LOGLEVEL/" "$T"/*/*.conf

# ---- reading processes -----------------------------------------------------------
# "PSS PRIVATE THREADS FDS ANON" of one process, memory in KiB. ANON is
# smaps_rollup's Anonymous: the pages only this process can hold (heap,
# stacks, buffers, and its copies of libraries' relocated data), what it
# costs the router. PRIVATE adds Private_Clean, which also counts the page
# cache of a library that no other process maps at that moment: measured
# here, libcrypto's 3.8 MB (SoftHSM's) is Private_Clean of the session
# process on a quiet machine and Shared_Clean when another process maps
# libcrypto, so that column moves with the machine, not with the daemon.
proc_fig() { # pid
    local pss priv thr fds anon
    read -r pss priv anon < <(awk '/^Pss:/ { p = $2 } /^Private_(Clean|Dirty):/ { v += $2 }
        /^Anonymous:/ { a = $2 } END { print p + 0, v + 0, a + 0 }' "/proc/$1/smaps_rollup")
    thr=$(awk '/^Threads:/ { print $2 }' "/proc/$1/status")
    fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$pss $priv $thr $fds $anon"
}
# Private KiB of one process by kind of mapping: "stacks txbufs heap anon
# files". Thread stacks are the 128 KiB anonymous mappings (the stack size the
# tunnel threads ask for) and the 8 MiB ones (glibc's default); the tunnels'
# TUN -> TLS buffers are the 132 KiB ones (TXBUF, 131,178 bytes: above
# glibc's 128 KiB mmap threshold, so a mapping of its own);
# heap is glibc's main arena, anon the rest (thread arenas, buffers).
proc_kinds() { # pid
    awk '/^[0-9a-f]+-[0-9a-f]+ / { path = $6; next }
        /^Size:/ {
            if (path == "[heap]") k = "heap"; else if (path != "") k = "files"
            else if ($2 == 128 || $2 == 8192) k = "stacks"; else if ($2 == 132) k = "txbufs"
            else k = "anon"
            next }
        /^Private_(Clean|Dirty):/ { v[k] += $2 }
        END { printf "%d %d %d %d %d\n", v["stacks"], v["txbufs"], v["heap"], v["anon"],
            v["files"] }' \
        "/proc/$1/smaps"
}
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# The hub's two processes: the parent (ip netns exec execs mtlsgwd) and the
# session process it forks.
HUB_PARENT=
HUB_SESSION=
HUB_ID=hub
hub_start() { # [id]
    local i
    HUB_ID=${1:-hub}
    nsd_start "$HUB_ID" "$NS_HUB" "$T/$HUB_ID/$HUB_ID.conf"
    HUB_PARENT=${NSD_PID[$HUB_ID]}
    HUB_SESSION=
    for i in $(seq 100); do
        if hub_count tunnel >/dev/null 2>&1; then
            HUB_SESSION=$(pgrep -P "$HUB_PARENT" -x mtlsgwd | head -1)
            [ -n "$HUB_SESSION" ] && return 0
        fi
        sleep 0.1
    done
    die "the hub did not start: $(tail -n 5 "$T/hub.log")"
}
hub_status() { mtg_at "$HUB_ID" status --json 2>/dev/null; }
hub_count() { # management|tunnel
    hub_status | jq -e ".sessions.$1"
}

# Memory settles once freed memory and lazy work are done.
settle() { # pid...
    local a b i
    a=$(for p in "$@"; do proc_fig "$p"; done)
    for i in 1 2 3 4 5 6; do
        sleep 1
        b=$(for p in "$@"; do proc_fig "$p"; done)
        [ "$a" = "$b" ] && break
        a=$b
    done
}

# A line of the table; FIG: "PSS PRIVATE THREADS FDS" of that process.
ROWS=()
FIG=
row() { # state process pid
    FIG=$(proc_fig "$3")
    # shellcheck disable=SC2086
    local pss priv thr fds anon
    read -r pss priv thr fds anon <<<"$FIG"
    ROWS+=("$(printf '%-34s %-16s %8s %8s %8s %7s %6s   %s' "$1" "$2" "$pss" "$priv" "$anon" \
        "$thr" "$fds" "$(load)")")
}

spokes_start() { # count
    local k
    for k in $(seq 0 $(($1 - 1))); do
        nsd_start "s$k" "$(spoke_ns "$k")" "$T/s$k/s$k.conf"
    done
}
spokes_stop() { # all at once, then as nsd_stop does for each
    local k
    for k in $(seq 0 $((N_SPOKES - 1))); do
        [ -n "${NSD_PID[s$k]:-}" ] && kill -TERM "${NSD_PID[s$k]}" 2>/dev/null
    done
    for k in $(seq 0 $((N_SPOKES - 1))); do nsd_stop "s$k"; done
}

# CPU seconds spent while tunnels come up: the hub's parent and session
# process, the spokes' parents and session processes (summed), the machine.
ramp_cpu_start() {
    RC_HP=$(proc_ticks "$HUB_PARENT")
    RC_HS=$(proc_ticks "$HUB_SESSION")
    RC_ALL=$(awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8 }' /proc/stat)
}
ramp_cpu_end() { # spokes
    local k p sp=0 ss=0 hz all
    hz=$(getconf CLK_TCK)
    for k in $(seq 0 $(($1 - 1))); do
        p=${NSD_PID[s$k]:-}
        [ -n "$p" ] || continue
        sp=$((sp + $(proc_ticks "$p")))
        for c in $(pgrep -P "$p" -x mtlsgwd); do ss=$((ss + $(proc_ticks "$c"))); done
    done
    all=$(awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8 }' /proc/stat)
    awk -v hp=$(($(proc_ticks "$HUB_PARENT") - RC_HP)) \
        -v hs=$(($(proc_ticks "$HUB_SESSION") - RC_HS)) \
        -v sp="$sp" -v ss="$ss" -v all=$((all - RC_ALL)) -v hz="$hz" 'BEGIN {
        printf "hub parent %.2f, hub session %.2f, spoke parents %.2f, spoke sessions %.2f, " \
            "machine (all processes) %.2f", hp / hz, hs / hz, sp / hz, ss / hz, all / hz }'
}

# PERF: the hub's two processes, and the spokes' parents and session
# processes once these are forked (their threads are followed).
perf_start() {
    local k p c sp=
    [ -n "$PERF" ] || return 0
    sleep 0.2
    for k in $(seq 0 $((N_SPOKES - 1))); do
        p=${NSD_PID[s$k]:-}
        [ -n "$p" ] || continue
        sp="$sp,$p"
        for c in $(pgrep -P "$p" -x mtlsgwd); do sp="$sp,$c"; done
    done
    perf record -q -g -o "$PERF-hub.data" -p "$HUB_PARENT,$HUB_SESSION" >/dev/null 2>&1 &
    PERF_PIDS=$!
    perf record -q -g -o "$PERF-spokes.data" -p "${sp#,}" >/dev/null 2>&1 &
    PERF_PIDS="$PERF_PIDS $!"
    PIDS="$PIDS $PERF_PIDS"
}
perf_stop() {
    [ -n "$PERF_PIDS" ] || return 0
    # shellcheck disable=SC2086
    kill -INT $PERF_PIDS 2>/dev/null
    # shellcheck disable=SC2086
    wait $PERF_PIDS 2>/dev/null
    PERF_PIDS=
    note "perf: $PERF-hub.data, $PERF-spokes.data"
}

# RAMP: when the hub counted the first, a quarter, half, three quarters
# (seconds since START, nanoseconds of date +%s%N).
wait_count() { # what n seconds: 0 once the hub counts n
    local deadline c now q=1 marks=(1 $(($2 / 4)) $(($2 / 2)) $(($2 * 3 / 4)) "$2")
    deadline=$(($(date +%s%N) + $3 * 1000000000))
    RAMP=
    while :; do
        c=$(hub_count "$1" 2>/dev/null)
        now=$(date +%s%N)
        while [ "$q" -le 4 ] && [ "${c:-0}" -ge "${marks[$((q - 1))]}" ]; do
            RAMP="$RAMP ${marks[$((q - 1))]}@$(awk -v a="$START" -v b="$now" \
                'BEGIN { printf "%.1f", (b - a) / 1e9 }')s"
            q=$((q + 1))
        done
        [ "${c:-0}" -ge "$2" ] && return 0
        [ "$now" -ge "$deadline" ] && { note "$1: $c of $2 after $3 s"; return 1; }
        sleep 0.1
    done
}

# ---- 0. idle, no peer enrolled --------------------------------------------------
hub_start hub0
settle "$HUB_PARENT" "$HUB_SESSION"
row "mtlsgwd idle, no peers" parent "$HUB_PARENT"
read -r _ ip_priv _ _ ip_anon <<<"$FIG"
row "mtlsgwd idle, no peers" session "$HUB_SESSION"
read -r _ is_priv _ _ is_anon <<<"$FIG"
IDLE_PRIV=$((ip_priv + is_priv))
IDLE_ANON=$((ip_anon + is_anon))
nsd_stop hub0

# ---- 1. idle, then N_MGMT management sessions and N_SMALL tunnels -----------
hub_start
settle "$HUB_PARENT" "$HUB_SESSION"
row "mtlsgwd idle, $((N_BIG + 1)) peers" parent "$HUB_PARENT"
read -r _ ip_priv _ <<<"$FIG"
row "mtlsgwd idle, $((N_BIG + 1)) peers" session "$HUB_SESSION"
read -r _ is_priv _ <<<"$FIG"
IDLE_PRIV_BIG=$((ip_priv + is_priv))

fifo=$R/hold.fifo
mkfifo "$fifo"
ip netns exec "$(spoke_ns 0)" python3 "$here/mgmthold.py" "$HUB" 8443 "$T/hub/pki/ca.crt" \
    "$T/admin.crt" "$T/admin.key" "$N_MGMT" <"$fifo" >"$R/hold.out" 2>&1 &
PIDS="$PIDS $!"
exec {HOLD_FD}>"$fifo"
wait_until 120 grep -q '^held=' "$R/hold.out" || die "management clients: $(cat "$R/hold.out")"
note "management clients: $(cat "$R/hold.out")"
START=$(date +%s%N)
ramp_cpu_start
spokes_start $((N_SMALL / PER_SPOKE))
wait_count tunnel "$N_SMALL" "$UP_TIMEOUT" ||
    note "hub log: $(tail -n 3 "$T/hub.log" | tr '\n' ' ')"
note "$N_SMALL tunnels up (count@time since the spoke started):$RAMP"
note "CPU s during it: $(ramp_cpu_end $((N_SMALL / PER_SPOKE)))"
[ -n "${STOP_AFTER_SMALL:-}" ] && exit 0
settle "$HUB_PARENT" "$HUB_SESSION"
state="mtlsgwd $(hub_count management) mgmt + $(hub_count tunnel) tunnels"
row "$state" parent "$HUB_PARENT"
row "$state" session "$HUB_SESSION"
row "spoke 0 ($PER_SPOKE uplinks)" "spoke parent" "${NSD_PID[s0]}"
SPOKE_SESSION=$(pgrep -P "${NSD_PID[s0]}" -x mtlsgwd | head -1)
row "spoke 0 ($PER_SPOKE uplinks)" "spoke session" "$SPOKE_SESSION"
SPOKE_KINDS=$(proc_kinds "$SPOKE_SESSION")
SPOKE_STACKS=$(grep -c -E '^Size: +8192 kB' "/proc/$SPOKE_SESSION/smaps")
exec {HOLD_FD}>&-
HOLD_FD=
spokes_stop
nsd_stop hub

# ---- 2. a hub at N_BIG tunnels ---------------------------------------------------
hub_start
settle "$HUB_PARENT" "$HUB_SESSION"
row "hub idle (before $N_BIG)" parent "$HUB_PARENT"
read -r _ bp_priv bp_thr _ <<<"$FIG"
row "hub idle (before $N_BIG)" session "$HUB_SESSION"
read -r _ bs_priv bs_thr _ <<<"$FIG"
KINDS_IDLE=$(proc_kinds "$HUB_SESSION")
START=$(date +%s%N)
ramp_cpu_start
spokes_start "$N_SPOKES"
perf_start
if wait_count tunnel "$N_BIG" "$UP_TIMEOUT"; then
    UP_S=$(awk -v a="$START" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
else
    UP_S="not all up in $UP_TIMEOUT"
fi
perf_stop
BIG_RAMP=$RAMP
BIG_RAMP_CPU=$(ramp_cpu_end "$N_SPOKES")
note "CPU s during it: $BIG_RAMP_CPU"
note "$N_BIG tunnels: $UP_S s (count@time:$RAMP); hub interfaces: $(mtg_ifaces "$NS_HUB" | wc -l)"
settle "$HUB_PARENT" "$HUB_SESSION"
N_AT=$(hub_count tunnel)
state="hub $N_AT tunnels"
row "$state" parent "$HUB_PARENT"
read -r _ np_priv np_thr _ <<<"$FIG"
row "$state" session "$HUB_SESSION"
read -r _ ns_priv ns_thr _ <<<"$FIG"
KINDS_BIG=$(proc_kinds "$HUB_SESSION")
PER_TUN_KIB=$(awk -v a=$((np_priv + ns_priv - bp_priv - bs_priv)) -v n="$N_AT" \
    'BEGIN { printf "%.1f", a / n }')
PER_TUN_THR=$(awk -v a=$((np_thr + ns_thr - bp_thr - bs_thr)) -v n="$N_AT" \
    'BEGIN { printf "%.2f", a / n }')
c0=$(($(proc_ticks "$HUB_PARENT") + $(proc_ticks "$HUB_SESSION")))
sleep "$CPU_SECS"
c1=$(($(proc_ticks "$HUB_PARENT") + $(proc_ticks "$HUB_SESSION")))
CPU_PCT=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v s="$CPU_SECS" \
    'BEGIN { printf "%.2f", 100 * d / hz / s }')
HUB_ALIVE_END=$(hub_count tunnel)
spokes_stop
nsd_stop hub

# ---- 3. OpenVPN --------------------------------------------------------------------
if [ "$OVPN" = yes ]; then
    P=$R/ovpki
    mkdir -p "$P"
    (
        cd "$P" || exit 1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=bench-ca -keyout ca.key -out ca.crt &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -subj /CN=hub1 -keyout srv.key -out srv.csr &&
            printf 'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' >srv.ext &&
            openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                -extfile srv.ext -out srv.crt &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -subj /CN=spoke -keyout cli.key -out cli.csr &&
            printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n' >cli.ext &&
            openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                -extfile cli.ext -out cli.crt
    ) >"$R/ovpki.log" 2>&1 || die "openssl PKI: $(cat "$R/ovpki.log")"
    chmod 644 "$P"/*
    OV=$R/openvpn
    mkdir -p "$OV"
    cat >"$OV/server.conf" <<CONF
mode server
tls-server
proto tcp-server
local $OV_HUB
port 1194
dev ovs0
dev-type tun
topology subnet
server 10.80.0.0 255.255.240.0
max-clients $((N_BIG + 100))
duplicate-cn
ca $P/ca.crt
cert $P/srv.crt
key $P/srv.key
dh none
keepalive 10 60
disable-dco
status $OV/status.txt 1
status-version 2
verb 1
CONF
    cat >"$OV/client.conf" <<CONF
client
proto tcp-client
remote $OV_HUB 1194
dev-type tun
nobind
ca $P/ca.crt
cert $P/cli.crt
key $P/cli.key
remote-cert-tls server
disable-dco
verb 1
CONF
    ip netns exec "$NS_HUB" openvpn --config "$OV/server.conf" >"$R/openvpn-server.log" 2>&1 &
    OV_SRV=$!
    PIDS="$PIDS $OV_SRV"
    ov_count() { grep -c '^CLIENT_LIST' "$OV/status.txt" 2>/dev/null; }
    ov_clients() { # from to
        local i
        for i in $(seq "$1" $(($2 - 1))); do
            ip netns exec "$NS_OVC" openvpn --config "$OV/client.conf" --dev "ovc$i" \
                >"$OV/client-$i.log" 2>&1 &
            PIDS="$PIDS $!"
            [ "$i" = 0 ] && OV_ONE=$!
        done
    }
    ov_wait() { # n
        local deadline c
        deadline=$(($(date +%s%N) + UP_TIMEOUT * 1000000000))
        while :; do
            c=$(ov_count)
            [ "${c:-0}" -ge "$1" ] && return 0
            [ "$(date +%s%N)" -ge "$deadline" ] && { note "openvpn: $c of $1 clients"; return 1; }
            sleep 0.2
        done
    }
    wait_until 10 test -s "$OV/status.txt" ||
        die "openvpn server: $(tail -n 3 "$R/openvpn-server.log")"
    settle "$OV_SRV"
    row "openvpn idle" server "$OV_SRV"
    read -r _ ov0_priv ov0_thr _ <<<"$FIG"
    ov_clients 0 "$N_SMALL"
    ov_wait "$N_SMALL"
    settle "$OV_SRV"
    row "openvpn $(ov_count) clients" server "$OV_SRV"
    t0=$(date +%s%N)
    ov_clients "$N_SMALL" "$N_BIG"
    if ov_wait "$N_BIG"; then
        OV_UP_S=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
        OV_UP_S="$OV_UP_S s (the last $((N_BIG - N_SMALL)), started at once)"
    else
        OV_UP_S="not all up in $UP_TIMEOUT s"
    fi
    settle "$OV_SRV"
    row "openvpn $(ov_count) clients" server "$OV_SRV"
    read -r _ ovn_priv ovn_thr _ <<<"$FIG"
    OV_PER_KIB=$(awk -v a=$((ovn_priv - ov0_priv)) -v n="$N_BIG" 'BEGIN { printf "%.1f", a / n }')
    OV_PER_THR=$(awk -v a=$((ovn_thr - ov0_thr)) -v n="$N_BIG" 'BEGIN { printf "%.2f", a / n }')
    c0=$(proc_ticks "$OV_SRV")
    sleep "$CPU_SECS"
    c1=$(proc_ticks "$OV_SRV")
    OV_CPU_PCT=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v s="$CPU_SECS" \
        'BEGIN { printf "%.2f", 100 * d / hz / s }')
fi

# ---- the table ------------------------------------------------------------------------
echo "footprint: memory in KiB (PSS; private = Private_Clean + Private_Dirty, anon = Anonymous of smaps_rollup)"
printf '%-34s %-16s %8s %8s %8s %7s %6s   %s\n' state process PSS private anon threads fds \
    "load (1 5 15 min)"
printf '%s\n' "${ROWS[@]}"
echo
pf() { awk -v a="$1" -v t="$2" 'BEGIN { print (a + 0 <= t + 0) ? "PASS" : "MISS" }'; }
printf 'idle private anonymous, parent + session, no peers: %d KiB (target <= %d KiB): %s\n' \
    "$IDLE_ANON" "$TARGET_IDLE_KIB" "$(pf "$IDLE_ANON" "$TARGET_IDLE_KIB")"
printf '  private incl. clean file pages: %d KiB (moves with what else maps the same libraries)\n' \
    "$IDLE_PRIV"
printf '  with %d peers enrolled: %d KiB (the parsed registry: %.1f KiB per peer)\n' \
    $((N_BIG + 1)) "$IDLE_PRIV_BIG" \
    "$(awk -v a=$((IDLE_PRIV_BIG - IDLE_PRIV)) -v n=$((N_BIG + 1)) 'BEGIN { print a / n }')"
printf 'hub at %d tunnels: private per tunnel %s KiB (target <= %d): %s; threads per tunnel %s\n' \
    "$N_AT" "$PER_TUN_KIB" "$TARGET_TUN_KIB" "$(pf "$PER_TUN_KIB" "$TARGET_TUN_KIB")" \
    "$PER_TUN_THR"
case $UP_S in
*[!0-9.]*) ok=MISS ;;
*) ok=$(pf "$UP_S" "$TARGET_UP_S") ;;
esac
fmt='all %d up, from the spokes'"'"' start to the hub'"'"'s status: %s s (target <= %d s): %s\n'
printf "$fmt" \
    "$N_BIG" "$UP_S" "$TARGET_UP_S" "$ok"
printf '  tunnels counted by the hub at (since the %d spokes started):%s\n' "$N_SPOKES" "$BIG_RAMP"
read -r -a ki <<<"$KINDS_IDLE"
read -r -a kb <<<"$KINDS_BIG"
printf '  the session process'"'"'s private KiB by kind, idle / at %d / per tunnel:\n' "$N_AT"
kn=("thread stacks (128 KiB, 8 MiB)" "TUN->TLS buffers (132 KiB)" "main arena [heap]"
    "other anonymous (thread arenas)" "files")
for j in 0 1 2 3 4; do
    printf '    %-32s %8s %8s %8s\n' "${kn[$j]}" "${ki[$j]}" "${kb[$j]}" \
        "$(awk -v a="${ki[$j]}" -v b="${kb[$j]}" -v n="$N_AT" \
            'BEGIN { printf "%.1f", (b - a) / n }')"
done
read -r -a ks <<<"$SPOKE_KINDS"
printf '  spoke 0 session process (%d uplinks), private KiB by kind:' "$PER_SPOKE"
for j in 0 1 2 3 4; do printf ' %s %s;' "${kn[$j]}" "${ks[$j]}"; done
printf ' %d mappings of 8 MiB (default thread stacks)\n' "$SPOKE_STACKS"
printf 'hub CPU over %d s with %s idle tunnels (keepalive 10 s): %s %% of one CPU\n' \
    "$CPU_SECS" "$HUB_ALIVE_END" "$CPU_PCT"
if [ "$OVPN" = yes ]; then
    fmt='openvpn at %d clients (%d client processes): private per client %s KiB, threads'
    printf "$fmt per client %s\n" \
        "$N_BIG" "$N_BIG" "$OV_PER_KIB" "$OV_PER_THR"
    printf 'openvpn: the %d clients up in %s; server CPU over %d s: %s %% of one CPU\n' \
        "$N_BIG" "$OV_UP_S" "$CPU_SECS" "$OV_CPU_PCT"
    printf 'one openvpn client process: PSS/private/threads/fds/anon %s\n' "$(proc_fig "$OV_ONE")"
fi
