# shellcheck shell=sh
# shellcheck disable=SC3043
# image/openwrt/test/stubs/procd.sh: a stand-in for OpenWrt's
# /lib/functions/procd.sh, written for image/openwrt/test-init (it is not
# OpenWrt's code). Each call is written to $PROCD_LOG, one line, arguments
# in brackets so that their boundaries show:
#
#   instance open [NAME] / instance close
#   param TYPE [ARG]...           procd_set_param and procd_append_param
#   jail [NAME] [FLAG]...         procd_add_jail
#   jail_mount ro|rw [PATH]...    procd_add_jail_mount(_rw)
#   data open / data close, reload_trigger [PKG], signal [SERVICE] [INSTANCE] [SIG]
#
# The real procd.sh ignores what it does not know without a word: a
# misspelt parameter, a jail flag it has no use for, a jail mount before
# procd_add_jail. Here each of those is an "ERROR ..." line, which
# test-init counts.

_stub_procd() { # WHAT ARGS...
	local what="$1"
	shift
	{
		printf '%s' "$what"
		[ $# -eq 0 ] || printf ' [%s]' "$@"
		printf '\n'
	} >>"${PROCD_LOG:?}"
}

_STUB_INSTANCE=
_STUB_JAIL=

procd_open_instance() {
	[ -z "$_STUB_INSTANCE" ] || _stub_procd ERROR "instance opened inside an instance"
	_STUB_INSTANCE=1
	_STUB_JAIL=
	_stub_procd "instance open" "$@"
}

procd_close_instance() {
	[ -n "$_STUB_INSTANCE" ] || _stub_procd ERROR "instance closed that was not open"
	_STUB_INSTANCE=
	_stub_procd "instance close"
}

# The types procd.sh passes on to procd (service/instance.c reads them).
_stub_param_type() {
	case "$1" in
	command | env | data | limits | file | netdev | respawn | watch | watchdog | error) ;;
	nice | term_timeout | reload_signal) ;;
	pidfile | user | group | seccomp | capabilities | facility) ;;
	extroot | overlaydir | tmpoverlaysize) ;;
	stdout | stderr | no_new_privs) ;;
	*) return 1 ;;
	esac
}

procd_set_param() {
	[ -n "$_STUB_INSTANCE" ] || _stub_procd ERROR "procd_set_param $1 outside an instance"
	_stub_param_type "$1" || _stub_procd ERROR "unknown procd parameter '$1'"
	_stub_procd param "$@"
}

procd_append_param() {
	procd_set_param "$@"
}

procd_add_jail() { # NAME FLAGS...
	local name="$1" f
	shift
	[ -n "$_STUB_INSTANCE" ] || _stub_procd ERROR "procd_add_jail outside an instance"
	for f in "$@"; do
		case "$f" in
		log | ubus | procfs | sysfs | ronly | requirejail | netns | userns | cgroupsns | console) ;;
		*) _stub_procd ERROR "unknown jail flag '$f'" ;;
		esac
	done
	_STUB_JAIL=1
	_stub_procd jail "$name" "$@"
}

procd_add_jail_mount() {
	[ -n "$_STUB_JAIL" ] || _stub_procd ERROR "jail mount before procd_add_jail: procd.sh drops it"
	_stub_procd "jail_mount ro" "$@"
}

procd_add_jail_mount_rw() {
	[ -n "$_STUB_JAIL" ] || _stub_procd ERROR "jail mount before procd_add_jail: procd.sh drops it"
	_stub_procd "jail_mount rw" "$@"
}

procd_open_data() { _stub_procd "data open"; }
procd_close_data() { _stub_procd "data close"; }
procd_add_reload_trigger() { _stub_procd reload_trigger "$@"; }
procd_send_signal() { _stub_procd signal "$@"; }
