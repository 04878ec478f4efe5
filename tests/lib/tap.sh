# tests/lib/tap.sh: TAP output for the shell suites (meson reads it).
#
# ok_if NAME CMD...        passes when CMD succeeds
# expect_exit N NAME CMD...  passes when CMD exits N; its output is kept in $OUT
# expect_in NEEDLE HAYSTACK NAME
# tap_skip NAME WHY        a check this build cannot make (TAP SKIP)
# tap_done                 prints the plan and returns non-zero on failures

TAP_N=0
TAP_FAILED=0
OUT=

tap_result() { # status name [detail]
    TAP_N=$((TAP_N + 1))
    if [ "$1" = 0 ]; then
        echo "ok $TAP_N - $2"
    else
        TAP_FAILED=$((TAP_FAILED + 1))
        echo "not ok $TAP_N - $2"
        [ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
    fi
    return 0
}

ok_if() {
    local name=$1
    shift
    if OUT=$("$@" 2>&1); then
        tap_result 0 "$name"
    else
        tap_result 1 "$name" "command failed: $*
$OUT"
    fi
}

expect_exit() {
    local want=$1 name=$2 got
    shift 2
    OUT=$("$@" 2>&1)
    got=$?
    if [ "$got" = "$want" ]; then
        tap_result 0 "$name"
    else
        tap_result 1 "$name" "expected exit $want, got $got: $*
$OUT"
    fi
}

expect_in() {
    case "$2" in
    *"$1"*) tap_result 0 "$3" ;;
    *) tap_result 1 "$3" "expected '$1' in:
$2" ;;
    esac
}

expect_not_in() {
    case "$2" in
    *"$1"*) tap_result 1 "$3" "did not expect '$1' in:
$2" ;;
    *) tap_result 0 "$3" ;;
    esac
}

tap_skip() { # name why
    TAP_N=$((TAP_N + 1))
    echo "ok $TAP_N - $1 # SKIP $2"
}

tap_done() {
    echo "1..$TAP_N"
    echo "# $((TAP_N - TAP_FAILED)) passed, $TAP_FAILED failed"
    [ "$TAP_FAILED" = 0 ]
}
