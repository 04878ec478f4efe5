/*
 * mtlsgwd: the daemon. Two processes, privilege-separated (docs/architecture.md):
 *
 *   parent  (daemon user + CAP_NET_ADMIN only): binds the listeners, keeps
 *           them across restarts of the session process, supervises it and
 *           is the only caller of netconfig/ (typed requests, re-checked).
 *   session (daemon user, no capabilities, not dumpable): token, TLS,
 *           HTTP, registry. Restarted by the parent when it dies.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "build-config.h"
#include "caps.h"
#include "config.h"
#include "daemon.h"
#include "instance.h"
#include "log.h"
#include "mtlsgwd-main.h"
#include "privsep.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mtlsgwd [-c CONF] [-f] [--check-config] [--debug]\n"
               "  -c CONF           config file (default %s)\n"
               "  -f                stay in the foreground, log to stderr\n"
               "  --check-config    parse the config, report every error, exit\n"
               "  --debug           log debug messages\n",
            MTLSGW_DEFAULT_CONF);
}

static int bind_listener(const char *what, const char *spec, int *out)
{
    struct sockaddr_storage ss;
    unsigned len;
    const char *why;
    int fd, one = 1;

    if (config_parse_listen(spec, &ss, &len, &why) < 0) {
        log_err("%s listen %s: %s", what, spec, why);
        return -EINVAL;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_err("%s listen %s: socket: %s", what, spec, strerror(errno));
        return -errno;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        log_err("%s listen %s: cannot listen: %s", what, spec, strerror(e));
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

/*
 * Open files: one per connection (two per tunnel: its socket and its TUN),
 * with room for the token, the registry and the channels. The usual default
 * soft limit of 1024 is below the default max-sessions, so the daemon raises
 * its own limit at start (both processes inherit it): the soft limit up to
 * what the limits need, and as root the hard limit too. SIGHUP does not
 * change it; a max-sessions raised by a reload past it shows as "accept: Too
 * many open files" in the log, and the listener pauses for a second instead
 * of spinning.
 */
