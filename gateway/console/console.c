/* mtlsgw: the console tool. */
#include "console.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "build-config.h"
#include "cidr.h"
#include "config.h"
#include "fsutil.h"
#include "mtlsgw-main.h"
#include "privs.h"

static const struct command commands[] = {
    {"init", cmd_init,
     "init --cn NAME [--host NAME]... [--key-type ec-p256|ec-p384|rsa-3072] [--days N] "
     "[--force [--yes]] [--intermediate --csr-out FILE] | init --import-ca CERT --chain ROOT",
     "Generate the CA key and the gateway key on the token, write ca.crt, gateway.crt,\n"
     "an empty CRL and an empty registry in the pki dir. --days is the CA's lifetime\n"
     "(default 3650); the gateway certificate lasts at most 397 days. --host (DNS name\n"
     "or IP address, repeatable) defaults to this machine's hostname. --force replaces\n"
     "an existing CA (every peer must then be enrolled again): it says so and asks on\n"
     "the terminal; --yes answers for scripts.\n"
     "As an intermediate under an organization's root (docs/pki.md):\n"
     "  init --intermediate --cn NAME [--host NAME]... [--key-type T] --csr-out FILE\n"
     "    makes the CA and gateway keys on the token and writes the CA's CSR to FILE;\n"
     "  init --import-ca CERT --chain ROOT\n"
     "    checks the certificate the root signed (the token's CA key; CA:TRUE,\n"
     "    keyCertSign, cRLSign; a path from it to the root in ROOT, path lengths\n"
     "    respected) and finishes: ca.crt is the root, chain.pem the intermediates,\n"
     "    gateway.crt the gateway certificate followed by the intermediates."},
    {"root", cmd_root,
     "root init --cn NAME [--key-type T] [--days N] | root sign --csr FILE --out FILE "
     "[--path-len N] [--days N] [--force] | root revoke SERIAL|FILE [--reason R] | "
     "root crl [--out FILE] | root list [--json]",
     "An organization's root CA on a token of its own, offline (docs/pki.md). Give it\n"
     "its own config (mtlsgw -c root.conf root ...): [token] the root's token, [pki] dir\n"
     "its state (root.crt, root-crl.pem, issued.json, audit.log).\n"
     "  init    makes the root key (label mtlsgw-root, default ec-p384, 7300 days)\n"
     "  sign    signs an appliance's CSR (init --intermediate) as an intermediate CA,\n"
     "          path length 0 and 1825 days unless told\n"
     "  revoke  revokes an intermediate (a compromised appliance) and re-signs the CRL\n"
     "  crl     re-signs the root's CRL ([pki] crl-days) and prints or writes it\n"
     "  list    the intermediates signed"},
    {"csr", cmd_csr,
     "csr --cn NAME --out FILE [--key-type ec-p256|ec-p384|rsa-3072] [--new-key] [--force]",
     "Device side: make the device key on this appliance's token if absent and write a\n"
     "PKCS#10 CSR signed by it to FILE. --new-key replaces the device key first (after\n"
     "a revocation: a revoked key is never enrolled again). FILE may be - (stdout), a\n"
     "device or a FIFO (written in place); an existing file or a symbolic link only\n"
     "with --force."},
    {"enroll", cmd_enroll,
     "enroll NAME --role admin|monitor|tunnel (--csr FILE [--out FILE] [--leaf-only] | "
     "--p12 FILE --password-file FILE) [--network CIDR]... [--allow-default] [--days N] "
     "[--force]",
     "Issue a client certificate (clientAuth, URI SAN urn:mtlsgw:role:ROLE, default 397\n"
     "days) and record the peer in the registry. With --csr the certificate is written\n"
     "to --out or printed, followed by the intermediates of chain.pem when this CA is\n"
     "an intermediate (--leaf-only: the certificate alone). With --p12 the key is made\n"
     "here (off-token) and written with the certificate, the intermediates and the root\n"
     "to a PKCS#12 protected by the password in the file\n"
     "(- reads it from stdin). --network takes a prefix with its length; one that\n"
     "overlaps another of the peer's or another peer's is refused, and 0.0.0.0/0 or\n"
     "::/0 needs --allow-default.\n"
     "FILE may be - (stdout), a device or a FIFO (written in place); an existing file\n"
     "or a symbolic link only with --force (a link's target is written, the link stays)."},
    {"revoke", cmd_revoke,
     "revoke NAME [--reason unspecified|keyCompromise|superseded|cessationOfOperation]",
     "Mark the peer revoked in the registry and re-sign the CRL, then tell the running\n"
     "daemon. Exit 3 when it did not acknowledge: the change stays, and the daemon's own\n"
     "watch of the pki dir applies it within a second if it runs."},
    {"peers", cmd_peers, "peers [--status active|revoked|all] [--json]",
     "List enrolled peers (--status: only active, only revoked or superseded; default\n"
     "all), with ONLINE: yes when the running daemon has a session of that\n"
     "certificate, - when the daemon cannot be asked."},
    {"show", cmd_show, "show NAME [--json | --pem [--chain]]",
     "Show one peer. --pem prints its current certificate (kept under issued/ in the\n"
     "pki dir); --chain appends the CA certificate (and chain.pem when there is one)."},
    {"reissue", cmd_reissue,
     "reissue NAME [--days N] [--overlap DURATION] [--out FILE [--force]]",
     "Issue a new certificate for the enrolled peer NAME with the key of its current one\n"
     "(from issued/), the same role and networks, a new serial; printed, or written to\n"
     "FILE. The old serial is refused at handshake from now on, or after --overlap\n"
     "(s, m, h, d: e.g. 7d) so the device can install the new one. --days defaults to\n"
     "the current lifetime. The registry keeps both."},
    {"crl", cmd_crl, "crl [--out FILE [--force]]",
     "Print (or write) the current CRL in PEM. FILE as for csr --out."},
    {"status", cmd_status, "status [--json]",
     "Ask the running daemon (through [daemon] control-socket) for its state: token,\n"
     "sessions, days left on the CA, the gateway certificate and the CRL."},
    {"sessions", cmd_sessions, "sessions [--json]",
     "Ask the running daemon who is connected: session id, peer, role, listener, the\n"
     "address it comes from, since when, bytes in and out, and for a tunnel its\n"
     "interface and address. End one with 'mtlsgw kick NAME'."},
    {"kick", cmd_kick, "kick NAME",
     "End the running daemon's sessions of peer NAME without revoking it."},
    {"bans", cmd_bans, "bans [--json]",
     "List the addresses the running daemon refuses for now: [daemon] ban-threshold\n"
     "failed authentications, each within ban-time of the last, ban an address for\n"
     "ban-time seconds on every listener. Shows failures and seconds left."},
    {"unban", cmd_unban, "unban ADDRESS",
     "Lift the ban of ADDRESS (IPv4 or IPv6) in the running daemon, and forget its\n"
     "failures."},
    {"invite", cmd_invite, "invite NAME --role admin|monitor|tunnel [--network CIDR]... "
     "[--allow-default] [--ttl DURATION] [--qr]",
     "Make a one-time invite code for a device to enroll itself over the network\n"
     "([enroll] listen). Prints the code (100 bits, five groups of four), the SHA-256\n"
     "of the gateway certificate for the device to pin, and the 'mtlsgw join' line.\n"
     "--ttl (default 24h; s, m, h, d, e.g. 1d12h) is how long the code is valid.\n"
     "--qr also prints the 'mtlsgw join' line as a QR code (terminal blocks).\n"
     "Only a salted hash of the code is kept (invites.json in the pki dir)."},
    {"invites", cmd_invites, "invites [--json]",
     "List invites: pending, used (when, from where, which serial) or expired."},
    {"uninvite", cmd_uninvite, "uninvite NAME", "Withdraw the invite of NAME."},
    {"join", cmd_join,
     "join URL --code CODE [--name NAME] (--ca FILE | --fingerprint SHA256) [--new-key]",
     "Device side: enroll at the hub's EST URL (https://HUB:PORT) with an invite code.\n"
     "Makes the device key on this token if absent, trusts the hub by its CA file or\n"
     "by the SHA-256 fingerprint the invite printed, writes device.crt and hub-ca.crt\n"
     "to the pki dir and prints the [uplink] lines to add. --name defaults to the\n"
     "hostname and must be the invite's NAME. --new-key replaces the device key first\n"
     "(a revoked device re-joining: its old key is never enrolled again)."},
    {"renew", cmd_renew, "renew [NAME]",
     "Device side: re-enroll now (EST simplereenroll with the current certificate) for\n"
     "[uplink NAME], or for every uplink with an enroll URL. The running daemon uses\n"
     "the new certificate for its next connection; its open tunnel stays up."},
    {"gateway", cmd_gateway, "gateway renew [--host NAME]... [--days N] [--new-key]",
     "Issue a new gateway certificate from the CA on the token and write gateway.crt\n"
     "(atomically; a copy under issued/). Same key unless --new-key (a new token key;\n"
     "the old one is deleted once the running daemon has switched). --host (repeatable)\n"
     "replaces the names; without it they are kept. --days defaults to the current\n"
     "lifetime (at most 397). The running daemon serves it to new handshakes at once;\n"
     "open sessions and tunnels stay up. Exit 3 when it did not switch."},
    {"ca", cmd_ca,
     "ca rollover [--key-type ec-p256|ec-p384|rsa-3072] [--days N] [--yes] | "
     "ca retire-old [--force] [--yes]",
     "rollover: make a new CA key on the token and a new CA certificate, cross-certify\n"
     "the old and the new CA both ways, and trust both: ca.crt holds both anchors,\n"
     "gateway.crt is reissued by the new CA (with the cross certificate, so peers that\n"
     "hold only the old anchor still verify it), new and renewed certificates come from\n"
     "the new CA, and both CRLs are kept fresh. retire-old: end the overlap once\n"
     "'mtlsgw peers' shows no active peer on the old CA (refused with the list\n"
     "otherwise, unless --force). Both ask on a terminal; --yes for scripts."},
    {"backup", cmd_backup, "backup --out FILE [--force]",
     "Write the state (registry, issued certificates, CRLs, invites, CA and chain\n"
     "certificates, audit log, config) to FILE as a POSIX tar. Never a key (they\n"
     "cannot leave the token) and never the PIN (docs/backup.md)."},
    {"restore", cmd_restore, "restore FILE [--force] [--unrevoke]",
     "Put back the state a backup holds, atomically, after checking that the token\n"
     "holds the CA key of its ca.crt. A live setup (ca.crt in the pki dir) is only\n"
     "replaced with --force; it is then kept in <pki dir>.before-restore-STAMP."},
    {"explain", cmd_explain, "explain CERT",
     "Say what the certificate in CERT (PEM or DER) would be granted, or exactly why it\n"
     "would be refused, without a connection. Exit 0 when granted, 1 when refused."},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The command a typo most likely meant (at most 2 edits, or a unique
 * prefix), or NULL. */
static const char *nearest_command(const char *name)
{
    const char *best = NULL, *prefixed = NULL;
    size_t best_d = 3, n_prefixed = 0;

    for (size_t i = 0; i < N_COMMANDS; i++) {
        size_t d = con_edit_distance(name, commands[i].name);
        if (d < best_d) {
            best_d = d;
            best = commands[i].name;
        }
        if (name[0] && strncmp(commands[i].name, name, strlen(name)) == 0) {
            prefixed = commands[i].name;
            n_prefixed++;
        }
    }
    return best ? best : n_prefixed == 1 ? prefixed : NULL;
}

/* "-c FILE" after the command is read as the command's option: say where it
 * goes instead of calling it unknown. */
static bool config_after_command(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 ||
            strncmp(argv[i], "--config=", 9) == 0)
            return true;
    }
    return false;
}

