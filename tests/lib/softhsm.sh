# tests/lib/softhsm.sh: SoftHSM tokens in a directory of the caller's, for the
# tests and dev/demo. Source it; needs bash.
#
# softhsm_find_module          -> prints the module path
# softhsm_setup DIR            -> writes DIR/softhsm2.conf, exports SOFTHSM2_CONF
# softhsm_token LABEL PIN      -> initialises a token (free slot) in it
# softhsm_give_to USER DIR     -> token files and DIR to USER (when root)
#
# softhsm2-util takes the PIN on its command line: acceptable for a throwaway
# test token, never done by mtlsgw itself.

softhsm_find_module() {
    local m
    for m in /usr/lib/softhsm/libsofthsm2.so \
             /usr/lib/"$(uname -m)"-linux-gnu/softhsm/libsofthsm2.so \
             /usr/lib64/softhsm/libsofthsm2.so \
             /usr/lib64/pkcs11/libsofthsm2.so; do
        [ -e "$m" ] && { echo "$m"; return 0; }
    done
    echo "softhsm: libsofthsm2.so not found (apt-get install softhsm2)" >&2
    return 1
}

softhsm_setup() {
    local dir=$1
    mkdir -p "$dir/tokens"
    cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
    export SOFTHSM2_CONF=$dir/softhsm2.conf
}

softhsm_token() {
    softhsm2-util --init-token --free --label "$1" --so-pin "so-$2" --pin "$2" >/dev/null
}

softhsm_give_to() {
    local user=$1 dir=$2
    if [ "$(id -u)" = 0 ] && getent passwd "$user" >/dev/null; then
        chown -R "$user:" "$dir"
    fi
}