static void raise_nofile(const struct config *cfg)
{
    struct rlimit rl;
    rlim_t want = 256;

    if (cfg->mgmt.listen)
        want += cfg->mgmt.max_sessions;
    if (cfg->enroll.listen)
        want += cfg->mgmt.max_sessions;
    if (cfg->tunnel.listen)
        want += 2 * (rlim_t)cfg->tunnel.max_sessions;
    if (cfg->crl.listen)
        want += CRL_MAX_SESSIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want && geteuid() == 0) {
        struct rlimit up = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        log_warn("open files limit %llu is below the %llu the session limits need; "
                 "connections past it are not accepted",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/*
 * The control socket's directory. Made here when missing (as root: then
 * given to the daemon's user, which creates the socket in it); a directory
 * that already exists is never changed, whoever owns it: a control-socket
 * in /etc/mtlsgw or /tmp must not hand that directory to the daemon's user.
 * If that user cannot write there, the session process says so when it
 * makes the socket (control_start).
 */
static int control_dir(const struct config *cfg, uid_t uid, gid_t gid)
{
    char *dir = strdup(cfg->daemon.control_socket), *slash;
    int rc = 0, fd = -1;

    if (!dir)
        return -ENOMEM;
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        goto out;
    *slash = '\0';
    if (mkdir(dir, 0750) < 0) {
        struct stat st;
        if (errno != EEXIST)
            rc = -errno;
        else if (stat(dir, &st) < 0)
            rc = -errno;
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
        goto out;
    }
    /* Ours: the new directory itself, not what a path may be swapped for. */
    if (geteuid() == 0 && ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
                           fchown(fd, uid, gid) < 0))
        rc = -errno;
out:
    if (rc < 0)
        log_err("control socket directory %s: %s", dir, strerror(-rc));
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

/* The lock of this config's pki dir (instance.c). */
static int take_lock(const struct config *cfg, uid_t uid, int *fd)
{
    char err[1024];

    if (instance_lock(cfg->pki.dir, uid, fd, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    return 0;
}

static pid_t start_session(struct config *cfg, uid_t uid, gid_t gid,
                           const struct daemon_fds *fds, int parent_end)
{
    pid_t parent = getpid(), pid = fork();
    char err[256];

    if (pid != 0)
        return pid;
    if (parent_end >= 0)
        close(parent_end);
    /* The session process: no capabilities at all, not dumpable. */
    if (caps_drop_to(uid, gid, false, err, sizeof(err)) < 0) {
        log_err("session process: %s", err);
        _exit(1);
    }
    /* Dies with the parent (kill -9, OOM): without it nothing could close a
     * revoked admin's gate opening or take down a tunnel. Set after the
     * uid change, which clears it; getppid() catches a parent gone before. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) {
        log_err("session process: the privileged parent is gone: exiting");
        _exit(1);
    }
    if (gnutls_global_init() < 0) {
        log_err("cannot initialise GnuTLS");
        _exit(1);
    }
    _exit(daemon_run(cfg, fds) == 0 ? 0 : 1);
}

/* A new channel to a new session process (after a crash, the old one is gone). */
static int new_channel(struct daemon_fds *fds, int *parent_end)
{
    int sp[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return -errno;
    if (fds->parent >= 0)
        close(fds->parent);
    if (*parent_end >= 0)
        close(*parent_end);
    fds->parent = sp[1];
    *parent_end = sp[0];
    return 0;
}

/* The parent's loop: answer the session process's requests, refresh trust
 * timeouts, restart it when it dies (after tearing down what it had),
 * forward SIGHUP, end it on SIGTERM. */
static int supervise(struct config *cfg, uid_t uid, gid_t gid, struct daemon_fds *fds,
                     struct ps_server *ps)
{
    sigset_t mask;
    int sfd, status, rc = 0, chan = -1;
    pid_t child;
    unsigned backoff = 1;
    time_t started, refreshed = time(NULL);
    bool stopping = false;

    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0 || new_channel(fds, &chan) < 0) {
        log_err("cannot set up the parent: %s", strerror(errno));
        return 1;
    }
    child = start_session(cfg, uid, gid, fds, chan);
    close(fds->parent);
    fds->parent = -1;
    started = time(NULL);
    while (child > 0) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = chan, .events = POLLIN}};
        struct signalfd_siginfo si;
        int n = poll(p, ps ? 2 : 1, 5000);

        if (ps && time(NULL) - refreshed >= PS_TRUST_TIMEOUT_MS / 3000) {
            ps_server_refresh(ps);
            refreshed = time(NULL);
        }
        if (n > 0 && ps && (p[1].revents & (POLLIN | POLLHUP))) {
            if (ps_server_handle(ps, chan) < 0) {
                /* The session process is gone or broken: wait for SIGCHLD. */
                p[1].fd = -1;
                close(chan);
                chan = -1;
            }
        }
        if (n <= 0 || !(p[0].revents & POLLIN))
            continue;
        if (read(sfd, &si, sizeof(si)) != sizeof(si))
            continue;
        if (si.ssi_signo == SIGHUP) {
            kill(child, SIGHUP);
            continue;
        }
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            stopping = true;
            kill(child, SIGTERM);
            continue;
        }
        /* SIGCHLD */
        if (waitpid(child, &status, WNOHANG) != child)
            continue;
        /* Whatever it had opened goes with it: fail closed before anything else. */
        if (ps)
            ps_server_teardown_all(ps);
        if (stopping) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
            break;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && time(NULL) - started < 5) {
            /* It could not start (token, key, certificate): do not loop on it. */
            log_err("session process failed at start (exit %d); stopping",
                    WEXITSTATUS(status));
            rc = 1;
            break;
        }
        if (WIFSIGNALED(status))
            log_err("session process died of signal %d; restarting in %u s",
                    WTERMSIG(status), backoff);
        else
            log_err("session process exited with %d; restarting in %u s",
                    WEXITSTATUS(status), backoff);
        sleep(backoff);
        backoff = backoff < 30 ? backoff * 2 : 30;
        if (new_channel(fds, &chan) < 0) {
            rc = 1;
            break;
        }
        child = start_session(cfg, uid, gid, fds, chan);
        close(fds->parent);
        fds->parent = -1;
        started = time(NULL);
    }
    if (chan >= 0)
        close(chan);
    close(sfd);
    return rc;
}

/* What the command line asks for. */
struct args {
    const char *conf;
    bool foreground, check, debug;
};