void con_err(const char *cmd, const char *fmt, ...)
{
    char msg[2048];
    const char *m = msg;
    size_t n = strlen(cmd);
    bool named = false;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Core messages name their operation ("enroll: ...", "enroll bob: ...")
     * for the daemon's log; said once here: "mtlsgw enroll: ...", "mtlsgw
     * enroll bob: ...", never "mtlsgw enroll: enroll: ...". */
    if (strncmp(m, cmd, n) == 0 && m[n] == ':')
        named = true;
    else if (strncmp(m, cmd, n) == 0 && m[n] == ' ') {
        size_t w = strcspn(m + n + 1, ": ");
        named = w > 0 && m[n + 1 + w] == ':';
    }
    if (named)
        fprintf(stderr, "mtlsgw %s\n", m);
    else
        fprintf(stderr, "mtlsgw %s: %s\n", cmd, m);
}

int con_usage(const char *cmd)
{
    const struct command *c = find_command(cmd);

    fprintf(stderr, "usage: mtlsgw [-c CONF] %s\n", c ? c->usage : cmd);
    fprintf(stderr, "       mtlsgw %s --help\n", cmd);
    return EXIT_USAGE;
}

bool con_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

bool con_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!s || s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

int con_add_network(const char *cmd, struct cidr_list *nets, const char *arg)
{
    const char *why = NULL;
    int rc = cidr_list_add(nets, arg, &why);

    if (rc == -E2BIG) {
        con_err(cmd, "at most %d --network", CIDR_LIST_MAX);
        return EXIT_USAGE;
    }
    if (rc == -EINVAL) {
        con_err(cmd, "--network %s: %s", arg, why);
        return EXIT_USAGE;
    }
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

int con_load_config(struct console *con)
{
    char *errors = NULL;
    char msg[512];
    int rc;

    if (con->cfg)
        return EXIT_OK;
    rc = config_load(con->conf_path, &con->cfg, &errors);
    if (rc < 0) {
        fputs(errors ? errors : "out of memory\n", stderr);
        if (rc == -ENOENT || (errors && strstr(errors, "cannot read")))
            fprintf(stderr, "mtlsgw: give the config file with -c CONF (default %s)\n",
                    MTLSGW_DEFAULT_CONF);
        free(errors);
        return EXIT_FAIL;
    }
    rc = privs_init(con->cfg->daemon.user, msg, sizeof(msg));
    if (rc == 2)
        fprintf(stderr, "mtlsgw: warning: %s\n", msg);
    return EXIT_OK;
}

int con_as_daemon(void)
{
    int rc = privs_as_daemon();

    if (rc < 0)
        fprintf(stderr, "mtlsgw: cannot switch to the daemon's user: %s\n", strerror(-rc));
    return rc;
}

int con_as_invoker(void)
{
    int rc = privs_as_invoker();

    if (rc < 0) {
        /* Continuing with the wrong ids could write files as the wrong user. */
        fprintf(stderr, "mtlsgw: cannot switch back to the invoking user: %s\n",
                strerror(-rc));
        exit(EXIT_FAIL);
    }
    return rc;
}

int con_read_file(const char *cmd, const char *opt, const char *path, size_t max, char **out,
                  size_t *len)
{
    int rc = strcmp(path, "-") == 0 ? con_read_stdin(max, out, len)
                                    : fs_read_input(path, max, out, len);

    if (rc == -EFBIG)
        con_err(cmd, "%s %s: file too large (over %zu bytes)", opt, path, max);
    else if (rc < 0)
        con_err(cmd, "%s %s: cannot read: %s", opt, path, strerror(-rc));
    return rc;
}

int con_write_out(const char *opt, const char *path, const void *data, size_t len,
                  unsigned mode, bool force, char *err, size_t errlen)
{
    /* Written owner-only (a PKCS#12 with its key, a backup): private. */
    unsigned flags = (force ? FS_OUT_FOLLOW : FS_OUT_KEEP) | ((mode & 077) ? 0 : FS_OUT_SECRET);
    int rc;

    fflush(stdout); /* what was printed comes before what goes to "-" */
    rc = fs_write_out(path, data, len, (mode_t)mode, flags);
    con_out_refusal(opt, path, rc, force, err, errlen);
    return rc;
}

void con_out_refusal(const char *opt, const char *path, int rc, bool force, char *err,
                     size_t errlen)
{
    if (rc == -EALREADY)
        snprintf(err, errlen, "%s %s: file exists; not overwritten (give --force to replace "
                 "it, or another FILE)", opt, path);
    else if (rc == -ELOOP && !force)
        snprintf(err, errlen, "%s %s: is a symbolic link; not written (give --force to "
                 "write the file it points to; the link stays)", opt, path);
    else if (rc == -ELOOP)
        snprintf(err, errlen, "%s %s: too many levels of symbolic links", opt, path);
    else if (rc == -EEXIST)
        snprintf(err, errlen, "%s %s: not a regular file, character device, FIFO or socket; "
                 "not written (give another FILE)", opt, path);
    else if (rc == -EISDIR)
        snprintf(err, errlen, "%s %s: is a directory; give a FILE in it", opt, path);
    else if (rc == FS_ERR_LINK_NOT_OURS)
        snprintf(err, errlen, "%s %s: a symbolic link on the way belongs to another user in "
                 "a sticky directory anyone can write (like /tmp); not followed, not written "
                 "(remove the link, or give a FILE in a directory of yours)", opt, path);
    else if (rc == FS_ERR_NODE_NOT_OURS)
        snprintf(err, errlen, "%s %s: a FIFO, socket or device of another user in a sticky "
                 "directory anyone can write (like /tmp); not written (remove it, or give a "
                 "FILE in a directory of yours)", opt, path);
    else if (rc == FS_ERR_SECRET_NOT_OURS)
        snprintf(err, errlen, "%s %s: a FIFO, socket or device of another user; this output "
                 "is private (mode 0600) and goes only to a regular file or to a FIFO, socket or "
                 "device of yours; not written (give another FILE, or '-')", opt, path);
    else if (rc < 0)
        snprintf(err, errlen, "%s %s: cannot write: %s", opt, path, strerror(-rc));
}

int con_write_file(const char *cmd, const char *opt, const char *path, const void *data,
                   size_t len, unsigned mode, bool force)
{
    char err[PATH_MAX + 200];
    int rc = con_write_out(opt, path, data, len, mode, force, err, sizeof(err));

    if (rc < 0)
        con_err(cmd, "%s", err);
    return rc;
}

FILE *con_note_stream(const char *path)
{
    return fs_out_fd(path) == STDOUT_FILENO ? stderr : stdout;
}

static void usage_all(FILE *f)
{
    fprintf(f, "usage: mtlsgw [-c CONF] COMMAND [ARGS]\n\n"
               "  -c CONF   daemon config (default %s)\n\ncommands:\n",
            MTLSGW_DEFAULT_CONF);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\n'mtlsgw COMMAND --help' explains one command. Exit status: 0 success,\n"
               "1 failure, 2 usage error.\n");
}

