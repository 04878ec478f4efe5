# tests/netns/lib-topo.sh: the tunnel topology, its daemons and what to read
# from the kernel, for tests/netns/tunnel.sh and tests/bench/tunnel. A script
# sources it with its own arguments, the paths to mtlsgw and mtlsgwd:
#
#   set -u
#   here=$(dirname "$(readlink -f "$0")")
#   . "$here/lib-topo.sh" "$@"        # MTLSGW, MTLSGWD; tap.sh, softhsm.sh
#   topo_need TOOL...; topo_temp NAME; topo_up_or_bail
#
# (MTLSGW already set, or tap.sh/softhsm.sh already sourced: left as they
# are; T, the temp dir of mode 755, is topo_temp's or the caller's.) Needs
# bash, root.
#
#    lan-a              hub                               spoke              lan-b
#  +-------+     +---------------+                  +---------------+     +-------+
#  |    va |-----| va        wan |------------------| wan        vb |-----| vb    |
#  +-------+     +------ vo -----+                  +---------------+     +-------+
#  10.10.0.2/24  10.10.0.1/24  192.168.50.1/24   192.168.50.2/24  10.20.0.1/24  10.20.0.2/24
#  via .1              |                                                  via .1
#                  +-- vo --+  192.168.51.2/24 via .1: peers that must get
#                  |  out   |  nothing (monitor role, foreign CA, raw frames)
#                  +--------+
#
#  mtlsgw tunnel: spoke [uplink hub] --TLS, ALPN mtlsgw/1--> 192.168.50.1:4433
#  (hub [tunnel], pool 10.99.0.0/24, routes 10.10.0.0/24; spoke1 enrolled with
#  --network 10.20.0.0/24). No plain route joins lan-a and lan-b: their
#  traffic flows through a tunnel or not at all.
#
# topo_need TOOL...     skips (exit 77) unless run as root with every TOOL
# topo_temp NAME        T=/tmp/mtlsgw-NAME.XXXXXX (mode 755) and the traps: at
#                       exit (INT, TERM too) the script's topo_cleanup_more
#                       when defined, PINGPID and LOCAL_PIDS, every daemon,
#                       the namespaces, then T (kept and named with
#                       MTLSGW_TEST_KEEP=1; KEEP_LOGS=DIR keeps the logs)
# topo_up / topo_down   the five namespaces (names carry $$), forwarding on
#                       in hub and spoke; topo_up returns 77 when namespaces
#                       cannot be made
# topo_up_or_bail       topo_up; skips without namespaces, bails otherwise
# hub/spoke/lana/lanb/out CMD...   run CMD in that namespace
# mtg_fixture           tokens, configs, the hub's CA, spoke1 enrolled;
#                       $T/hub/hub.conf, $T/spoke/spoke.conf (HUB_EXTRA_HOST
#                       set: one more --host in the hub's certificate)
# mtg_fixture_or_bail   mtg_fixture; skips without SoftHSM, bails otherwise
# mtg_hub_node [LINE...] / mtg_spoke_node   mtg_fixture's halves before init
#                       and enroll: the hub's token and config ([tunnel] and
#                       LINEs), the spoke's token, config and empty pki dir
# mtg_p12_peer NAME ROLE [ENROLL-ARG...]  NAME enrolled on the hub with a
#                       PKCS#12, unpacked into $T/NAME.crt and $T/NAME.key
# spoke_console ARGS... the spoke's console, in the spoke's namespace
# nsd_start ID NS CONF / nsd_stop ID / nsd_kill9 ID
#                       an mtlsgwd -f in namespace NS, log $T/ID.log;
#                       NSD_PID[ID] is the parent's pid; the environment
#                       passes through (MTLSGW_FAULT=point:ms nsd_start ...)
# mtg_ifaces NS         the mtg* interfaces there, one a line
# nft_elems NS SET      elements of set SET of table inet mtlsgw, one a line
#                       ("mtg0", "mtg0 . 10.10.0.0/24", "10.10.0.2"); empty
#                       when the set or the table is absent
# nft_elem_timeout NS SET VALUE   the element's timeout in seconds (0: none)
# nsd_mark ID / nsd_since ID / nsd_log_has ID ERE
#                       daemon ID's log lines after the mark (ERE: grep -iE)
# ping_ab [N]           lan-b pings lan-a's host N times (2), 0.2 s apart
# serial_of CRT         a certificate's serial, lower-case hex
# wait_until SECONDS CMD...       polls CMD every 0.1 s; 0 once it succeeds

