# tests/web/lib-web.sh: what web.sh and kernel.sh share. Source it after
# the fixture library (tap.sh loaded, T set).
#
# browser_tap STAGE RC   browser.py's answer in $T/browser.out as TAP: each
#                        "R<TAB>STATUS<TAB>NAME<TAB>DETAIL" line one check, "#"
#                        lines passed on; then a failed check when RC (its
#                        exit status) is not 0, with the end of
#                        $T/browser.err

browser_tap() { # stage rc
    local line st name detail
    while IFS= read -r line; do
        case "$line" in
        R$'\t'*)
            IFS=$'\t' read -r _ st name detail <<<"$line"
            tap_result "$st" "$name" "$detail"
            ;;
        '#'*) echo "$line" ;;
        esac
    done <"$T/browser.out"
    [ "$2" = 0 ] || tap_result 1 "browser.py ($1) ran to its end" \
        "exit $2: $(tail -n 5 "$T/browser.err")"
}
