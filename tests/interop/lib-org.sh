# tests/interop/lib-org.sh: an organization's hierarchy for the tests of
# issue #16 (docs/pki.md): a root made with the openssl command an
# organization already uses, and hubs whose CA is an intermediate under it.
# Source after tests/lib/softhsm.sh and lib-daemon.sh (mkconf, free_port),
# with T, MTLSGW, MODULE set.
#
#   org_root                 $T/root/root.crt + root.key (RSA-4096), an empty
#                            root CRL in $T/root/root.crl.pem
#   [ORG_HOST=ADDR] org_hub NAME [extra...]
#                            token NAME (PIN in $T/NAME.pin), config
#                            $T/NAME.conf with the extra lines, pki dir
#                            $T/NAME-pki; `mtlsgw init`, then the CA key on
#                            the token signs a CSR that the root signs
#                            (pathlen 0), and that intermediate becomes the
#                            hub's ca.crt (same key, same name: what
#                            `init --import-ca` lays out, made by hand here
#                            so these tests do not wait for it)
#   org_peer HUB NAME ROLE   a key in a file and a certificate of HUB:
#                            $T/NAME.key, $T/NAME.crt, $T/NAME.chain.pem
#                            (leaf + HUB's intermediate)

org_root() {
    mkdir -p "$T/root"
    # The project's starting material, non-interactive (-subj, -nodes).
    openssl req -x509 -sha256 -days 3650 -newkey rsa:4096 -nodes -subj "/CN=Org Root $$" \
        -keyout "$T/root/root.key" -out "$T/root/root.crt" 2>/dev/null || return 1
    : >"$T/root/index.txt"
    echo 01 >"$T/root/crlnumber"
    cat >"$T/root/ca.cnf" <<CNF
[ca]
default_ca = root
[root]
database = $T/root/index.txt
crlnumber = $T/root/crlnumber
default_md = sha256
default_crl_days = 30
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
    openssl ca -gencrl -config "$T/root/ca.cnf" -keyfile "$T/root/root.key" \
        -cert "$T/root/root.crt" -out "$T/root/root.crl.pem" 2>/dev/null
}

org_hub() { # name [extra config lines...]
    local n=$1 pin=$1-pin-0 ski
    shift
    softhsm_token "$n" "$pin" || return 1
    printf '%s\n' "$pin" >"$T/$n.pin"
    chmod 600 "$T/$n.pin"
    # The console acts as the daemon's user (docs/console.md).
    softhsm_give_to "$DUSER" "$T/tokens"
    chown "$DUSER:" "$T/$n.pin" 2>/dev/null
    mkconf "$T/$n.conf" "$n" "$T/$n.pin" "$T/$n-pki" "$@"
    "$MTLSGW" -c "$T/$n.conf" init --cn "$n" --host "${ORG_HOST:-127.0.0.1}" >/dev/null 2>&1 ||
        return 1
    printf 'cn = "%s CA"\n' "$n" >"$T/$n.ica.tmpl"
    GNUTLS_PIN=$pin certtool --generate-request --no-text \
        --load-privkey "pkcs11:token=$n;object=mtlsgw-ca;type=private" \
        --template "$T/$n.ica.tmpl" --outfile "$T/$n.ica.csr" >/dev/null 2>&1 || return 1
    # The key identifier GnuTLS gave the CA at init (what the gateway
    # certificate's authorityKeyIdentifier names), not openssl's own hash.
    ski=$(openssl x509 -in "$T/$n-pki/ca.crt" -noout -ext subjectKeyIdentifier |
        sed -n 's/^ *\([0-9A-F:]\{20,\}\)$/\1/p')
    sed "s/^subjectKeyIdentifier = .*/subjectKeyIdentifier = $ski/" "$T/root/ca.cnf" \
        >"$T/$n.ica.cnf"
    openssl x509 -req -in "$T/$n.ica.csr" -CA "$T/root/root.crt" -CAkey "$T/root/root.key" \
        -CAcreateserial -days 1825 -sha256 -extfile "$T/$n.ica.cnf" \
        -extensions intermediate -out "$T/$n.ica.crt" 2>/dev/null || return 1
    cp "$T/$n.ica.crt" "$T/$n-pki/ca.crt"
}

org_peer() { # hub name role
    local hub=$1 n=$2 role=$3
    certtool --generate-privkey --key-type ecdsa --outfile "$T/$n.key" 2>/dev/null &&
        printf 'cn = %s\n' "$n" >"$T/$n.csr.tmpl" &&
        certtool --generate-request --no-text --load-privkey "$T/$n.key" \
            --template "$T/$n.csr.tmpl" --outfile "$T/$n.csr" 2>/dev/null &&
        "$MTLSGW" -c "$T/$hub.conf" enroll "$n" --role "$role" --csr "$T/$n.csr" \
            --out "$T/$n.crt" >/dev/null 2>&1 || return 1
    # Only the leaf: `enroll --out` writes leaf + chain once chains are in
    # (issue #16 item 3); either way the file below is leaf + intermediate.
    openssl x509 -in "$T/$n.crt" >"$T/$n.chain.pem" && cat "$T/$hub.ica.crt" >>"$T/$n.chain.pem"
}