/* Returns -1 to go on, else the exit code (help, version, usage error). */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"check-config", no_argument, NULL, 'C'},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->conf = optarg;
            break;
        case 'f':
            a->foreground = true;
            break;
        case 'C':
            a->check = true;
            break;
        case 'd':
            a->debug = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("mtlsgwd %s\n", MTLSGW_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* What must hold before anything is bound: GnuTLS reaches tokens, the
 * [daemon] user exists and we may become it. */
static int check_start(const struct config *cfg, const char *conf, uid_t *uid, gid_t *gid)
{
    struct passwd *pw;

    /* A GnuTLS built without p11-kit (OpenWrt's unless GNUTLS_PKCS11 is
     * selected) cannot reach any token: say that, not a token error later. */
    if (!gnutls_url_is_supported("pkcs11:")) {
        log_err("GnuTLS %s was built without PKCS#11 support (p11-kit): mtlsgwd keeps its "
                "keys in a PKCS#11 token and cannot run; install a GnuTLS built with p11-kit "
                "(OpenWrt: CONFIG_GNUTLS_PKCS11=y, Yocto: PACKAGECONFIG p11-kit of gnutls)",
                gnutls_check_version(NULL));
        return -1;
    }
    pw = getpwnam(cfg->daemon.user);
    if (!pw) {
        log_err("user '%s' ([daemon] user in %s) does not exist: create it (useradd --system "
                "%s) or set user = root",
                cfg->daemon.user, conf, cfg->daemon.user);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    raise_nofile(cfg);
    if (geteuid() != 0 && geteuid() != *uid) {
        log_err("running as uid %u, but [daemon] user is %s (uid %u): start as root or as "
                "that user",
                (unsigned)geteuid(), cfg->daemon.user, (unsigned)*uid);
        return -1;
    }
    return 0;
}

/* The parent keeps CAP_NET_ADMIN and nothing else of root, and installs the
 * firewall; without the capability it runs with the kernel side off, unless
 * the config needs it. */
static int become_parent(const struct config *cfg, uid_t uid, gid_t gid, struct ps_server **ps)
{
    bool need_net = cfg->tunnel.listen || cfg->n_uplinks || cfg->fw.n_gate;
    char err[256];
    int rc;

    rc = caps_drop_to(uid, gid, true, err, sizeof(err));
    if (rc == 0)
        rc = ps_server_new(cfg, ps, err, sizeof(err));
    if (rc == 0)
        return 0;
    if (need_net) {
        log_err("parent: %s (tunnels, uplinks and the gate need CAP_NET_ADMIN)", err);
        return -1;
    }
    log_warn("parent: %s; the kernel side is off (no tunnels, uplinks or gate)", err);
    if (caps_drop_to(uid, gid, false, err, sizeof(err)) < 0) {
        log_err("parent: %s", err);
        return -1;
    }
    return 0;
}

static void close_listeners(struct daemon_fds *fds)
{
    if (fds->mgmt >= 0)
        close(fds->mgmt);
    if (fds->tunnel >= 0)
        close(fds->tunnel);
    if (fds->enroll >= 0)
        close(fds->enroll);
    if (fds->crl >= 0)
        close(fds->crl);
}

int mtlsgwd_main(int argc, char **argv)
{
    struct args a = {.conf = MTLSGW_DEFAULT_CONF};
    struct config *cfg = NULL;
    char *errors = NULL;
    uid_t uid;
    gid_t gid;
    struct daemon_fds fds = {.mgmt = -1, .tunnel = -1, .enroll = -1, .crl = -1, .parent = -1};
    struct ps_server *ps = NULL;
    int rc, lock = -1;

    /* Signals wait for signalfd from the start: a SIGHUP sent right after
     * start must not kill the daemon. */
    {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
    }
    if ((rc = parse_args(argc, argv, &a)) >= 0)
        return rc;
    if (config_load(a.conf, &cfg, &errors) < 0) {
        fputs(errors ? errors : "out of memory\n", stderr);
        free(errors);
        return 1;
    }
    if (a.check) {
        printf("%s: ok\n", a.conf);
        config_free(cfg);
        return 0;
    }
    log_open("mtlsgwd", a.foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG, false);
    log_set_level(a.debug ? LOG_DEBUG : cfg->daemon.log_level);
    rc = 1;
    if (check_start(cfg, a.conf, &uid, &gid) < 0)
        goto out;
    /* Locked before anything is bound, made or replaced: a second daemon on
     * this config stops here, the first one's state untouched. */
    if (control_dir(cfg, uid, gid) < 0 || take_lock(cfg, uid, &lock) < 0)
        goto out;
    if ((cfg->mgmt.listen && bind_listener("management", cfg->mgmt.listen, &fds.mgmt) < 0) ||
        (cfg->tunnel.listen && bind_listener("tunnel", cfg->tunnel.listen, &fds.tunnel) < 0) ||
        (cfg->enroll.listen && bind_listener("enroll", cfg->enroll.listen, &fds.enroll) < 0) ||
        (cfg->crl.listen && bind_listener("crl", cfg->crl.listen, &fds.crl) < 0))
        goto out;
    if (become_parent(cfg, uid, gid, &ps) < 0)
        goto out;
    rc = supervise(cfg, uid, gid, &fds, ps);
    ps_server_free(ps);
    close_listeners(&fds);
    log_info("stopped");
out:
    if (lock >= 0)
        close(lock);
    config_free(cfg);
    return rc;
}