TOPO_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
declare -F tap_result >/dev/null || . "$TOPO_DIR/../lib/tap.sh"
declare -F softhsm_find_module >/dev/null || . "$TOPO_DIR/../lib/softhsm.sh"
if [ -z "${MTLSGW:-}" ]; then
    MTLSGW=$(readlink -f "${1:-}")
    MTLSGWD=$(readlink -f "${2:-}")
fi

NS_HUB=mtg-hub-$$
NS_SPOKE=mtg-spoke-$$
NS_LANA=mtg-lana-$$
NS_LANB=mtg-lanb-$$
NS_OUT=mtg-out-$$
TOPO_NS="$NS_HUB $NS_SPOKE $NS_LANA $NS_LANB $NS_OUT"

HUB_WAN=192.168.50.1
SPOKE_WAN=192.168.50.2
LANA_NET=10.10.0.0/24
LANA_GW=10.10.0.1
LANA_HOST=10.10.0.2
LANB_NET=10.20.0.0/24
LANB_GW=10.20.0.1
LANB_HOST=10.20.0.2
OUT_GW=192.168.51.1
OUT_HOST=192.168.51.2
TUN_POOL=10.99.0.0/24
TUN_PORT=4433
MGMT_PORT=8443
EST_PORT=8445

hub() { ip netns exec "$NS_HUB" "$@"; }
spoke() { ip netns exec "$NS_SPOKE" "$@"; }
lana() { ip netns exec "$NS_LANA" "$@"; }
lanb() { ip netns exec "$NS_LANB" "$@"; }
out() { ip netns exec "$NS_OUT" "$@"; }

wait_until() { # seconds cmd...
    local deadline
    deadline=$(($(date +%s%N) + ${1%.*} * 1000000000))
    shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$(date +%s%N)" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

# ---- a script's start and end ----------------------------------------------
topo_need() { # tool...
    local tool
    [ "$(id -u)" = 0 ] || { echo "1..0 # SKIP namespaces and TUN devices need root"; exit 77; }
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
    done
}

PINGPID=
LOCAL_PIDS=""

topo_cleanup() {
    local p
    declare -F topo_cleanup_more >/dev/null && topo_cleanup_more
    [ -n "$PINGPID" ] && kill "$PINGPID" 2>/dev/null
    for p in $LOCAL_PIDS; do kill "$p" 2>/dev/null; done
    nsd_stop_all
    wait 2>/dev/null
    topo_down
    [ -n "${KEEP_LOGS:-}" ] && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null
    if [ -n "${MTLSGW_TEST_KEEP:-}" ]; then
        echo "# kept $T" >&2
    else
        rm -rf "$T"
    fi
}

topo_temp() { # name
    T=$(mktemp -d "/tmp/mtlsgw-$1.XXXXXX")
    chmod 755 "$T"
    trap topo_cleanup EXIT
    trap 'exit 1' INT TERM
}

topo_up_or_bail() {
    topo_up
    case $? in
    0) ;;
    77) echo "1..0 # SKIP cannot create network namespaces"; exit 77 ;;
    *) echo "Bail out! the topology could not be made"; exit 1 ;;
    esac
}

# A veth pair between two namespaces, made directly inside them.
topo_link() { # ns1 if1 addr1 ns2 if2 addr2
    ip -n "$1" link add "$2" type veth peer name "$5" netns "$4" &&
        ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up &&
        ip -n "$4" addr add "$6" dev "$5" && ip -n "$4" link set "$5" up
}

