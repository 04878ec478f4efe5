/* console.h: the console tool's commands (private to mtlsgw). */
#ifndef MTLSGW_CONSOLE_H
#define MTLSGW_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct cidr_list;
struct config;
struct json_object;
struct pki;

/* Exit codes (mtlsgw(8)). EXIT_UNACKED: the change is made, but the
 * running daemon did not acknowledge it. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNACKED = 3 };

struct console {
    const char *conf_path;
    struct config *cfg;
    char actor[96];
};

struct command {
    const char *name;
    int (*run)(struct console *con, int argc, char **argv);
    const char *usage;
    const char *help;
};

/* Print "mtlsgw CMD: msg" to stderr. */
void con_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Usage error: prints the command's usage line and returns EXIT_USAGE. */
int con_usage(const char *cmd);
/* Load the config once (exits-style: returns EXIT_OK or EXIT_FAIL). */
int con_load_config(struct console *con);
/* Run fn with the daemon user's effective ids, then switch back. */
int con_as_daemon(void);
int con_as_invoker(void);
/* Read a file as the invoking user ("-": stdin); message names the option and
 * file. */
int con_read_file(const char *cmd, const char *opt, const char *path, size_t max, char **out,
                  size_t *len);
/* Write the file of option opt (--out, --p12) as the invoking user, by
 * fs_write_out()'s rules (docs/console.md, "Where output goes"); an existing
 * regular file is kept (refused) unless force; force also writes through a
 * symbolic link. con_write_out() puts a message naming opt, path and
 * what to do in err; con_write_file() prints it. */
int con_write_out(const char *opt, const char *path, const void *data, size_t len,
                  unsigned mode, bool force, char *err, size_t errlen);
int con_write_file(const char *cmd, const char *opt, const char *path, const void *data,
                   size_t len, unsigned mode, bool force);
/* The message for fs_write_out()'s refusal rc of path (option opt) in err;
 * nothing for rc >= 0. */
void con_out_refusal(const char *opt, const char *path, int rc, bool force, char *err,
                     size_t errlen);
/* Where the "written to PATH" line goes: stderr when PATH is stdout. */
FILE *con_note_stream(const char *path);
/* getopt_long wrapper: returns true for -h/--help seen. */
bool con_wants_help(int argc, char **argv);
/* Strict unsigned parse; false with nothing changed when not a number in range. */
bool con_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
/* One --network ARG into nets; EXIT_OK, or EXIT_USAGE (too many) or
 * EXIT_USAGE (not a prefix with its length) or EXIT_FAIL (out of memory) with a
 * message naming cmd. */
int con_add_network(const char *cmd, struct cidr_list *nets, const char *arg);

/*
 * Say what a destructive step loses (lost, on stderr) and ask for "yes" on
 * the terminal; yes (--yes): do not ask. EXIT_OK to go ahead; EXIT_FAIL when
 * refused at the prompt, EXIT_USAGE when there is no terminal and no --yes.
 */
int con_confirm(const char *cmd, const char *lost, bool yes);
/* Before any work: EXIT_FAIL, with a message naming opt (and --force where
 * it helps), when path is an existing regular file or a symbolic link and
 * not force, a directory, a block device, or a new name in a directory
 * that is not there; else EXIT_OK (fs_write_out() checks again when it
 * writes). */
int con_out_check(const char *cmd, const char *opt, const char *path, bool force);
/* Read all of stdin (at most max bytes; -EFBIG beyond), NUL-terminated. */
int con_read_stdin(size_t max, char **out, size_t *len);
/* What a file given as a CSR holds instead (a certificate, a private key),
 * as a message saying what to give; NULL when it is neither. */
const char *con_not_a_csr(const char *text, size_t len);
/* Levenshtein distance of two short words ((size_t)-1 beyond 32 chars). */
size_t con_edit_distance(const char *a, const char *b);

/* The running daemon's sessions (its status "sessions_list", owned), or
 * NULL without a word when it cannot be asked (peers: online unknown). */
struct json_object *con_daemon_sessions(struct console *con);
/* A session of peer name (and serial, when not NULL) is in sessions. */
bool con_peer_online(struct json_object *sessions, const char *name, const char *serial);

int cmd_sessions(struct console *con, int argc, char **argv);
int cmd_init(struct console *con, int argc, char **argv);
int cmd_root(struct console *con, int argc, char **argv);

/* init --intermediate and init --import-ca (console-ca.c). */
struct pki_init_opts;
int con_init_intermediate(struct console *con, const struct pki_init_opts *o,
                          const char *csr_out);
int con_init_import(struct console *con, const char *cert, const char *chain);
/* The pki dir made as root and handed to the daemon's user (init, join). */
int con_make_pki_dir(const char *cmd, const char *dir);
/* A directory root has just made (its own, not writable by others) handed to
 * the daemon's user with mode, through a descriptor, never following a link;
 * -ELOOP or -EPERM when something else is there now (con_give_strerror). */
int con_give_dir(const char *dir, mode_t mode);
const char *con_give_strerror(int rc);
int cmd_csr(struct console *con, int argc, char **argv);
int cmd_enroll(struct console *con, int argc, char **argv);
int cmd_revoke(struct console *con, int argc, char **argv);
int cmd_crl(struct console *con, int argc, char **argv);
int cmd_peers(struct console *con, int argc, char **argv);
int cmd_show(struct console *con, int argc, char **argv);
int cmd_explain(struct console *con, int argc, char **argv);
int cmd_status(struct console *con, int argc, char **argv);
int cmd_kick(struct console *con, int argc, char **argv);
int cmd_bans(struct console *con, int argc, char **argv);
int cmd_unban(struct console *con, int argc, char **argv);
int cmd_invite(struct console *con, int argc, char **argv);
int cmd_invites(struct console *con, int argc, char **argv);
int cmd_uninvite(struct console *con, int argc, char **argv);
int cmd_join(struct console *con, int argc, char **argv);
int cmd_renew(struct console *con, int argc, char **argv);
int cmd_gateway(struct console *con, int argc, char **argv);
int cmd_reissue(struct console *con, int argc, char **argv);
/* show NAME --pem [--chain] (console-reissue.c); con_show_wants_pem() says
 * whether argv asks for it. */
bool con_show_wants_pem(int argc, char **argv);
int con_show_pem(struct console *con, int argc, char **argv);
/* ca rollover, ca retire-old (console-rollover.c). */
int cmd_ca(struct console *con, int argc, char **argv);
int cmd_backup(struct console *con, int argc, char **argv);
int cmd_restore(struct console *con, int argc, char **argv);
/* During a CA rollover, "old" or "new": which CA issued p ("-" without). */
struct rollover;
struct peer;
const char *con_ca_issuer(const struct rollover *ro, const struct peer *p);
/* status: the warning 180, 90 and 30 days before the CA expires. */
void con_ca_expiry_note(long long days);

/*
 * Tell the running daemon that registry and CRL changed in pki's dir, and
 * say what it answered. EXIT_OK when it acknowledged (or no listener is
 * configured: no daemon judges peers); EXIT_UNACKED, with a message naming
 * the control socket, when it could not be reached or could not reload.
 */
int con_notify_daemon(struct console *con, const struct pki *pki, const char *cmd);

/*
 * One request to the running daemon's control socket; the parsed answer,
 * or NULL after a message naming cmd. absent: what the message adds when no
 * daemon listens there (" (is mtlsgwd running?)").
 */
struct json_object *con_ask_daemon(struct console *con, const char *cmd, const char *request,
                                   const char *absent);

#endif
