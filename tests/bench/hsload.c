/*
 * hsload: a mutual-TLS load tool for the handshake, idle and slowtoken
 * benchmarks (tests/bench/run). Not a test.
 *
 *   hsload HOST PORT CA CERT KEY CONC SECS MODE
 *
 *   full     CONC threads, each looping for SECS seconds: connect, full
 *            handshake, wait for the server's session ticket, close_notify,
 *            close. Prints "rate=R ok=N err=E resumed=0 ...".
 *   resumed  the same, but each thread makes one full handshake and then
 *            resumes with the newest TLS 1.3 ticket it was given (tickets
 *            are single-use for some servers). Counts handshakes that were
 *            not resumed in "full=".
 *   once     CONC threads make one full handshake each, all at once (the
 *            slowtoken storm). Prints the time it took.
 *   hold     open CONC sessions (16 at a time), print "held=N err=E", keep
 *            them open until stdin closes or SECS seconds pass.
 *   ping     one session; every 5 ms a keep-alive "GET /api/v1/status";
 *            for SECS seconds or until SIGTERM/SIGINT, then prints the
 *            round-trip percentiles in microseconds.
 *
 * A handshake counts once the server's NewSessionTicket has arrived: the
 * server sends it after it has verified the client's certificate and
 * Finished, so a client never runs ahead of a server still busy with work it
 * has already been counted for. Every server benchmarked sends tickets.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#define TICKET_WAIT_MS 5000
#define IO_TIMEOUT_MS 120000
#define HOLD_OPENERS 16

static const char *host, *port, *mode;
static unsigned conc, secs;
static gnutls_certificate_credentials_t cred;
static gnutls_priority_t prio;
static struct sockaddr_storage dst;
static socklen_t dst_len;
static atomic_ullong n_ok, n_err, n_resumed, n_full;
static atomic_uint hold_next;
static volatile sig_atomic_t stop_flag;
static double t_deadline;
static atomic_flag described = ATOMIC_FLAG_INIT;
static char last_error[160];
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_error(const char *what, int rc)
{
    pthread_mutex_lock(&err_lock);
    snprintf(last_error, sizeof(last_error), "%s: %s", what,
             rc < 0 ? gnutls_strerror(rc) : strerror(rc));
    pthread_mutex_unlock(&err_lock);
    atomic_fetch_add(&n_err, 1);
}

static int tcp_connect(void)
{
    int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&dst, dst_len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* One mutual-TLS session on a connected blocking socket, optionally resuming
 * with `ticket`. Returns 0 with *out ready and its ticket received. */
static int tls_open(int fd, const gnutls_datum_t *ticket, gnutls_session_t *out)
{
    gnutls_session_t s;
    int rc;
    double until;

    rc = gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL);
    if (rc < 0)
        return rc;
    gnutls_priority_set(s, prio);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    /* The CA and the server's address: the chain is checked as a real client
     * does; the name is not (every server uses the gateway's certificate). */
    gnutls_session_set_verify_cert(s, NULL, 0);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, IO_TIMEOUT_MS);
    if (ticket && ticket->size)
        gnutls_session_set_data(s, ticket->data, ticket->size);
    do {
        rc = gnutls_handshake(s);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0)
        goto fail;
    /* Wait for the ticket: proof that the server finished its side too. */
    gnutls_record_set_timeout(s, 200);
    /* A storm (once) or a hold may queue behind many handshakes. */
    until = now_s() + (strcmp(mode, "full") && strcmp(mode, "resumed") ? IO_TIMEOUT_MS
                                                                        : TICKET_WAIT_MS) /
                          1000.0;
    while (!(gnutls_session_get_flags(s) & GNUTLS_SFLAGS_SESSION_TICKET)) {
        char b[256];
        if (now_s() > until) {
            rc = GNUTLS_E_TIMEDOUT;
            goto fail;
        }
        rc = (int)gnutls_record_recv(s, b, sizeof(b));
        if (rc == 0) {
            rc = GNUTLS_E_PREMATURE_TERMINATION;
            goto fail;
        }
        if (rc < 0 && rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_TIMEDOUT &&
            rc != GNUTLS_E_INTERRUPTED)
            goto fail;
    }
    gnutls_record_set_timeout(s, IO_TIMEOUT_MS);
    if (!atomic_flag_test_and_set(&described)) {
        char *d = gnutls_session_get_desc(s);
        fprintf(stderr, "hsload: %s:%s: %s\n", host, port, d ? d : "?");
        gnutls_free(d);
    }
    *out = s;
    return 0;
fail:
    gnutls_deinit(s);
    return rc;
}

static void tls_close(gnutls_session_t s, int fd)
{
    /* close_notify and go: waiting for the server's answer would measure the
     * round trip, not the handshake. */
    gnutls_bye(s, GNUTLS_SHUT_WR);
    gnutls_deinit(s);
    close(fd);
}