topo_up() {
    local ns
    ip netns add "$NS_HUB" 2>/dev/null || return 77
    for ns in $NS_SPOKE $NS_LANA $NS_LANB $NS_OUT; do
        ip netns add "$ns" || return 1
    done
    for ns in $TOPO_NS; do
        ip -n "$ns" link set lo up || return 1
    done
    topo_link "$NS_LANA" va "$LANA_HOST/24" "$NS_HUB" va "$LANA_GW/24" &&
        topo_link "$NS_HUB" wan "$HUB_WAN/24" "$NS_SPOKE" wan "$SPOKE_WAN/24" &&
        topo_link "$NS_SPOKE" vb "$LANB_GW/24" "$NS_LANB" vb "$LANB_HOST/24" &&
        topo_link "$NS_HUB" vo "$OUT_GW/24" "$NS_OUT" vo "$OUT_HOST/24" || return 1
    ip -n "$NS_LANA" route add default via "$LANA_GW" &&
        ip -n "$NS_LANB" route add default via "$LANB_GW" &&
        ip -n "$NS_OUT" route add default via "$OUT_GW" || return 1
    hub sysctl -qw net.ipv4.ip_forward=1 && spoke sysctl -qw net.ipv4.ip_forward=1 || return 1
    # IPv6 on the LANs only when a test asks for it (LANA6_NET/LANB6_NET set
    # before topo_up): ::1 the router, ::2 the host, no DAD wait.
    if [ -n "${LANA6_NET:-}" ]; then
        lana ip addr add "${LANA6_NET%::/*}::2/64" dev va nodad &&
            hub ip addr add "${LANA6_NET%::/*}::1/64" dev va nodad &&
            lanb ip addr add "${LANB6_NET%::/*}::2/64" dev vb nodad &&
            spoke ip addr add "${LANB6_NET%::/*}::1/64" dev vb nodad &&
            lana ip -6 route add default via "${LANA6_NET%::/*}::1" &&
            lanb ip -6 route add default via "${LANB6_NET%::/*}::1" &&
            hub sysctl -qw net.ipv6.conf.all.forwarding=1 &&
            spoke sysctl -qw net.ipv6.conf.all.forwarding=1 || return 1
    fi
}

# Whatever still runs in our namespaces goes first: a process a test started
# through a shell function in the background (its $! is the subshell's) would
# otherwise outlive the test, in a namespace nobody can see any more.
topo_down() {
    local ns pids
    for ns in $TOPO_NS; do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    return 0
}

# ---- mtlsgw: tokens, configs, CA, peers ------------------------------------
DUSER=mtlsgw
getent passwd "$DUSER" >/dev/null || DUSER=root
HUB_PIN=hub-pin-0001
SPK_PIN=spk-pin-0001

# $T/ID/ holds a token dir, its softhsm2.conf, the PIN, the pki dir and the
# control socket of one daemon (or console); each daemon its own token.
mtg_node() { # id token-label pin
    local d=$T/$1
    mkdir -p "$d/tokens" "$d/run"
    chmod 755 "$d"
    chmod 700 "$d/run"
    cat >"$d/softhsm2.conf" <<CONF
directories.tokendir = $d/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
    SOFTHSM2_CONF=$d/softhsm2.conf softhsm2-util --init-token --free --label "$2" \
        --so-pin "so-$3" --pin "$3" >/dev/null || return 1
    printf '%s\n' "$3" >"$d/pin"
    chmod 600 "$d/pin"
    softhsm_give_to "$DUSER" "$d/tokens"
    softhsm_give_to "$DUSER" "$d/run"
    chown "$DUSER:" "$d/pin" 2>/dev/null
    {
        printf '[token]\nuri = pkcs11:token=%s\nmodule = %s\npin-file = %s\n' \
            "$2" "$MODULE" "$d/pin"
        printf '[pki]\ndir = %s\n' "$d/pki"
        printf '[daemon]\nuser = %s\ncontrol-socket = %s\n' "$DUSER" "$d/run/control.sock"
    } >"$d/$1.conf"
}

# The console of node ID, with its own token.
mtg_at() { # id args...
    local id=$1
    shift
    SOFTHSM2_CONF=$T/$id/softhsm2.conf "$MTLSGW" -c "$T/$id/$id.conf" "$@"
}

