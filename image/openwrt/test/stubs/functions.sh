# shellcheck shell=sh
# shellcheck disable=SC2034,SC3043
# image/openwrt/test/stubs/functions.sh: a stand-in for OpenWrt's
# /lib/functions.sh and /usr/share/libubox/jshn.sh, written for
# image/openwrt/test-init (it is not OpenWrt's code). It does the part of
# their documented behaviour that /etc/init.d/mtlsgw relies on, so that the
# init script's config generation runs on a build machine:
#
#   config_load PKG     reads $UCI_CONFIG_DIR/PKG (the /etc/config syntax),
#                       calls config_cb TYPE NAME, option_cb NAME VALUE and
#                       list_cb NAME VALUE as it goes, then config_cb once
#                       without arguments after the last section
#   config_get VAR SECTION OPTION [DEFAULT]   (a list: its items, blank-separated)
#   config_get_bool VAR SECTION OPTION [DEFAULT]
#   config_foreach FUNC [TYPE] [ARGS...], config_list_foreach, reset_cb
#
# Sections without a name get one the way 'uci -n export' names them:
# cfg followed by six hex digits. The json_* functions only record what
# they are given into $PROCD_LOG, as "json string [NAME] [VALUE]" (see
# procd.sh beside this file).

append() { # VAR VALUE [SEP]
	local _var="$1" _val="$2" _sep="${3:- }" _old
	eval "_old=\"\${$_var}\""
	eval "$_var=\"\${_old:+\$_old\$_sep}\$_val\""
}

reset_cb() {
	config_cb() { return 0; }
	option_cb() { return 0; }
	list_cb() { return 0; }
}
reset_cb

_stub_name_ok() { # NAME: what uci accepts as a section or option name
	case "$1" in
	"" | *[!A-Za-z0-9_]*) return 1 ;;
	esac
	return 0
}

_stub_config() { # TYPE [NAME]
	local type="$1" name="$2"
	_STUB_N=$((_STUB_N + 1))
	[ -n "$name" ] || name=$(printf 'cfg%02x%04x' "$_STUB_N" "$((_STUB_N * 4099 % 65536))")
	_stub_name_ok "$name" || { echo "stub uci: bad section name '$name'" >&2; return 1; }
	_STUB_SECTION="$name"
	append CONFIG_SECTIONS "$name"
	eval "CONFIG_${name}_TYPE=\$type"
	config_cb "$type" "$name"
}

_stub_option() { # NAME VALUE
	_stub_name_ok "$1" || { echo "stub uci: bad option name '$1'" >&2; return 1; }
	eval "CONFIG_${_STUB_SECTION}_$1=\$2"
	option_cb "$1" "$2"
}

_stub_list() { # NAME VALUE
	local n
	_stub_name_ok "$1" || { echo "stub uci: bad list name '$1'" >&2; return 1; }
	eval "n=\${CONFIG_${_STUB_SECTION}_$1_LENGTH:-0}"
	[ "$n" = 0 ] && eval "CONFIG_${_STUB_SECTION}_$1="
	n=$((n + 1))
	eval "CONFIG_${_STUB_SECTION}_$1_LENGTH=\$n"
	eval "CONFIG_${_STUB_SECTION}_$1_ITEM$n=\$2"
	append "CONFIG_${_STUB_SECTION}_$1" "$2" " "
	list_cb "$1" "$2"
}

config_load() { # PKG
	local file="${UCI_CONFIG_DIR:?}/$1" line
	local s
	for s in $CONFIG_SECTIONS; do
		unset "CONFIG_${s}_TYPE"
	done
	CONFIG_SECTIONS=
	_STUB_SECTION=
	_STUB_N=0
	[ -f "$file" ] || return 1
	while IFS= read -r line || [ -n "$line" ]; do
		# the /etc/config syntax quotes the way sh does: let sh split it
		eval "set -- $line"
		[ $# -gt 0 ] || continue
		case "$1" in
		'#'*) ;;
		package) ;;
		config) _stub_config "$2" "$3" || return 1 ;;
		option) _stub_option "$2" "$3" || return 1 ;;
		list) _stub_list "$2" "$3" || return 1 ;;
		*) echo "stub uci: $file: cannot read '$line'" >&2; return 1 ;;
		esac
	done <"$file"
	[ -z "$_STUB_SECTION" ] || config_cb
	return 0
}

config_get() { # VAR SECTION OPTION [DEFAULT] | SECTION OPTION
	local _v
	if [ $# -le 2 ]; then
		eval "_v=\${CONFIG_$1_$2}"
		printf '%s\n' "$_v"
		return 0
	fi
	eval "_v=\${CONFIG_$2_$3-\$4}"
	eval "$1=\$_v"
}

config_get_bool() { # VAR SECTION OPTION [DEFAULT]
	local _b
	config_get _b "$2" "$3" "$4"
	case "$_b" in
	1 | on | true | yes | enabled) _b=1 ;;
	0 | off | false | no | disabled) _b=0 ;;
	*) _b="$4" ;;
	esac
	eval "$1=\$_b"
}

config_foreach() { # FUNC [TYPE] [ARGS...]
	local _f="$1" _t="$2" _s _st
	shift
	[ $# -gt 0 ] && shift
	for _s in $CONFIG_SECTIONS; do
		eval "_st=\$CONFIG_${_s}_TYPE"
		[ -z "$_t" ] || [ "$_t" = "$_st" ] || continue
		"$_f" "$_s" "$@"
	done
}

config_list_foreach() { # SECTION OPTION FUNC [ARGS...]
	local _s="$1" _o="$2" _f="$3" _n _i=1 _item
	shift 3
	eval "_n=\${CONFIG_${_s}_${_o}_LENGTH:-0}"
	while [ "$_i" -le "$_n" ]; do
		eval "_item=\$CONFIG_${_s}_${_o}_ITEM$_i"
		"$_f" "$_item" "$@"
		_i=$((_i + 1))
	done
}

# jshn: record only.
_stub_json() { # WHAT ARGS...: "json WHAT [ARG]..."
	{
		printf 'json %s' "$1"
		shift
		[ $# -eq 0 ] || printf ' [%s]' "$@"
		printf '\n'
	} >>"${PROCD_LOG:?}"
}
json_init() { _stub_json init; }
json_add_object() { _stub_json object "$1"; }
json_close_object() { _stub_json close_object; }
json_add_array() { _stub_json array "$1"; }
json_close_array() { _stub_json close_array; }
json_add_string() { _stub_json string "$1" "$2"; }
json_add_int() { _stub_json int "$1" "$2"; }
json_add_boolean() { _stub_json boolean "$1" "$2"; }
