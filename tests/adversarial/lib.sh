# tests/adversarial/lib.sh: the preamble the attack scripts share. Source it
# after tests/lib/tap.sh, tests/lib/softhsm.sh and the fixtures the script
# runs on: tests/interop/lib-daemon.sh (one daemon on loopback) or
# tests/netns/lib-topo.sh (hub, spoke and LANs in namespaces).
#
# adv_need TOOL...        skip (exit 77) unless every TOOL is on PATH
# adv_loopback NAME       lib-daemon: T (/tmp/mtlsgw-NAME.XXXXXX, 755), a trap
#                         that closes held connections, stops the daemon and
#                         LOCAL_PIDS and removes T (kept with
#                         MTLSGW_TEST_KEEP=1), then dmn_fixture; skips without
#                         SoftHSM, bails out when the fixture fails
# adv_topo_temp NAME      lib-topo: T as above and a trap that stops
#                         LOCAL_PIDS and the daemons, removes the namespaces
#                         and T (KEEP_LOGS=DIR keeps the daemons' logs)
# adv_topo_up             topo_up; skips without namespaces, else bails out
# adv_mtg_fixture [CONF-LINE...]
#                         mtg_fixture (hub, spoke, spoke1) with lines added to
#                         the hub's config; skips without SoftHSM, else bails
# adv_p12_peer NAME ROLE  enrolls NAME on the hub with a PKCS#12 (its key made
#                         off the token) and unpacks it into $T/NAME.crt and
#                         $T/NAME.key; returns non-zero on failure

adv_need() { # tool...
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
    done
}

# ---- one daemon on loopback (tests/interop/lib-daemon.sh) ----------------------
adv_loopback_cleanup() {
    local id p
    for id in "${!HOLD_W[@]}"; do hold_close "$id"; done
    dmn_stop
    for p in $LOCAL_PIDS; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${MTLSGW_TEST_KEEP:-}" ]; then
        echo "# kept $T" >&2
    else
        rm -rf "$T"
    fi
}

adv_loopback() { # name
    T=$(mktemp -d "/tmp/mtlsgw-$1.XXXXXX")
    trap adv_loopback_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    chmod 755 "$T"
    dmn_fixture
    case $? in
    0) ;;
    77) echo "1..0 # SKIP no SoftHSM"; exit 77 ;;
    *) echo "Bail out! fixture: tokens, CA or peers could not be made"; exit 1 ;;
    esac
}

# ---- namespaces (tests/netns/lib-topo.sh) --------------------------------------
adv_topo_cleanup() {
    local p
    for p in $LOCAL_PIDS; do kill "$p" 2>/dev/null; done
    nsd_stop_all
    wait 2>/dev/null
    topo_down
    [ -n "${KEEP_LOGS:-}" ] && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null
    rm -rf "$T"
}

adv_topo_temp() { # name
    T=$(mktemp -d "/tmp/mtlsgw-$1.XXXXXX")
    chmod 755 "$T"
    LOCAL_PIDS=""
    trap adv_topo_cleanup EXIT
    trap 'exit 1' INT TERM
}

adv_topo_up() {
    topo_up
    case $? in
    0) ;;
    77) echo "1..0 # SKIP cannot create network namespaces"; exit 77 ;;
    *) echo "Bail out! the topology could not be made"; exit 1 ;;
    esac
}

adv_mtg_fixture() { # [hub config line...]
    mtg_fixture "$@"
    case $? in
    0) ;;
    77) echo "1..0 # SKIP no SoftHSM module"; exit 77 ;;
    *) echo "Bail out! fixture: tokens, CA or spoke1 could not be made"; exit 1 ;;
    esac
}

adv_p12_peer() { # name role
    printf 'p12-password-1\n' >"$T/pw"
    mtg_at hub enroll "$1" --role "$2" --p12 "$T/$1.p12" --password-file "$T/pw" \
        >/dev/null &&
        openssl pkcs12 -in "$T/$1.p12" -passin "file:$T/pw" -nokeys -clcerts \
            -out "$T/$1.crt" 2>/dev/null &&
        openssl pkcs12 -in "$T/$1.p12" -passin "file:$T/pw" -nocerts -nodes \
            -out "$T/$1.key" 2>/dev/null
}