# A device node (no init): its key made on its token, the CSR signed by CA
# node CA_ID as NAME with ROLE, the certificate and hub CA put where
# [uplink] looks by default.
mtg_device() { # id ca-id name role [enroll args...]
    local id=$1 ca=$2 name=$3 role=$4 pki=$T/$1/pki
    shift 4
    mkdir -p "$pki"
    softhsm_give_to "$DUSER" "$pki"
    mtg_at "$id" csr --cn "$name" --out "$T/$id/$name.csr" >/dev/null &&
        mtg_at "$ca" enroll "$name" --role "$role" --csr "$T/$id/$name.csr" \
            --out "$T/$id/$name.crt" "$@" >/dev/null &&
        cp "$T/$id/$name.crt" "$pki/device.crt" &&
        cp "$T/hub/pki/ca.crt" "$pki/hub-ca.crt" || return 1
    softhsm_give_to "$DUSER" "$pki"
}

# An uplink section towards the hub, accepting the routes to lan-a (IPv4,
# and IPv6 when the test set LANA6_NET): without accept-routes a spoke
# takes no route from its hub but the hub's tunnel address.
mtg_uplink() { # id
    printf '[uplink hub]\nserver = %s:%s\naccept-routes = %s\n' "$HUB_WAN" "$TUN_PORT" \
        "$LANA_NET${LANA6_NET:+ $LANA6_NET}" >>"$T/$1/$1.conf"
}

# The hub's token and config: [tunnel] on the WAN side, routes to lan-a,
# then the lines given. No CA yet (init is the caller's).
mtg_hub_node() { # [hub config lines...]
    MODULE=$(softhsm_find_module) || return 77
    mtg_node hub hub "$HUB_PIN" || return 1
    {
        printf '[tunnel]\nlisten = %s:%s\npool = %s\nroutes = %s\n' \
            "$HUB_WAN" "$TUN_PORT" "$TUN_POOL" "$LANA_NET${LANA6_NET:+ $LANA6_NET}"
        [ $# -eq 0 ] || printf '%s\n' "$@"
    } >>"$T/hub/hub.conf"
}

# The spoke's token and config, and a pki dir its daemon may write: what a
# device has before it joins.
mtg_spoke_node() {
    mtg_node spoke spk "$SPK_PIN" && mkdir -p "$T/spoke/pki" &&
        softhsm_give_to "$DUSER" "$T/spoke/pki"
}

# hub: CA and gateway key on token "hub", [tunnel] on the WAN side,
# management for lan-a. spoke: token "spk", spoke1 (tunnel, lan-b).
# Extra lines for the hub's config come as arguments.
mtg_fixture() { # [hub config lines...]
    mtg_hub_node "$@" || return
    mtg_at hub init --cn hub1 --host "$HUB_WAN" --host "$LANA_GW" \
        ${HUB_EXTRA_HOST:+--host "$HUB_EXTRA_HOST"} >/dev/null || return 1
    mtg_node spoke spk "$SPK_PIN" || return 1
    mtg_uplink spoke
    mtg_device spoke hub spoke1 tunnel --network "$LANB_NET" \
        ${LANB6_NET:+--network "$LANB6_NET"} || return 1
}

mtg_fixture_or_bail() { # [hub config lines...]
    mtg_fixture "$@"
    case $? in
    0) ;;
    77) echo "1..0 # SKIP no SoftHSM module"; exit 77 ;;
    *) echo "Bail out! fixture: tokens, CA or spoke1 could not be made"; exit 1 ;;
    esac
}

# A peer of the hub whose key is made off the token, as an admin hands it
# out (a .p12), unpacked for curl and python's ssl.
mtg_p12_peer() { # name role [enroll args...]
    local name=$1 role=$2
    shift 2
    printf 'p12-password-1\n' >"$T/pw"
    mtg_at hub enroll "$name" --role "$role" --p12 "$T/$name.p12" --password-file "$T/pw" \
        "$@" >/dev/null &&
        openssl pkcs12 -in "$T/$name.p12" -passin "file:$T/pw" -nokeys -clcerts \
            -out "$T/$name.crt" 2>/dev/null &&
        openssl pkcs12 -in "$T/$name.p12" -passin "file:$T/pw" -nocerts -nodes \
            -out "$T/$name.key" 2>/dev/null
}