/* One handshake; the ticket of the session replaces *ticket when wanted. */
static int one_handshake(gnutls_datum_t *ticket, bool keep_ticket)
{
    gnutls_session_t s;
    int fd = tcp_connect(), rc;

    if (fd < 0) {
        note_error("connect", -fd);
        return fd;
    }
    rc = tls_open(fd, ticket, &s);
    if (rc < 0) {
        note_error("handshake", rc);
        close(fd);
        return rc;
    }
    atomic_fetch_add(&n_ok, 1);
    if (gnutls_session_is_resumed(s))
        atomic_fetch_add(&n_resumed, 1);
    else
        atomic_fetch_add(&n_full, 1);
    if (keep_ticket) {
        gnutls_datum_t d = {NULL, 0};
        if (gnutls_session_get_data2(s, &d) == 0) {
            gnutls_free(ticket->data);
            *ticket = d;
        }
    }
    tls_close(s, fd);
    return 0;
}

static void *loop_thread(void *arg)
{
    bool resumed = strcmp(mode, "resumed") == 0;
    gnutls_datum_t ticket = {NULL, 0};

    (void)arg;
    if (resumed) {
        /* The first (full) handshake only gets the ticket; not counted. */
        while (now_s() < t_deadline && one_handshake(&ticket, true) < 0)
            usleep(10000);
        atomic_fetch_sub(&n_ok, 1);
        atomic_fetch_sub(&n_full, 1);
    }
    while (now_s() < t_deadline && !stop_flag) {
        if (one_handshake(&ticket, resumed) < 0)
            usleep(1000);
    }
    gnutls_free(ticket.data);
    return NULL;
}

static void *once_thread(void *arg)
{
    (void)arg;
    one_handshake(NULL, false);
    return NULL;
}

/* ---- hold --------------------------------------------------------------- */

struct held {
    int fd;
    gnutls_session_t s;
};
static struct held *held;

static void *hold_thread(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned i = atomic_fetch_add(&hold_next, 1);
        int fd, rc;
        if (i >= conc)
            return NULL;
        fd = tcp_connect();
        if (fd < 0) {
            note_error("connect", -fd);
            continue;
        }
        rc = tls_open(fd, NULL, &held[i].s);
        if (rc < 0) {
            note_error("handshake", rc);
            close(fd);
            continue;
        }
        held[i].fd = fd;
        atomic_fetch_add(&n_ok, 1);
    }
}

