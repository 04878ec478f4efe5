#!/bin/bash
# One daemon per config (docs/mtlsgwd.md, "One daemon per config"): a second
# mtlsgwd started on the config of a running hub, or of a running spoke, is
# refused with the first one's pid (also under a config that differs only in
# its control socket: the lock is the pki dir's), before it binds, makes or removes
# anything; the first one's mtgu0 (the spoke's uplink interface), its
# control socket and its tunnel stay as they were. Before, a second spoke
# deleted the first one's mtgu0 and both dialled the hub.
#
#   lan-b --- spoke [uplink hub] ==tunnel==> hub 192.168.50.1:4433 --- lan-a
#             + a second spoke      refused  + a second hub
#
# usage: instance.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd        (root)
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-topo.sh"

topo_need ip openssl certtool ping softhsm2-util pgrep python3
topo_temp instance
topo_up_or_bail
mtg_fixture_or_bail

ping_ab() { lanb ping -c 1 -W 1 -q "$LANA_HOST" >/dev/null 2>&1; }
# ifindex:name of the mtg* interfaces in NS: a new interface of the same
# name gets a new index.
ifs_of() { ip -n "$1" -o link show | awk -F': ' '$2 ~ /^mtg/ {print $1 ":" $2}' | sort; }
sock_of() { stat -c '%d:%i' "$T/$1/run/control.sock" 2>/dev/null; }
# A daemon expected to refuse: its output and exit status (124: still up).
second() { # id ns
    SOFTHSM2_CONF=$T/$1/softhsm2.conf timeout -k 2 8 \
        ip netns exec "$2" "$MTLSGWD" -c "$T/$1/$1.conf" -f 2>&1
}

: >"$T/hub.log"
: >"$T/spoke.log"
nsd_start hub "$NS_HUB" "$T/hub/hub.conf"
nsd_start spoke "$NS_SPOKE" "$T/spoke/spoke.conf"
ok_if "the tunnel comes up" wait_until 20 ping_ab
spoke_ifs=$(ifs_of "$NS_SPOKE")
hub_ifs=$(ifs_of "$NS_HUB")
expect_in "mtgu0" "$spoke_ifs" "the spoke has its uplink interface mtgu0"
spoke_sock=$(sock_of spoke)
hub_sock=$(sock_of hub)

for id in spoke hub; do
    ns=$NS_SPOKE
    [ $id = hub ] && ns=$NS_HUB
    OUT=$(second $id "$ns")
    rc=$?
    tap_result $([ $rc != 0 ] && [ $rc != 124 ] && echo 0 || echo 1) \
        "a second $id daemon on the same config is refused" "exit $rc: $OUT"
    expect_in "another mtlsgwd (pid ${NSD_PID[$id]})" "$OUT" \
        "the second $id's refusal names the first one's pid"
done
# The lock is the pki dir's, not the run dir's: the same pki dir under a
# config with another control socket (another run dir) is refused too.
mkdir -p "$T/spoke/run2"
chown --reference="$T/spoke/run" "$T/spoke/run2"
chmod --reference="$T/spoke/run" "$T/spoke/run2"
sed "s|^control-socket = .*|control-socket = $T/spoke/run2/control.sock|" \
    "$T/spoke/spoke.conf" >"$T/spoke/spoke2.conf"
OUT=$(SOFTHSM2_CONF=$T/spoke/softhsm2.conf timeout -k 2 8 \
    ip netns exec "$NS_SPOKE" "$MTLSGWD" -c "$T/spoke/spoke2.conf" -f 2>&1)
rc=$?
tap_result $([ $rc != 0 ] && [ $rc != 124 ] && echo 0 || echo 1) \
    "a second spoke daemon, another control socket, the same pki dir: refused" "exit $rc: $OUT"
expect_in "another mtlsgwd (pid ${NSD_PID[spoke]})" "$OUT" "... naming the first one's pid"
ok_if "... it made no control socket in its run dir" test ! -e "$T/spoke/run2/control.sock"
ok_if "the spoke's mtg interfaces are the same ones (mtgu0 not replaced)" \
    test "$(ifs_of "$NS_SPOKE")" = "$spoke_ifs"
ok_if "the hub's mtg interfaces are the same ones" test "$(ifs_of "$NS_HUB")" = "$hub_ifs"
ok_if "the spoke's control socket is the same socket" test "$(sock_of spoke)" = "$spoke_sock"
ok_if "the hub's control socket is the same socket" test "$(sock_of hub)" = "$hub_sock"
ok_if "the tunnel still carries traffic" wait_until 5 ping_ab
ok_if "the spoke's console still reaches its daemon" \
    mtg_at spoke status
ok_if "the first daemons are still running" sh -c \
    "kill -0 ${NSD_PID[hub]} && kill -0 ${NSD_PID[spoke]}"
tap_done
