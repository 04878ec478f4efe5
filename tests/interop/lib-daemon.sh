# tests/interop/lib-daemon.sh: fixtures for the daemon suite. A script
# sources it with its own arguments, the paths to mtlsgw and mtlsgwd:
#
#   set -u
#   here=$(dirname "$(readlink -f "$0")")
#   . "$here/lib-daemon.sh" "$@"      # MTLSGW, MTLSGWD; tap.sh, softhsm.sh
#   dmn_begin NAME TOOL...             # or dmn_need + dmn_temp (T)
#
# (MTLSGW already set, or tap.sh/softhsm.sh already sourced: left as they are.)
#
#   token "gw"   the gateway's CA and key   (gw.conf, pki in $P)
#   token "ot"   a foreign CA with the same CN (other.conf)
#   token "ad"   admin2's own token: its key never leaves it; curl uses it
#                through OpenSSL's pkcs11 engine (libengine-pkcs11-openssl)
#
# Peers, each as $T/NAME.crt + $T/NAME.key (admin2: $T/admin2.crt + token):
#   admin1 admin, mon1 monitor, tun1 tunnel   (key files, CSR by certtool)
#   vica, vicb, vicc  monitors to be revoked while connected
#   gone1             revoked before the daemon starts
#   foreign           CN admin1, role admin, issued by the foreign CA
#   expired, future, noclient, stranger, mismatch: made with certtool,
#                     signed by the real CA key through its token URI
#
# dmn_need TOOL...    skips (exit 77) unless run as root with every TOOL
# dmn_temp NAME       T=/tmp/mtlsgw-NAME.XXXXXX (mode 755) and the traps: at
#                     exit (INT, TERM, HUP too) the script's dmn_cleanup_more
#                     when defined, held connections, LOCAL_PIDS, the daemon,
#                     then T (kept and named with MTLSGW_TEST_KEEP=1)
# dmn_fixture         everything above, and gw.conf with a free port
# dmn_fixture_or_bail dmn_fixture; skips without SoftHSM, bails out otherwise
# dmn_begin NAME TOOL...  dmn_need, dmn_temp and dmn_fixture_or_bail
# dmn_start [CONF]    starts mtlsgwd -f in the background, waits until an
#                     admin GET answers; DPID, log in $DLOG
# dmn_stop            SIGTERM, then SIGKILL after 5 s
# req PEER METHOD PATH [BODYFILE]
#                     curl as PEER; sets HTTP (000 when no answer), CURL_RC,
#                     BODY, HDRS
# log_mark / log_since  the daemon's log lines written after the mark

DMN_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
declare -F tap_result >/dev/null || . "$DMN_DIR/../lib/tap.sh"
declare -F softhsm_find_module >/dev/null || . "$DMN_DIR/../lib/softhsm.sh"
if [ -z "${MTLSGW:-}" ]; then
    MTLSGW=$(readlink -f "${1:-}")
    MTLSGWD=$(readlink -f "${2:-}")
fi

# The system's python3 (dev/deps installs it): a pyenv shim earlier in PATH
# costs a third of a second per call, and the suite makes hundreds.
if [ -x /usr/bin/python3 ]; then
    python3() { /usr/bin/python3 "$@"; }
fi

