# tests/bench/handshake-lib.sh: what the handshake, idle and slowtoken
# benchmarks share. Source it from bash with `top` (the source tree) and
# `build` (a build dir) set.
#
#   hb_init NAME          temp dir $T, cleanup trap, tools built, packages
#   hb_fixture [MODULE]   a SoftHSM token "gw" with the CA and the gateway key
#                         (ECDSA P-256, label mtlsgw-gateway) made by `mtlsgw
#                         init`, the admin peer bench1 ($T/bench1.crt/.key)
#                         MODULE: what the servers load (default SoftHSM)
#   srv_start SYS PORT    mtlsgwd | nginx | gnutls-serv | stunnel (and
#                         mtlsgwd-before: $MTLSGWD_BEFORE, another build), all with
#                         the same key (on the token), certificate and CA,
#                         client certificates required; waits until a
#                         handshake passes. SRV_PID[SYS] is its top process
#   srv_stop SYS
#   srv_rss_kib SYS       VmRSS summed over the server's processes
#   srv_cpu_ticks SYS     their utime + stime in clock ticks
#   median N...           the median of the numbers given
#   hs SYS CONC SECS MODE hsload against a running server
#
# The PIN is a throwaway one made for the run; it reaches the servers through
# a pin file (mtlsgwd), GNUTLS_PIN (gnutls-serv) and the temp configs of
# nginx and stunnel, all inside $T, which goes at exit.

HB_NAME=bench
T=
DUSER=mtlsgw
getent passwd "$DUSER" >/dev/null || DUSER=root
declare -A SRV_PID SRV_PORT
HB_PIDS=""

die() { echo "bench/$HB_NAME: $*" >&2; exit 1; }
note() { echo "bench/$HB_NAME: $*" >&2; }

hb_cleanup() {
    local s p
    for s in "${!SRV_PID[@]}"; do srv_stop "$s"; done
    for p in $HB_PIDS; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${BENCH_KEEP:-}" ]; then
        note "kept $T"
    elif [ -n "$T" ]; then
        rm -rf "$T"
    fi
}