static int run_hold(void)
{
    pthread_t th[HOLD_OPENERS];
    struct pollfd p = {.fd = 0, .events = POLLIN};
    double t0 = now_s(), until;
    unsigned n_open = 0;

    held = calloc(conc, sizeof(*held));
    if (!held)
        return 1;
    for (unsigned i = 0; i < conc; i++)
        held[i].fd = -1;
    for (int i = 0; i < HOLD_OPENERS; i++)
        pthread_create(&th[i], NULL, hold_thread, NULL);
    for (int i = 0; i < HOLD_OPENERS; i++)
        pthread_join(th[i], NULL);
    /* Still open? A server may have dropped some while the rest were made. */
    for (unsigned i = 0; i < conc; i++) {
        struct pollfd q = {.fd = held[i].fd, .events = POLLIN | POLLRDHUP};
        if (held[i].fd < 0)
            continue;
        if (poll(&q, 1, 0) == 1 && (q.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            atomic_fetch_add(&n_err, 1);
            continue;
        }
        n_open++;
    }
    printf("held=%u err=%llu secs=%.2f%s%s\n", n_open, (unsigned long long)atomic_load(&n_err),
           now_s() - t0, last_error[0] ? " last_error=" : "", last_error);
    fflush(stdout);
    until = now_s() + secs;
    while (!stop_flag && now_s() < until) {
        char b[64];
        if (poll(&p, 1, 200) == 1 && read(0, b, sizeof(b)) <= 0)
            break;
    }
    for (unsigned i = 0; i < conc; i++)
        if (held[i].fd >= 0)
            tls_close(held[i].s, held[i].fd);
    free(held);
    return 0;
}

/* ---- ping ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Read one HTTP answer (head + Content-Length body). 0 or a GnuTLS error. */
static int read_answer(gnutls_session_t s)
{
    char buf[8192];
    size_t have = 0;

    for (;;) {
        char *end, *cl;
        ssize_t n = gnutls_record_recv(s, buf + have, sizeof(buf) - 1 - have);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0)
            return n == 0 ? GNUTLS_E_PREMATURE_TERMINATION : (int)n;
        have += (size_t)n;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        cl = strcasestr(buf, "\ncontent-length:");
        if (!cl || cl > end)
            return 0;
        if (have >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            return 0;
        if (have == sizeof(buf) - 1)
            return GNUTLS_E_RECORD_OVERFLOW;
    }
}

static int run_ping(void)
{
    static const char req[] = "GET /api/v1/status HTTP/1.1\r\nHost: bench\r\n\r\n";
    size_t cap = 1u << 20, n = 0;
    double *rtt = malloc(cap * sizeof(double)), until = now_s() + secs, next = now_s();
    gnutls_session_t s;
    int fd = tcp_connect(), rc;

    if (!rtt || fd < 0) {
        fprintf(stderr, "hsload: ping: cannot connect\n");
        return 1;
    }
    rc = tls_open(fd, NULL, &s);
    if (rc < 0) {
        fprintf(stderr, "hsload: ping: handshake: %s\n", gnutls_strerror(rc));
        return 1;
    }
    printf("connected\n");
    fflush(stdout);
    while (!stop_flag && now_s() < until && n < cap) {
        double t0;
        next += 0.005;
        while (now_s() < next)
            usleep((useconds_t)((next - now_s()) * 1e6) + 1);
        t0 = now_s();
        rc = (int)gnutls_record_send(s, req, sizeof(req) - 1);
        if (rc < 0 || (rc = read_answer(s)) < 0) {
            fprintf(stderr, "hsload: ping: %s\n", gnutls_strerror(rc));
            break;
        }
        rtt[n++] = (now_s() - t0) * 1e6;
    }
    tls_close(s, fd);
    if (n == 0) {
        printf("n=0\n");
        return 1;
    }
    qsort(rtt, n, sizeof(double), cmp_double);
    printf("n=%zu p50=%.0f p90=%.0f p99=%.0f max=%.0f\n", n, rtt[n / 2], rtt[n * 9 / 10],
           rtt[n * 99 / 100], rtt[n - 1]);
    free(rtt);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    pthread_t *th;
    double t0, dt;
    int rc;

    if (argc != 9) {
        fprintf(stderr, "usage: hsload HOST PORT CA CERT KEY CONC SECS "
                        "full|resumed|once|hold|ping\n");
        return 2;
    }
    host = argv[1];
    port = argv[2];
    conc = (unsigned)strtoul(argv[6], NULL, 10);
    secs = (unsigned)strtoul(argv[7], NULL, 10);
    mode = argv[8];
    if (conc == 0 || getaddrinfo(host, port, &hints, &ai) != 0) {
        fprintf(stderr, "hsload: bad concurrency or address %s:%s\n", host, port);
        return 2;
    }
    memcpy(&dst, ai->ai_addr, ai->ai_addrlen);
    dst_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    gnutls_global_init();
    if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
        gnutls_certificate_set_x509_trust_file(cred, argv[3], GNUTLS_X509_FMT_PEM) <= 0 ||
        (rc = gnutls_certificate_set_x509_key_file(cred, argv[4], argv[5],
                                                   GNUTLS_X509_FMT_PEM)) < 0) {
        fprintf(stderr, "hsload: cannot load CA %s or client certificate %s / key %s\n",
                argv[3], argv[4], argv[5]);
        return 1;
    }
    /* TLS 1.3 only, GnuTLS' default ciphers, one key share (P-256, which
     * every server here picks from GnuTLS' default offer anyway): every
     * server gets the same offer, and the client, which shares the machine
     * with the server, does not make a second (X25519) key share that no
     * server uses. HSLOAD_PRIORITY overrides. */
    {
        const char *p = getenv("HSLOAD_PRIORITY");
        if (gnutls_priority_init(&prio,
                                 p ? p : "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-SECP256R1",
                                 NULL) < 0) {
            fprintf(stderr, "hsload: bad priority string\n");
            return 1;
        }
    }

    if (strcmp(mode, "hold") == 0)
        return run_hold();
    if (strcmp(mode, "ping") == 0)
        return run_ping();
    if (strcmp(mode, "full") && strcmp(mode, "resumed") && strcmp(mode, "once")) {
        fprintf(stderr, "hsload: unknown mode %s\n", mode);
        return 2;
    }
    th = calloc(conc, sizeof(*th));
    if (!th)
        return 1;
    t0 = now_s();
    t_deadline = t0 + secs;
    for (unsigned i = 0; i < conc; i++) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 * 1024);
        if (pthread_create(&th[i], &a, strcmp(mode, "once") ? loop_thread : once_thread, NULL)) {
            fprintf(stderr, "hsload: cannot start thread %u\n", i);
            return 1;
        }
        pthread_attr_destroy(&a);
    }
    for (unsigned i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    dt = now_s() - t0;
    if (strcmp(mode, "once") == 0)
        dt = dt > 0 ? dt : 1e-9;
    else
        dt = secs;
    printf("rate=%.1f ok=%llu err=%llu resumed=%llu full=%llu secs=%.2f%s%s\n",
           (double)atomic_load(&n_ok) / dt, (unsigned long long)atomic_load(&n_ok),
           (unsigned long long)atomic_load(&n_err), (unsigned long long)atomic_load(&n_resumed),
           (unsigned long long)atomic_load(&n_full), dt, last_error[0] ? " last_error=" : "",
           last_error);
    free(th);
    gnutls_priority_deinit(prio);
    gnutls_certificate_free_credentials(cred);
    return atomic_load(&n_ok) ? 0 : 1;
}