spoke_console() { # args...
    SOFTHSM2_CONF=$T/spoke/softhsm2.conf spoke "$MTLSGW" -c "$T/spoke/spoke.conf" "$@"
}

# ---- daemons in namespaces ---------------------------------------------------
declare -A NSD_PID
NSD_PIDS_ALL=""

nsd_start() { # id ns conf
    local id=$1 ns=$2 conf=$3
    SOFTHSM2_CONF=$(dirname "$conf")/softhsm2.conf \
        ip netns exec "$ns" "$MTLSGWD" -c "$conf" -f >>"$T/$id.log" 2>&1 &
    NSD_PID[$id]=$!
    NSD_PIDS_ALL="$NSD_PIDS_ALL $!"
}

# The pids of a daemon: its parent (ip netns exec execs mtlsgwd) and every
# process it forked.
nsd_pids() { # id
    local p=${NSD_PID[$1]:-}
    [ -n "$p" ] || return 0
    echo "$p"
    pgrep -P "$p" 2>/dev/null
}

nsd_alive() { [ -n "${NSD_PID[$1]:-}" ] && kill -0 "${NSD_PID[$1]}" 2>/dev/null; }

nsd_stop() { # id
    local p=${NSD_PID[$1]:-} i
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL $(nsd_pids "$1") 2>/dev/null
    wait "$p" 2>/dev/null
    NSD_PID[$1]=
}

nsd_kill9() { # id
    local p=${NSD_PID[$1]:-}
    [ -n "$p" ] || return 0
    kill -KILL $(nsd_pids "$1") 2>/dev/null
    wait "$p" 2>/dev/null
    NSD_PID[$1]=
}

# Every daemon this run started, whatever became of it (for the traps).
nsd_stop_all() {
    local id p
    for id in "${!NSD_PID[@]}"; do nsd_stop "$id"; done
    for p in $NSD_PIDS_ALL; do kill -KILL "$p" 2>/dev/null; done
    return 0
}

# A daemon's log ($T/ID.log) since the mark.
declare -A NSD_MARK
nsd_mark() { NSD_MARK[$1]=$(wc -l <"$T/$1.log"); }
nsd_since() { tail -n +"$((${NSD_MARK[$1]:-0} + 1))" "$T/$1.log"; }
nsd_log_has() { nsd_since "$1" | grep -qiE -- "$2"; } # id ere

ping_ab() { lanb ping -c "${1:-2}" -i 0.2 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'; }

# ---- reading the kernel ------------------------------------------------------
mtg_ifaces() { # ns
    ip -n "$1" -j link show 2>/dev/null | python3 -c 'import json, sys
for l in json.load(sys.stdin):
    if l["ifname"].startswith("mtg"):
        print(l["ifname"])'
}

NFT_ELEMS_PY='import json, sys
def fmt(v):
    if isinstance(v, dict):
        if "elem" in v:
            return fmt(v["elem"]["val"])
        if "concat" in v:
            return " . ".join(fmt(x) for x in v["concat"])
        if "prefix" in v:
            return "%s/%s" % (v["prefix"]["addr"], v["prefix"]["len"])
        if "range" in v:
            return "-".join(fmt(x) for x in v["range"])
    return str(v)
def timeout(v):
    return v["elem"].get("timeout", 0) if isinstance(v, dict) and "elem" in v else 0
try:
    doc = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
for o in doc.get("nftables", []):
    for e in o.get("set", {}).get("elem", []):
        if len(sys.argv) > 1:
            if fmt(e) == sys.argv[1]:
                print(timeout(e))
        else:
            print(fmt(e))'

nft_elems() { # ns set
    ip netns exec "$1" nft -j list set inet mtlsgw "$2" 2>/dev/null | python3 -c "$NFT_ELEMS_PY"
}

nft_elem_timeout() { # ns set value
    ip netns exec "$1" nft -j list set inet mtlsgw "$2" 2>/dev/null |
        python3 -c "$NFT_ELEMS_PY" "$3"
}