hb_init() { # name
    HB_NAME=$1
    [ "$(id -u)" = 0 ] || die "run as root (the daemon drops to its user; ulimit -n)"
    MTLSGW=$(readlink -f "$build/gateway/mtlsgw")
    MTLSGWD=$(readlink -f "$build/gateway/mtlsgwd")
    [ -x "$MTLSGWD" ] || die "$build/gateway/mtlsgwd not built (meson setup $build && ninja -C $build)"
    ninja -C "$build" tests/bench/hsload tests/bench/hssign tests/bench/libslowtoken.so \
        >/dev/null || die "cannot build the bench tools in $build"
    HSLOAD=$build/tests/bench/hsload
    HSSIGN=$build/tests/bench/hssign
    SLOWTOKEN=$(readlink -f "$build/tests/bench/libslowtoken.so")
    "$top/dev/deps" base bench || die "dev/deps base bench failed"
    . "$top/tests/lib/softhsm.sh"
    # As many descriptors as the hard limit allows (10,000 idle sessions need
    # as many on each side; stunnel needs two per session).
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    NOFILE=$(ulimit -n)
    T=$(mktemp -d "/tmp/mtlsgw-bench-$HB_NAME.XXXXXX")
    chmod 755 "$T"
    trap hb_cleanup EXIT
    trap 'exit 1' INT TERM
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

hb_fixture() { # [module]
    local softhsm
    softhsm=$(softhsm_find_module) || die "SoftHSM module not found"
    MODULE=${1:-$softhsm}
    export SLOWTOKEN_MODULE=$softhsm
    softhsm_setup "$T"
    PIN=bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
    softhsm_token gw "$PIN" || die "cannot make the token"
    printf '%s\n' "$PIN" >"$T/gw.pin"
    chmod 600 "$T/gw.pin"
    mkdir -p "$T/run" "$T/pki"
    chmod 700 "$T/run"
    P=$T/pki
    KEYURI="pkcs11:token=gw;object=mtlsgw-gateway;type=private"
    cat >"$T/console.conf" <<EOF
[token]
uri = pkcs11:token=gw
module = $softhsm
pin-file = $T/gw.pin
[pki]
dir = $P
[daemon]
user = $DUSER
control-socket = $T/run/nobody.sock
EOF
    softhsm_give_to "$DUSER" "$T/tokens"
    softhsm_give_to "$DUSER" "$T/run"
    chown "$DUSER:" "$T/gw.pin" "$P"
    "$MTLSGW" -c "$T/console.conf" init --cn bench-gw --host 127.0.0.1 --host localhost \
        >"$T/init.log" 2>&1 || die "mtlsgw init failed: $(cat "$T/init.log")"
    certtool --generate-privkey --key-type ecdsa --outfile "$T/bench1.key" 2>/dev/null &&
        printf 'cn = bench1\n' >"$T/bench1.tmpl" &&
        certtool --generate-request --no-text --load-privkey "$T/bench1.key" \
            --template "$T/bench1.tmpl" --outfile "$T/bench1.csr" 2>/dev/null &&
        "$MTLSGW" -c "$T/console.conf" enroll bench1 --role admin --csr "$T/bench1.csr" \
            --out "$T/bench1.crt" >"$T/enroll.log" 2>&1 ||
        die "cannot enroll the bench peer: $(cat "$T/enroll.log")"
    # Everything is readable by the servers' users (nginx workers, stunnel).
    chmod 644 "$T/bench1.key"
    # The gateway certificate on the token too, next to its key: stunnel's
    # engine support takes the certificate from the engine as well.
    GNUTLS_PIN=$PIN p11tool --provider "$softhsm" --login --write --load-certificate \
        "$P/gateway.crt" --label mtlsgw-gateway "pkcs11:token=gw" >"$T/p11tool.log" 2>&1 ||
        die "cannot store the gateway certificate on the token: $(cat "$T/p11tool.log")"
    softhsm_give_to "$DUSER" "$T/tokens"
    # OpenSSL's pkcs11 engine (libp11) for nginx and stunnel.
    cat >"$T/openssl.cnf" <<EOF
openssl_conf = conf_init
[conf_init]
engines = engines
[engines]
pkcs11 = p11
[p11]
engine_id = pkcs11
MODULE_PATH = $MODULE
PIN = $PIN
init = 1
EOF
    chmod 600 "$T/openssl.cnf"
}

# ---- the servers -------------------------------------------------------------

mtlsgwd_conf() { # port
    cat <<EOF
[token]
uri = pkcs11:token=gw
module = $MODULE
pin-file = $T/gw.pin
[pki]
dir = $P
[daemon]
user = $DUSER
control-socket = $T/run/control.sock
log-level = warn
ban-threshold = 1000000
[management]
listen = 127.0.0.1:$1
max-sessions = 30000
max-per-source = 30000
handshake-timeout = 60
idle-timeout = 3600
EOF
}

nginx_conf() { # port
    cat <<EOF
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile $NOFILE;
user $DUSER;
pid $T/nginx.pid;
error_log $T/nginx.err error;
env SOFTHSM2_CONF;
env SLOWTOKEN_MODULE;
env SLOWTOKEN_MS;
events { worker_connections 30000; }
http {
    access_log off;
    client_body_temp_path $T/nginx-tmp;
    proxy_temp_path $T/nginx-tmp;
    fastcgi_temp_path $T/nginx-tmp;
    uwsgi_temp_path $T/nginx-tmp;
    scgi_temp_path $T/nginx-tmp;
    keepalive_timeout 3600s;
    keepalive_requests 1000000;
    client_header_timeout 3600s;
    server {
        listen 127.0.0.1:$1 ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate $P/gateway.crt;
        ssl_certificate_key "engine:pkcs11:$KEYURI";
        ssl_client_certificate $P/ca.crt;
        ssl_verify_client on;
        ssl_session_tickets on;
        location / { return 200 "{}\n"; }
    }
}
EOF
}

stunnel_conf() { # port sink-port
    cat <<EOF
foreground = yes
pid =
debug = err
setuid = $DUSER
engine = pkcs11
engineCtrl = MODULE_PATH:$MODULE
engineCtrl = PIN:$PIN
[bench]
accept = 127.0.0.1:$1
connect = 127.0.0.1:$2
cert = pkcs11:token=gw;object=mtlsgw-gateway;type=cert
engineId = pkcs11
key = $KEYURI
CAfile = $P/ca.crt
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
EOF
}

# A TCP sink behind stunnel: accepts and holds connections, reads and drops.
sink_start() {
    SINK_PORT=$(free_port)
    python3 - "$SINK_PORT" <<'PY' &
import selectors, socket, sys
sel = selectors.DefaultSelector()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(4096)
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ)
while True:
    for k, _ in sel.select():
        if k.fileobj is ls:
            try:
                c, _ = ls.accept()
            except BlockingIOError:
                continue
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
        else:
            try:
                d = k.fileobj.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(k.fileobj)
                k.fileobj.close()
PY
    SINK_PID=$!
    HB_PIDS="$HB_PIDS $SINK_PID"
}

