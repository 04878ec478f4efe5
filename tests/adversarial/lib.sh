# tests/adversarial/lib.sh: the preamble the attack scripts share. Source it
# after tests/lib/tap.sh, tests/lib/softhsm.sh and the fixtures the script
# runs on: tests/interop/lib-daemon.sh (one daemon on loopback) or
# tests/netns/lib-topo.sh (hub, spoke and LANs in namespaces). The work is
# those libraries' (dmn_temp, topo_temp, ...); these are the names the
# attack scripts call.
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
adv_loopback() { # name
    dmn_temp "$1"
    dmn_fixture_or_bail
}

# ---- namespaces (tests/netns/lib-topo.sh) --------------------------------------
adv_topo_temp() { topo_temp "$1"; }            # name
adv_topo_up() { topo_up_or_bail; }
adv_mtg_fixture() { mtg_fixture_or_bail "$@"; } # [hub config line...]
adv_p12_peer() { mtg_p12_peer "$1" "$2"; }      # name role