int mtlsgw_main(int argc, char **argv)
{
    struct console con = {.conf_path = MTLSGW_DEFAULT_CONF};
    const struct command *cmd;
    const char *sudo_user = getenv("SUDO_USER");
    int i = 1, rc;

    umask(027);
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                usage_all(stderr);
                return EXIT_USAGE;
            }
            con.conf_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            con.conf_path = argv[i] + 9;
            i++;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage_all(stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("mtlsgw %s\n", MTLSGW_VERSION);
            return EXIT_OK;
        } else {
            fprintf(stderr, "mtlsgw: unknown option %s\n", argv[i]);
            usage_all(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage_all(stderr);
        return EXIT_USAGE;
    }
    cmd = find_command(argv[i]);
    if (!cmd) {
        const char *near = nearest_command(argv[i]);
        if (near)
            fprintf(stderr, "mtlsgw: unknown command '%s'; did you mean '%s'?\n", argv[i],
                    near);
        else
            fprintf(stderr, "mtlsgw: unknown command '%s' (see 'mtlsgw --help')\n", argv[i]);
        return EXIT_USAGE;
    }
    if (config_after_command(argc - i, argv + i)) {
        fprintf(stderr, "mtlsgw %s: -c goes before the command: mtlsgw -c FILE %s ...\n",
                cmd->name, cmd->name);
        return EXIT_USAGE;
    }
    if (con_wants_help(argc - i, argv + i)) {
        printf("usage: mtlsgw [-c CONF] %s\n\n%s\n", cmd->usage, cmd->help);
        return EXIT_OK;
    }
    snprintf(con.actor, sizeof(con.actor), "console uid=%u%s%s", (unsigned)getuid(),
             sudo_user ? " sudo=" : "", sudo_user ? sudo_user : "");
    if (gnutls_global_init() < 0) {
        fprintf(stderr, "mtlsgw: cannot initialise GnuTLS\n");
        return EXIT_FAIL;
    }
    rc = cmd->run(&con, argc - i, argv + i);
    config_free(con.cfg);
    gnutls_global_deinit();
    return rc;
}