# One handshake as the bench peer: the readiness probe.
srv_probe() { # port
    "$HSLOAD" 127.0.0.1 "$1" "$P/ca.crt" "$T/bench1.crt" "$T/bench1.key" 1 0 once \
        >/dev/null 2>&1
}

srv_start() { # sys port
    local sys=$1 port=$2 i
    SRV_PORT[$sys]=$port
    case $sys in
    mtlsgwd)
        mtlsgwd_conf "$port" >"$T/mtlsgwd.conf"
        "$MTLSGWD" -c "$T/mtlsgwd.conf" -f >>"$T/mtlsgwd.log" 2>&1 &
        ;;
    mtlsgwd-before)
        # Another build of the daemon (MTLSGWD_BEFORE), for before/after
        # figures of a change in the same run.
        [ -x "${MTLSGWD_BEFORE:-}" ] || die "mtlsgwd-before needs MTLSGWD_BEFORE=path/to/mtlsgwd"
        mtlsgwd_conf "$port" | sed "s|control\\.sock|control-before.sock|" >"$T/mtlsgwd-before.conf"
        "$MTLSGWD_BEFORE" -c "$T/mtlsgwd-before.conf" -f >>"$T/mtlsgwd-before.log" 2>&1 &
        ;;
    nginx)
        mkdir -p "$T/nginx-tmp"
        nginx_conf "$port" >"$T/nginx.conf"
        OPENSSL_CONF=$T/openssl.cnf nginx -c "$T/nginx.conf" -p "$T" >>"$T/nginx.log" 2>&1 &
        ;;
    gnutls-serv)
        GNUTLS_PIN=$PIN gnutls-serv -p "$port" --provider "$MODULE" --x509keyfile "$KEYURI" \
            --x509certfile "$P/gateway.crt" --x509cafile "$P/ca.crt" --require-client-cert \
            --verify-client-cert --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.3' \
            >/dev/null 2>>"$T/gnutls-serv.log" &
        ;;
    stunnel)
        [ -n "${SINK_PID:-}" ] || sink_start
        stunnel_conf "$port" "$SINK_PORT" >"$T/stunnel.conf"
        stunnel4 "$T/stunnel.conf" >>"$T/stunnel.out" 2>&1 &
        ;;
    *) die "unknown server $sys" ;;
    esac
    SRV_PID[$sys]=$!
    for i in $(seq 100); do
        kill -0 "${SRV_PID[$sys]}" 2>/dev/null || break
        srv_probe "$port" && return 0
        sleep 0.1
    done
    note "$sys did not start; its log:"
    tail -n 20 "$T/$sys.log" "$T/$sys.out" "$T/$sys.err" "$T/stunnel.log" 2>/dev/null >&2
    unset "SRV_PID[$sys]"
    return 1
}

srv_stop() { # sys
    local pid=${SRV_PID[$1]:-} i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "SRV_PID[$1]"
}

# The process and its descendants.
proc_tree() { # pid
    local p=$1 c
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do proc_tree "$c"; done
}

srv_rss_kib() { # sys
    local p sum=0 r
    for p in $(proc_tree "${SRV_PID[$1]}"); do
        r=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null)
        sum=$((sum + ${r:-0}))
    done
    echo "$sum"
}

# utime + stime (clock ticks) of the server's processes, all threads.
srv_cpu_ticks() { # sys
    local p t=0 f
    for p in $(proc_tree "${SRV_PID[$1]}"); do
        f=$(cat /proc/"$p"/stat 2>/dev/null) || continue
        f=${f##*) }
        # fields 14 and 15 of stat: the 12th and 13th after "(comm) "
        set -- $f
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

hs() { # sys conc secs mode
    "$HSLOAD" 127.0.0.1 "${SRV_PORT[$1]}" "$P/ca.crt" "$T/bench1.crt" "$T/bench1.key" \
        "$2" "$3" "$4" 2>>"$T/hsload.err"
}

# key=value out of an hsload line
field() { # line key
    sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
        if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
        else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { # a b
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "n/a" }'
}

# The systems in round R (1-based), the first one moving each round.
rotate() { # r sys...
    local r=$1 n i
    shift
    n=$#
    local -a a=("$@")
    for ((i = 0; i < n; i++)); do printf '%s ' "${a[$(((i + r - 1) % n))]}"; done
}