DUSER=mtlsgw
getent passwd "$DUSER" >/dev/null || DUSER=root
PIN=7c1e-gw-pin
ADPIN=admin2-pin-0
LOCAL_PIDS=""
HTTP=000
CURL_RC=0
BODY=
HDRS=

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkconf() { # file token pin-file pki-dir [extra lines...]
    local f=$1 tok=$2 pin=$3 pki=$4
    shift 4
    {
        printf '[token]\nuri = pkcs11:token=%s\nmodule = %s\npin-file = %s\n' \
            "$tok" "$MODULE" "$pin"
        printf '[pki]\ndir = %s\n' "$pki"
        # The suite refuses dozens of handshakes from 127.0.0.1 on purpose: no
        # ban here, except where a test sets its own threshold.
        printf '[daemon]\nuser = %s\ncontrol-socket = %s\nban-threshold = 100000\n' \
            "$DUSER" "$T/run/control.sock"
        [ $# -gt 0 ] && printf '%s\n' "$@"
    } >"$f"
}

# The daemon's config: tight limits so the suite can reach them quickly.
gw_conf() { # file [overrides of the [management] section...]
    local f=$1
    shift
    mkconf "$f" gw "$T/gw.pin" "$P"
    {
        printf '[management]\nlisten = 127.0.0.1:%s\n' "$PORT"
        if [ $# -gt 0 ]; then
            printf '%s\n' "$@"
        else
            printf 'handshake-timeout = 2\nmax-body = 1024\n'
        fi
    } >>"$f"
}

hub() { "$MTLSGW" -c "$T/gw.conf" "$@"; }
# The console without a channel to the daemon: changes the registry and CRL
# without sending "reload", so the suite can tell SIGHUP's effect apart.
hub_quiet() { "$MTLSGW" -c "$T/quiet.conf" "$@"; }

# A key in a file and a CSR for it, by GnuTLS' certtool (no mtlsgw involved).
keycsr() { # name
    certtool --generate-privkey --key-type ecdsa --outfile "$T/$1.key" 2>/dev/null &&
        printf 'cn = %s\n' "$1" >"$T/$1.csr.tmpl" &&
        certtool --generate-request --no-text --load-privkey "$T/$1.key" \
            --template "$T/$1.csr.tmpl" --outfile "$T/$1.csr" 2>/dev/null
}

enroll_file_peer() { # name role
    keycsr "$1" && hub enroll "$1" --role "$2" --csr "$T/$1.csr" --out "$T/$1.crt"
}

# Certificates the console would never make, signed by the real CA key.
mkcert() { # name template-lines...
    local name=$1
    shift
    printf '%s\n' "$@" >"$T/$name.tmpl"
    cp "$T/x.key" "$T/$name.key"
    GNUTLS_PIN=$PIN certtool --generate-certificate --load-privkey "$T/$name.key" \
        --load-ca-privkey "pkcs11:token=gw;object=mtlsgw-ca;type=private" \
        --load-ca-certificate "$P/ca.crt" --template "$T/$name.tmpl" \
        --outfile "$T/$name.crt" >/dev/null 2>&1
}

# OpenSSL config loading the pkcs11 engine on the SoftHSM module only.
engine_conf() {
    cat >"$T/openssl-p11.cnf" <<CNF
openssl_conf = conf_init
[conf_init]
engines = engines
[engines]
pkcs11 = p11
[p11]
engine_id = pkcs11
MODULE_PATH = $MODULE
init = 0
CNF
}

dmn_fixture() {
    MODULE=$(softhsm_find_module) || return 77
    softhsm_setup "$T"
    softhsm_token gw "$PIN" && softhsm_token ot other-pin-0 && softhsm_token ad "$ADPIN" ||
        return 1
    printf '%s\n' "$PIN" >"$T/gw.pin"
    printf 'other-pin-0\n' >"$T/other.pin"
    printf '%s\n' "$ADPIN" >"$T/ad.pin"
    printf 'wrong-pin-00\n' >"$T/wrong.pin"
    chmod 600 "$T"/*.pin
    mkdir -p "$T/run"
    chmod 700 "$T/run"
    P=$T/gw-pki
    PORT=$(free_port)
    mkconf "$T/other.conf" ot "$T/other.pin" "$T/other-pki"
    mkconf "$T/ad.conf" ad "$T/ad.pin" "$T/ad-pki"
    gw_conf "$T/gw.conf"
    sed "s|^control-socket = .*|control-socket = $T/run/nobody-listens.sock|" \
        "$T/gw.conf" >"$T/quiet.conf"
    softhsm_give_to "$DUSER" "$T/tokens"
    softhsm_give_to "$DUSER" "$T/run"
    chown "$DUSER:" "$T"/*.pin 2>/dev/null

    hub init --cn gw1 --host 127.0.0.1 --host localhost >/dev/null 2>&1 || return 1
    "$MTLSGW" -c "$T/other.conf" init --cn gw1 --host 127.0.0.1 >/dev/null 2>&1 || return 1
    enroll_file_peer admin1 admin >/dev/null 2>&1 || return 1
    enroll_file_peer mon1 monitor >/dev/null 2>&1 || return 1
    enroll_file_peer tun1 tunnel >/dev/null 2>&1 || return 1
    for p in vica vicb vicc; do
        enroll_file_peer "$p" monitor >/dev/null 2>&1 || return 1
    done
    enroll_file_peer gone1 monitor >/dev/null 2>&1 || return 1
    # No daemon runs yet: revoked, not acknowledged (exit 3, docs/console.md).
    hub revoke gone1 --reason keyCompromise >/dev/null 2>&1
    [ $? = 3 ] || return 1
    # A peer of the foreign CA with the admin's very name and role.
    keycsr foreign &&
        "$MTLSGW" -c "$T/other.conf" enroll admin1 --role admin --csr "$T/foreign.csr" \
            --out "$T/foreign.crt" >/dev/null 2>&1 || return 1
    # admin2's key is made on its own token; only the CSR leaves it.
    "$MTLSGW" -c "$T/ad.conf" csr --cn admin2 --out "$T/admin2.csr" >/dev/null 2>&1 &&
        hub enroll admin2 --role admin --csr "$T/admin2.csr" --out "$T/admin2.crt" \
            >/dev/null 2>&1 || return 1

    certtool --generate-privkey --key-type ecdsa --outfile "$T/x.key" 2>/dev/null
    mkcert expired 'cn = admin-old' 'tls_www_client' 'uri = urn:mtlsgw:role:admin' \
        'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2021-01-01 00:00:00"'
    mkcert future 'cn = admin-new' 'tls_www_client' 'uri = urn:mtlsgw:role:admin' \
        'activation_date = "2040-01-01 00:00:00"' 'expiration_date = "2041-01-01 00:00:00"'
    mkcert noclient 'cn = srv' 'tls_www_server' 'uri = urn:mtlsgw:role:admin' \
        'expiration_days = 30'
    mkcert stranger 'cn = stranger' 'tls_www_client' 'uri = urn:mtlsgw:role:admin' \
        'expiration_days = 30'
    # The serial of mon1 with the admin role written into the certificate.
    local mon_serial
    mon_serial=$(openssl x509 -in "$T/mon1.crt" -noout -serial | cut -d= -f2)
    mkcert mismatch 'cn = mon1' 'tls_www_client' 'uri = urn:mtlsgw:role:admin' \
        "serial = 0x$mon_serial" 'expiration_days = 30'
    engine_conf
    DLOG=$T/daemon.log
    : >"$DLOG"
}

dmn_fixture_or_bail() {
    dmn_fixture
    case $? in
    0) ;;
    77) echo "1..0 # SKIP no SoftHSM"; exit 77 ;;
    *) echo "Bail out! fixture: tokens, CA or peers could not be made"; exit 1 ;;
    esac
}

# ---- a script's start and end --------------------------------------------
dmn_need() { # tool...
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
    done
    [ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }
}

dmn_cleanup() {
    local id p
    declare -F dmn_cleanup_more >/dev/null && dmn_cleanup_more
    for id in "${!HOLD_W[@]}"; do hold_close "$id"; done
    for p in $LOCAL_PIDS; do kill "$p" 2>/dev/null; done
    dmn_stop
    wait 2>/dev/null
    if [ -n "${MTLSGW_TEST_KEEP:-}" ]; then
        echo "# kept $T" >&2
    else
        rm -rf "$T"
    fi
}

dmn_temp() { # name
    T=$(mktemp -d "/tmp/mtlsgw-$1.XXXXXX")
    chmod 755 "$T"
    trap dmn_cleanup EXIT
    # A suite stopped by meson's timeout or ^C still stops its daemon.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

dmn_begin() { # name tool...
    local name=$1
    shift
    dmn_need "$@"
    dmn_temp "$name"
    dmn_fixture_or_bail
}

# ---- the daemon --------------------------------------------------------
DPID=

dmn_start() { # [conf]
    local conf=${1:-$T/gw.conf} i
    "$MTLSGWD" -c "$conf" -f 2>>"$DLOG" >>"$DLOG" &
    DPID=$!
    for i in $(seq 100); do
        kill -0 "$DPID" 2>/dev/null || { DPID=; return 1; }
        req admin1 GET /api/v1/status
        [ "$HTTP" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

dmn_stop() {
    local i
    [ -n "$DPID" ] || return 0
    kill -TERM "$DPID" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
    DPID=
}

# Runs a daemon that is expected to refuse to start; prints its output and
# returns its exit status (124 when it was still running after 5 s).
dmn_try() { # conf
    timeout -k 2 5 "$MTLSGWD" -c "$1" -f 2>&1
}

# ---- clients -----------------------------------------------------------
# curl as PEER: a name with $T/NAME.crt and $T/NAME.key, "admin2" (key on its
# token, through the engine) or "-" (no client certificate).
req() { # peer method path [bodyfile]
    local peer=$1 m=$2 path=$3 data=${4:-}
    local -a a=(-sS --max-time 10 --cacert "$P/ca.crt" -X "$m"
        -o "$T/resp.body" -D "$T/resp.hdr" -w '%{http_code}')
    case "$peer" in
    -) ;;
    admin2)
        a+=(--engine pkcs11 --cert "$T/admin2.crt"
            --key-type ENG --key "pkcs11:token=ad;object=mtlsgw-device;type=private;pin-value=$ADPIN")
        ;;
    *) a+=(--cert "$T/$peer.crt" --key "$T/$peer.key") ;;
    esac
    [ -n "$data" ] && a+=(-H 'Content-Type: application/json' --data-binary "@$data")
    rm -f "$T/resp.body" "$T/resp.hdr"
    CURL_RC=0
    HTTP=$(OPENSSL_CONF=$T/openssl-p11.cnf curl "${a[@]}" "https://127.0.0.1:$PORT$path" \
        2>"$T/resp.err") || CURL_RC=$?
    BODY=$(cat "$T/resp.body" 2>/dev/null)
    HDRS=$(cat "$T/resp.hdr" 2>/dev/null)
}

# What the last req got, for failure details.
got() {
    printf 'HTTP %s, curl exit %s: %s\n%s' "$HTTP" "$CURL_RC" "$(cat "$T/resp.err" 2>/dev/null)" \
        "$BODY"
}

expect_http() { # code name
    if [ "$HTTP" = "$1" ]; then
        tap_result 0 "$2"
    else
        tap_result 1 "$2" "expected HTTP $1, got $(got)"
    fi
}

# Passes when the body of the last req is a JSON object whose "error" is a
# non-empty string.
expect_json_error() { # name
    if python3 -c 'import json, sys
e = json.loads(sys.argv[1])["error"]
assert isinstance(e, str) and e' "$BODY" 2>/dev/null; then
        tap_result 0 "$1"
    else
        tap_result 1 "$1" "expected a JSON {\"error\": ...}, got $(got)"
    fi
}

# python3 -c CODE with the last body as sys.argv[1] (and more args).
expect_json() { # name code [args...]
    local name=$1 code=$2 err
    shift 2
    if err=$(python3 -c "import json, sys
b = json.loads(sys.argv[1])
$code" "$BODY" "$@" 2>&1); then
        tap_result 0 "$name"
    else
        tap_result 1 "$name" "$err
got $(got)"
    fi
}

# ---- the daemon's log --------------------------------------------------
LOG_MARK=0
log_mark() { LOG_MARK=$(wc -l <"$DLOG"); }
log_since() { tail -n +"$((LOG_MARK + 1))" "$DLOG"; }

# Waits up to 2 s for N lines matching ERE (case-insensitive) after the mark.
log_wait() { # ere n
    local i c
    for i in $(seq 20); do
        c=$(log_since | grep -ciE -- "$1")
        [ "$c" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

expect_log_lines() { # ere n name
    local c
    log_wait "$1" "$2"
    sleep 0.1
    c=$(log_since | grep -ciE -- "$1")
    if [ "$c" = "$2" ]; then
        tap_result 0 "$3"
    else
        tap_result 1 "$3" "expected $2 log line(s) matching /$1/, got $c; log since mark:
$(log_since | tail -n 20)"
    fi
}

# ---- long-lived connections (tlsclient.py as a coprocess) --------------
# hold_open ID PEER  a keep-alive connection as PEER, through two FIFOs; it
#                    becomes the current one; HOLD_LPORT is its local port
# hold_use ID        switches the current connection
# hold_cmd LINE [S]  one command to the current one, its answer in HOLD_ANS
# hold_close [ID]    close_notify and reap
# Callers use HOLD_LPORT; tlsclient.py's protocol is in its header.
declare -A HOLD_W HOLD_R HOLD_P
HOLD_ID=
HOLD_ANS=
HOLD_LPORT=

hold_open() { # id peer
    local id=$1 peer=$2 fin fout w r
    fin=$T/hold-$id.in
    fout=$T/hold-$id.out
    rm -f "$fin" "$fout"
    mkfifo "$fin" "$fout"
    python3 "$DMN_DIR/tlsclient.py" "$PORT" "$P/ca.crt" "$T/$peer.crt" "$T/$peer.key" \
        <"$fin" >"$fout" 2>"$T/hold-$id.err" &
    HOLD_P[$id]=$!
    LOCAL_PIDS="$LOCAL_PIDS $!"
    exec {w}>"$fin"
    exec {r}<"$fout"
    HOLD_W[$id]=$w
    HOLD_R[$id]=$r
    HOLD_ID=$id
    HOLD_ANS=
    read -r -t 10 HOLD_ANS <&"${HOLD_R[$id]}"
    HOLD_LPORT=
    case "$HOLD_ANS" in
    CONNECTED*) HOLD_LPORT=${HOLD_ANS#CONNECTED } ;;
    esac
}

hold_use() { HOLD_ID=$1; }

# A client that has gone leaves a FIFO without a reader: the write's SIGPIPE
# must end a subshell, not the suite.
hold_write() { # fd line
    (printf '%s\n' "$2" 1>&"$1") 2>/dev/null
}

hold_cmd() { # line [timeout]
    HOLD_ANS=
    hold_write "${HOLD_W[$HOLD_ID]}" "$1" || { HOLD_ANS="GONE"; return; }
    read -r -t "${2:-15}" HOLD_ANS <&"${HOLD_R[$HOLD_ID]}" || HOLD_ANS="GONE${HOLD_ANS:+ $HOLD_ANS}"
}

hold_close() { # [id]
    local id=${1:-$HOLD_ID} w r
    [ -n "${HOLD_W[$id]:-}" ] || return 0
    w=${HOLD_W[$id]}
    r=${HOLD_R[$id]}
    hold_write "$w" QUIT
    exec {w}>&- {r}<&-
    wait "${HOLD_P[$id]}" 2>/dev/null
    unset "HOLD_W[$id]" "HOLD_R[$id]"
}

expect_hold() { # pattern name   (glob against HOLD_ANS)
    # shellcheck disable=SC2053
    if [[ "$HOLD_ANS" == $1 ]]; then
        tap_result 0 "$2"
    else
        tap_result 1 "$2" "expected '$1' from the connection, got '$HOLD_ANS'
$(cat "$T/hold-$HOLD_ID.err" 2>/dev/null)"
    fi
}

now() { date +%s.%N; }
