#!/bin/bash
# mtlsgw backup / restore (docs/backup.md): the state as a tar without a key
# or the PIN; a wiped pki dir restored and its peers served again; a live
# setup kept unless --force; a backup refused on a token that does not hold
# its CA key; entries outside the state refused; an archive altered in any
# way (a CA appended, a byte changed, an entry dropped or added, the
# signature gone) refused before anything is written; a CA appended to the
# pki dir's ca.crt itself ignored by explain; a revoke during restore lands
# in the restored dir (the lock); an older backup drops invites withdrawn
# since, keeps the CRL number going, refuses superseded serials and a
# gateway key gone from the token.
#
#   curl (alice)  ->  mtlsgwd -f -c gw.conf --- token "gw", pki $P
#   mtlsgw -c other.conf restore   --- token "ot" (another CA key)
#
# usage: backup.sh PATH-TO-mtlsgw PATH-TO-mtlsgwd
set -u
MTLSGW=$(readlink -f "$1")
MTLSGWD=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/tap.sh"
. "$here/../lib/softhsm.sh"
. "$here/lib-daemon.sh"

for tool in curl openssl certtool python3 tar; do
    command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP the daemon switches users: run as root"; exit 77; }

T=$(mktemp -d /tmp/mtlsgw-backup.XXXXXX)
cleanup() {
    dmn_stop
    if [ -n "${MTLSGW_TEST_KEEP:-}" ]; then
        echo "# kept $T" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$T"

MODULE=$(softhsm_find_module) || { echo "1..0 # SKIP no SoftHSM"; exit 77; }
softhsm_setup "$T"
softhsm_token gw "$PIN" && softhsm_token ot other-pin-0 || { echo "Bail out! tokens"; exit 1; }
printf '%s\n' "$PIN" >"$T/gw.pin"
printf 'other-pin-0\n' >"$T/other.pin"
chmod 600 "$T"/*.pin
mkdir -p "$T/run"
chmod 700 "$T/run"
P=$T/gw-pki
PORT=$(free_port)
gw_conf "$T/gw.conf"
mkconf "$T/other.conf" ot "$T/other.pin" "$T/other-pki"
softhsm_give_to "$DUSER" "$T/tokens"
softhsm_give_to "$DUSER" "$T/run"
chown "$DUSER:" "$T"/*.pin 2>/dev/null
DLOG=$T/daemon.log
: >"$DLOG"
engine_conf

hub init --cn gw1 --host 127.0.0.1 >/dev/null 2>&1 || { echo "Bail out! init"; exit 1; }
"$MTLSGW" -c "$T/other.conf" init --cn gw1 --host 127.0.0.1 >/dev/null 2>&1 ||
    { echo "Bail out! init other"; exit 1; }
for p in admin1:admin alice:monitor gone:monitor; do
    enroll_file_peer "${p%%:*}" "${p#*:}" >/dev/null 2>&1 || { echo "Bail out! enroll $p"; exit 1; }
done
hub revoke gone >/dev/null 2>&1
hub invite later --role monitor >/dev/null 2>&1
dmn_start || { echo "Bail out! the daemon does not start: $(tail -5 "$DLOG")"; exit 1; }
req alice GET /api/v1/status
expect_http 200 "alice is served before the backup"

# ---- backup -----------------------------------------------------------------
out=$(hub backup --out "$T/b.tar" 2>&1)
ok_if "backup --out FILE" test $? = 0 || echo "# $out"
list=$(tar -tf "$T/b.tar" 2>&1)
for f in pki/registry.json pki/ca.crt pki/gateway.crt pki/crl.pem pki/invites.json \
    pki/audit.log mtlsgw.conf mtlsgw-backup.json; do
    expect_in "$f" "$list" "tar -tf lists $f"
done
ok_if "no private key in it" sh -c "! grep -q 'PRIVATE KEY' '$T/b.tar'"
ok_if "no PIN in it" sh -c "! grep -qF '$PIN' '$T/b.tar'"
ok_if "nothing but the state in it (no lock, no pin file)" sh -c \
    "! tar -tf '$T/b.tar' | grep -E 'lock|\\.pin'"
out=$(hub backup --out "$T/b.tar" 2>&1)
ok_if "backup onto an existing file without --force: refused" test $? != 0
expect_in "--force" "$out" "... naming --force"

# ---- wipe, restore ---------------------------------------------------------
dmn_stop
sum0=$(sha256sum "$P/registry.json" | cut -d' ' -f1)
cp -a "$P" "$T/pki-copy"
rm -rf "$P"
out=$(hub restore "$T/b.tar" 2>&1)
ok_if "restore into a wiped pki dir" test $? = 0 || echo "# $out"
ok_if "... the registry is back byte for byte" \
    test "$(sha256sum "$P/registry.json" | cut -d' ' -f1)" = "$sum0"
ok_if "... owned by the daemon's user" test "$(stat -c %U "$P/registry.json")" = "$DUSER"
dmn_start || { echo "Bail out! the daemon does not start after restore: $(tail -5 "$DLOG")"; exit 1; }
req alice GET /api/v1/status
expect_http 200 "alice is served after the restore"
req gone GET /api/v1/status
ok_if "the revoked peer is still refused" test "$HTTP" != 200
out=$(hub enroll bob --role monitor --csr "$T/alice.csr" --out "$T/x.crt" 2>&1)
expect_in "already enrolled" "$out" "the restored registry still knows alice's key"

out=$(hub restore "$T/b.tar" 2>&1)
ok_if "restore over a live setup without --force: refused" test $? != 0
expect_in "--force" "$out" "... naming --force"

# ---- the wrong token ----------------------------------------------------------
cp -a "$T/other-pki" "$T/other-before"
out=$("$MTLSGW" -c "$T/other.conf" restore --force "$T/b.tar" 2>&1)
ok_if "restore on a token without the backup's CA key: refused" test $? != 0
expect_in "does not hold the CA key" "$out" "... saying the token does not hold the CA key"
ok_if "... and the other setup is untouched" diff -r "$T/other-pki" "$T/other-before"

# ---- entries outside the state -------------------------------------------------
python3 - "$T/b.tar" "$T/evil.tar" <<'PY'
import io, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as a, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as b:
    for m in a.getmembers():
        b.addfile(m, a.extractfile(m))
    evil = tarfile.TarInfo("pki/../../evil")
    data = b"owned\n"
    evil.size = len(data)
    b.addfile(evil, io.BytesIO(data))
PY
out=$(hub restore --force "$T/evil.tar" 2>&1)
ok_if "a backup with pki/../../evil: refused" test $? != 0
expect_in "refusing entry" "$out" "... naming the entry"
ok_if "... nothing written outside" test ! -e "$T/evil"

python3 - "$T/b.tar" "$T/link.tar" <<'PY'
import sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as a, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as b:
    for m in a.getmembers():
        if m.name == "pki/crl.pem":
            link = tarfile.TarInfo("pki/crl.pem")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/shadow"
            b.addfile(link)
        else:
            b.addfile(m, a.extractfile(m))
PY
out=$(hub restore --force "$T/link.tar" 2>&1)
ok_if "a backup with a symbolic link in it: refused" test $? != 0
expect_in "refusing entry 'pki/crl.pem'" "$out" "... naming it"

# ---- altered archives (docs/backup.md, "What the signature proves") ---------
# retar.py SRC DST OP...: copy SRC's entries to DST (ustar), changed by each
# OP: drop:NAME, add:NAME:FILE, set:NAME:FILE, flip:NAME (one byte),
# remanifest (the manifest's sizes and hashes made to fit, its signature
# kept: what an attacker without the CA key can do), nosig.
cat >"$T/retar.py" <<'PY'
import hashlib, io, json, sys, tarfile
src, dst, ops = sys.argv[1], sys.argv[2], sys.argv[3:]
with tarfile.open(src) as a:
    ents = [(m, a.extractfile(m).read()) for m in a.getmembers()]
def find(name):
    return next(i for i, (m, _) in enumerate(ents) if m.name == name)
for op in ops:
    kind, _, arg = op.partition(":")
    if kind == "drop":
        del ents[find(arg)]
    elif kind in ("add", "set"):
        name, _, path = arg.partition(":")
        data = open(path, "rb").read()
        if kind == "set":
            m, _ = ents[find(name)]
            ents[find(name)] = (m, data)
        else:
            m = tarfile.TarInfo(name)
            m.mode = 0o644
            ents.append((m, data))
    elif kind == "flip":
        i = find(arg)
        m, data = ents[i]
        data = bytearray(data)
        at = data.index(b"admin")  # a name in the registry, still valid JSON
        data[at] = ord("A")
        ents[i] = (m, bytes(data))
    elif kind == "nosig":
        del ents[find("mtlsgw-backup.sig")]
    elif kind == "remanifest":
        i = find("mtlsgw-backup.json")
        man = json.loads(ents[i][1])
        man["entries"] = [{"name": m.name, "size": len(d), "mode": "%04o" % (m.mode & 0o644),
                           "sha256": hashlib.sha256(d).hexdigest()}
                          for m, d in ents if not m.name.startswith("mtlsgw-backup.")]
        ents[i] = (ents[i][0], json.dumps(man, indent=2).encode())
with tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as b:
    for m, data in ents:
        m.size = len(data)
        b.addfile(m, io.BytesIO(data))
PY
dmn_stop

# The attacker's own CA and an admin certificate it issued.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evil-ca.key" \
    -out "$T/evil-ca.crt" -subj "/CN=mallory CA" -days 30 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/mallory.key" \
    -out "$T/mallory.csr" -subj "/CN=mallory" >/dev/null 2>&1
printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature \
    extendedKeyUsage=clientAuth subjectAltName=URI:urn:mtlsgw:role:admin >"$T/mallory.ext"
openssl x509 -req -in "$T/mallory.csr" -CA "$T/evil-ca.crt" -CAkey "$T/evil-ca.key" \
    -set_serial 0x5eed1234 -days 30 -extfile "$T/mallory.ext" -out "$T/mallory.crt" \
    >/dev/null 2>&1 || { echo "Bail out! the attacker's certificate"; exit 1; }
tar -xOf "$T/b.tar" pki/ca.crt >"$T/evil-ca-all.crt"
cat "$T/evil-ca.crt" >>"$T/evil-ca-all.crt"
tar -xOf "$T/b.tar" pki/registry.json | python3 -c 'import json, sys
r = json.load(sys.stdin)
e = dict(next(p for p in r["peers"] if p["name"] == "admin1"))
e.update(name="mallory", serial="5eed1234", key_id="00" * 32, status="active")
r["peers"].append(e)
print(json.dumps(r, indent=2))' >"$T/evil-registry.json"

# An altered archive is refused, saying so, and nothing is written.
expect_altered() { # tar name [what the message names]
    local snap=$T/snap before after out rc same=
    rm -rf "$snap"
    cp -a "$P" "$snap"
    before=$(ls -d "$P".* 2>/dev/null | sort)
    out=$(hub restore --force "$1" 2>&1)
    rc=$?
    after=$(ls -d "$P".* 2>/dev/null | sort)
    diff -r "$P" "$snap" >/dev/null && [ "$after" = "$before" ] && same=yes
    ok_if "$2: refused" test "$rc" != 0 || echo "# $out"
    expect_in "${3:-altered or is not an mtlsgw backup of this CA}" "$out" \
        "... saying the archive was altered or is not a backup of this CA"
    ok_if "... and nothing was written" test "$same" = yes
}

python3 "$T/retar.py" "$T/b.tar" "$T/evil-ca.tar" set:pki/ca.crt:"$T/evil-ca-all.crt" \
    set:pki/registry.json:"$T/evil-registry.json"
expect_altered "$T/evil-ca.tar" "a CA appended to ca.crt, an admin of it in the registry" \
    "differs from the signed manifest"
out=$(hub explain "$T/mallory.crt" 2>&1)
expect_not_in "granted" "$out" "... the attacker's admin certificate is not granted"
python3 "$T/retar.py" "$T/b.tar" "$T/evil-ca2.tar" set:pki/ca.crt:"$T/evil-ca-all.crt" \
    set:pki/registry.json:"$T/evil-registry.json" remanifest
expect_altered "$T/evil-ca2.tar" "... the same with the manifest made to fit" \
    "manifest's signature does not verify"
python3 "$T/retar.py" "$T/b.tar" "$T/flip.tar" flip:pki/registry.json
expect_altered "$T/flip.tar" "one byte of the registry changed" \
    "entry 'pki/registry.json': its SHA-256 differs"
python3 "$T/retar.py" "$T/b.tar" "$T/drop.tar" drop:pki/crl.pem
expect_altered "$T/drop.tar" "an entry dropped" \
    "entry 'pki/crl.pem' of the signed manifest is missing"
python3 "$T/retar.py" "$T/b.tar" "$T/add.tar" add:pki/issued/5eed1234.crt:"$T/mallory.crt"
expect_altered "$T/add.tar" "an entry added" "entry 'pki/issued/5eed1234.crt': it is not in"
# A second pki/registry.json after the genuine one (tar's last one wins).
python3 "$T/retar.py" "$T/b.tar" "$T/twice.tar" add:pki/registry.json:"$T/evil-registry.json"
expect_altered "$T/twice.tar" "an entry given twice" "entry 'pki/registry.json' is in it twice"
python3 "$T/retar.py" "$T/b.tar" "$T/nosig.tar" nosig
expect_altered "$T/nosig.tar" "an unsigned archive" "it carries no signature"

# Defense in depth (trustdb): the same files in the pki dir itself, as an
# older restore wrote them: the appended CA is ignored, and said to be.
cp -a "$P" "$T/pki-good"
cp "$T/evil-ca-all.crt" "$P/ca.crt"
cp "$T/evil-registry.json" "$P/registry.json"
out=$(hub explain "$T/mallory.crt" 2>&1)
expect_not_in "granted" "$out" "a CA appended to ca.crt in the pki dir: explain grants nothing"
expect_in "CN=mallory CA" "$out" "... and names the anchor it ignores"
expect_in "ignored" "$out" "... saying it is ignored"
out=$(hub explain "$T/admin1.crt" 2>&1)
expect_in "granted: peer admin1, role admin" "$out" "... while the real CA's admin still is"
rm -rf "$P"
mv "$T/pki-good" "$P"
dmn_start || { echo "Bail out! the daemon does not start again: $(tail -5 "$DLOG")"; exit 1; }

out=$(hub restore --force "$T/b.tar" 2>&1)
ok_if "restore --force over the live setup" test $? = 0 || echo "# $out"
ok_if "... the replaced setup is kept beside it" sh -c "ls -d '$P'.before-restore-* >/dev/null"

# An older backup must not un-revoke: alice is revoked after b.tar was made
# (a compromised key); restoring b.tar would trust her again.
hub revoke alice --reason keyCompromise >/dev/null 2>&1
sleep 1 # one restore a second (the replaced setup is kept by the second)
out=$(hub restore --force "$T/b.tar" 2>&1)
ok_if "restoring a backup older than a revocation: refused" test $? != 0
expect_in "revoked since it was made: alice" "$out" "... naming the peer it would trust again"
peers_json=$(hub peers --json 2>/dev/null)
ok_if "... and the live registry still has alice revoked" python3 -c 'import json, sys
sys.exit(0 if any(p["name"] == "alice" and p["status"] == "revoked"
                  for p in json.loads(sys.argv[1])) else 1)' "$peers_json"
sleep 1 # the replaced setup is kept by the second: one restore a second
out=$(hub restore --force --unrevoke "$T/b.tar" 2>&1)
ok_if "... --unrevoke restores it anyway, as asked" test $? = 0 || echo "# $out"

# A revoke while restore runs (fault point restore-before-swap: between the
# lost-revocations check and the swap): restore holds the pki dir's lock,
# the revoke waits, then lands in the restored dir; never silently lost in
# the replaced one.
hub backup --out "$T/c.tar" --force >/dev/null 2>&1 || echo "# backup c.tar failed"
sleep 1
MTLSGW_FAULT=restore-before-swap:2000 hub restore --force "$T/c.tar" >"$T/race.out" 2>&1 &
RPID=$!
for _ in $(seq 100); do
    grep -q "restore-before-swap: waiting" "$T/race.out" && break
    kill -0 "$RPID" 2>/dev/null || break
    sleep 0.1
done
if grep -q "restore-before-swap: waiting" "$T/race.out"; then
    hub revoke alice --reason keyCompromise >"$T/revoke.out" 2>&1
    revoke_rc=$?
    wait "$RPID"
    restore_rc=$?
    sed 's/^/# restore: /' "$T/race.out"
    sed 's/^/# revoke: /' "$T/revoke.out"
    peers_json=$(hub peers --json 2>/dev/null)
    alice_revoked=no
    python3 -c 'import json, sys
sys.exit(0 if any(p["name"] == "alice" and p["status"] == "revoked"
                  for p in json.loads(sys.argv[1])) else 1)' "$peers_json" && alice_revoked=yes
    ok_if "a revoke during restore: restore done (exit $restore_rc), revoke done (exit \
$revoke_rc)" test "$restore_rc" = 0 -a "$revoke_rc" != 1
    ok_if "... alice is revoked in the live (restored) registry" test "$alice_revoked" = yes
else
    wait "$RPID"
    tap_skip "a revoke during restore" "no fault injection in this build"
    tap_skip "... alice is revoked in the live (restored) registry" "no fault injection"
fi

# ---- an older backup catches up with the live setup ------------------------
# (a) an invite withdrawn since is not brought back; (c) the CRL number goes
# on from the live one (sibling hubs refuse an "older" CRL).
hub invite dave --role monitor >/dev/null 2>&1
hub backup --out "$T/e.tar" --force >/dev/null 2>&1 || echo "# backup e.tar failed"
hub uninvite dave >/dev/null 2>&1
enroll_file_peer carol monitor >/dev/null 2>&1
hub revoke carol >/dev/null 2>&1
crl_live=$(openssl crl -in "$P/crl.pem" -noout -crlnumber | cut -d= -f2)
sleep 1
out=$(hub restore --force --unrevoke "$T/e.tar" 2>&1)
ok_if "restore of a backup made before an uninvite and a revoke" test $? = 0 ||
    printf '# %s\n' "$out"
expect_in "dropped: invite dave" "$out" "... saying the withdrawn invite is dropped"
out=$(hub invites 2>&1)
expect_not_in "dave" "$out" "... and dave's invite is not pending again"
crl_new=$(openssl crl -in "$P/crl.pem" -noout -crlnumber | cut -d= -f2)
ok_if "... the CRL number goes on ($crl_live -> $crl_new), never back" \
    python3 -c 'import sys; sys.exit(0 if int(sys.argv[2], 16) > int(sys.argv[1], 16) else 1)' \
    "$crl_live" "$crl_new"
ok_if "... and the CRL verifies with the CA" sh -c \
    "openssl crl -in '$P/crl.pem' -noout -CAfile '$P/ca.crt' 2>&1 | grep -q 'verify OK'"

# (b) a serial superseded since (reissue) is not brought back active.
hub backup --out "$T/f.tar" --force >/dev/null 2>&1 || echo "# backup f.tar failed"
hub reissue admin1 --out "$T/admin1-new.crt" >/dev/null 2>&1 || echo "# reissue failed"
sleep 1
out=$(hub restore --force "$T/f.tar" 2>&1)
ok_if "restoring a backup older than a reissue: refused" test $? != 0
expect_in "superseded" "$out" "... naming the superseded serial it would trust again"

# (d) a gateway key replaced since (gateway renew --new-key): refused over
# the live setup, saying what to do.
hub backup --out "$T/g.tar" --force >/dev/null 2>&1 || echo "# backup g.tar failed"
out=$(hub gateway renew --new-key 2>&1)
expect_in "deleted from the token" "$out" "gateway renew --new-key deletes the old key"
sleep 1
out=$(hub restore --force "$T/g.tar" 2>&1)
ok_if "restoring a backup whose gateway key is gone: refused" test $? != 0
expect_in "gateway renew --new-key" "$out" "... saying what to do"

tap_done
