/*
 * The gate's book (gateway/daemon/session/gate.c): who holds which opening
 * of [firewall] gate, and when the session process asks the parent to open
 * or close it. Only admins open it; a link-scoped address never; two admins
 * behind one NAT share an opening, which closes when the last of them is
 * no longer trusted (revoked, gone) or, with no live session, when
 * gate-timeout passes without a handshake; shutdown closes everything.
 *
 * FAKE PARENT: the privileged parent (parent/privsep.c, tested with the
 * kernel in tests/netns/privsep.c) is stood in for by a thread on the other
 * end of the socketpair that records each PS_GATE_OPEN/PS_GATE_CLOSE and
 * answers success. The session side (privsep-client.c, gate.c) is the
 * daemon's own code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "cunit-main.h"
#include "daemon.h"
#include "gate.h"
#include "privsep.h"
#include "registry.h"
#include "trustdb.h"

/* ---- the fake parent ------------------------------------------------------ */

#define MAX_SEEN 64

/* On the heap, as is the message received: MAX_SEEN requests are over 1 MB,
 * more than aarch64's tiny code model (-Dimage=true) lets static data be. */
static struct {
    pthread_mutex_t lock;
    struct ps_msg *seen; /* MAX_SEEN of them, from setup() */
    unsigned n;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *fake_parent(void *arg)
{
    int fd = *(int *)arg;
    struct ps_msg *m = malloc(sizeof(*m));

    while (m) {
        struct ps_reply rep = {.type = PS_REPLY, .rc = 0};
        ssize_t n = recv(fd, m, sizeof(*m), 0);
        if (n <= 0)
            break;
        pthread_mutex_lock(&fake.lock);
        if (fake.n < MAX_SEEN)
            fake.seen[fake.n++] = *m;
        pthread_mutex_unlock(&fake.lock);
        if (send(fd, &rep, sizeof(rep), MSG_NOSIGNAL) != (ssize_t)sizeof(rep))
            break;
    }
    free(m);
    return NULL;
}

/* The requests since the last call, as "open 192.0.2.7 30000;close ...". */
static void requests(char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    pthread_mutex_lock(&fake.lock);
    for (unsigned i = 0; i < fake.n && off < len; i++) {
        const struct ps_msg *m = &fake.seen[i];
        if (m->type == PS_GATE_OPEN)
            off += (size_t)snprintf(buf + off, len - off, "%sopen %s %u", off ? ";" : "",
                                    m->u.gate.addr, (unsigned)m->u.gate.timeout_ms);
        else
            off += (size_t)snprintf(buf + off, len - off, "%s%s %s", off ? ";" : "",
                                    m->type == PS_GATE_CLOSE ? "close" : "other",
                                    m->u.gate.addr);
    }
    fake.n = 0;
    pthread_mutex_unlock(&fake.lock);
}

#define EXPECT_REQUESTS(want)                                                                     \
    do {                                                                                          \
        char got_[1024];                                                                          \
        requests(got_, sizeof(got_));                                                             \
        EXPECT_STR(got_, want);                                                                   \
    } while (0)

/* ---- a session process without a loop ------------------------------------ */

static struct config cfg;
static struct daemon d;

struct who {
    const char *name, *serial;
    enum peer_role role;
    enum peer_status status;
};

/* A trust snapshot whose registry holds these peers (no CA, no CRL: the
 * book asks the registry only). */
static void trust(const struct who *peers, size_t n)
{
    struct registry *reg = NULL;
    struct trustdb *db = NULL, *old;

    CU_ASSERT_EQUAL_FATAL(registry_new(&reg), 0);
    for (size_t i = 0; i < n; i++) {
        struct peer p = {
            .name = (char *)peers[i].name,
            .role = peers[i].role,
            .status = peers[i].status,
            .serial = (char *)peers[i].serial,
            .key_id = "ab01",
            .not_before = time(NULL) - 3600,
            .not_after = time(NULL) + 3600,
            .enrolled_at = time(NULL) - 3600,
        };
        EXPECT_INT(registry_add(reg, &p), 0);
    }
    CU_ASSERT_EQUAL_FATAL(trustdb_from(NULL, NULL, reg, &db), 0);
    pthread_mutex_lock(&d.trust_lock);
    old = d.trust;
    d.trust = db;
    pthread_mutex_unlock(&d.trust_lock);
    trustdb_unref(old);
}

static const struct who admin1 = {"admin1", "a1", ROLE_ADMIN, PEER_ACTIVE};
static const struct who admin2 = {"admin2", "a2", ROLE_ADMIN, PEER_ACTIVE};
static const struct who mon1 = {"mon1", "c1", ROLE_MONITOR, PEER_ACTIVE};
static const struct who admin1_revoked = {"admin1", "a1", ROLE_ADMIN, PEER_REVOKED};

/* A management connection that passed its handshake. */
static void conn_of(struct conn *c, const struct who *w, const char *ip)
{
    struct sockaddr_in *sa = (struct sockaddr_in *)&c->addr;

    memset(c, 0, sizeof(*c));
    c->d = &d;
    c->l = &d.mgmt;
    c->role = (int)w->role;
    atomic_init(&c->state, CONN_OPEN);
    snprintf(c->peer, sizeof(c->peer), "%s", w->name);
    snprintf(c->serial, sizeof(c->serial), "%s", w->serial);
    snprintf(c->remote, sizeof(c->remote), "%s:50000", ip);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(50000);
    inet_pton(AF_INET, ip, &sa->sin_addr);
}

static int setup(void)
{
    static int sp[2];
    static pthread_t th;

    cfg.fw.n_gate = 1;
    cfg.fw.gate_timeout = 30;
    d.cfg = &cfg;
    d.mgmt.name = "management";
    fake.seen = calloc(MAX_SEEN, sizeof(*fake.seen));
    if (!fake.seen)
        return -1;
    pthread_mutex_init(&d.conns_lock, NULL);
    pthread_mutex_init(&d.trust_lock, NULL);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
        pthread_create(&th, NULL, fake_parent, &sp[1]) != 0)
        return -1;
    ps_client_init(sp[0]);
    return 0;
}

/* ---- the tests ------------------------------------------------------------ */

static void test_admin_opens_others_do_not(void)
{
    const struct who all[] = {admin1, mon1};
    struct conn a, m, scoped;

    trust(all, 2);
    conn_of(&m, &mon1, "192.0.2.20");
    gate_open(&m);
    EXPECT_REQUESTS("");
    conn_of(&scoped, &admin1, "169.254.9.9");
    gate_open(&scoped);
    EXPECT_REQUESTS("");
    conn_of(&a, &admin1, "192.0.2.7");
    gate_open(&a);
    EXPECT_REQUESTS("open 192.0.2.7 30000");
    /* A second handshake within the second renews nothing in the kernel. */
    gate_open(&a);
    EXPECT_REQUESTS("");
    /* Revoked: the sweep closes it at once. */
    {
        const struct who after[] = {admin1_revoked, mon1};
        trust(after, 2);
    }
    gate_sweep(&d, d.trust);
    EXPECT_REQUESTS("close 192.0.2.7");
}

/* A handshake judged before a revocation whose sweep has already run must
 * not open the gate: the book judges again under its lock. */
static void test_revoked_before_open(void)
{
    const struct who all[] = {admin1_revoked};
    struct conn a;

    trust(all, 1);
    conn_of(&a, &admin1, "192.0.2.8");
    gate_open(&a);
    EXPECT_REQUESTS("");
}

static void test_nat_shares_until_the_last_holder(void)
{
    const struct who both[] = {admin1, admin2};
    const struct who one_left[] = {admin1_revoked, admin2};
    struct conn a, b;

    trust(both, 2);
    conn_of(&a, &admin1, "198.51.100.9");
    conn_of(&b, &admin2, "198.51.100.9");
    gate_open(&a);
    gate_open(&b);
    EXPECT_REQUESTS("open 198.51.100.9 30000");
    trust(one_left, 2);
    gate_sweep(&d, d.trust);
    EXPECT_REQUESTS(""); /* admin2 still holds it */
    trust(NULL, 0);      /* admin2 gone from the registry */
    gate_sweep(&d, d.trust);
    EXPECT_REQUESTS("close 198.51.100.9");
}

/* gate-timeout 1 s: a holder with a live session is renewed by the
 * refresh; without one it lets go once the second has passed. */
static void test_refresh_and_timeout(void)
{
    const struct who all[] = {admin1, admin2};
    struct conn a, b;
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 300 * 1000 * 1000};

    cfg.fw.gate_timeout = 1;
    trust(all, 2);
    conn_of(&a, &admin1, "203.0.113.1");
    conn_of(&b, &admin2, "203.0.113.2");
    gate_open(&a);
    gate_open(&b);
    EXPECT_REQUESTS("open 203.0.113.1 1000;open 203.0.113.2 1000");
    /* a has a live session; b's ended. */
    pthread_mutex_lock(&d.conns_lock);
    d.conns = &a;
    pthread_mutex_unlock(&d.conns_lock);
    nanosleep(&ts, NULL);
    gate_refresh(&d);
    EXPECT_REQUESTS("open 203.0.113.1 1000;close 203.0.113.2");
    /* a's session is killed: it renews nothing any more. */
    atomic_store(&a.kill, KILL_KICKED);
    nanosleep(&ts, NULL);
    gate_refresh(&d);
    EXPECT_REQUESTS("close 203.0.113.1");
    pthread_mutex_lock(&d.conns_lock);
    d.conns = NULL;
    pthread_mutex_unlock(&d.conns_lock);
    cfg.fw.gate_timeout = 30;
}

/* Last: shutdown closes every opening and no handshake opens one after. */
static void test_close_all(void)
{
    const struct who all[] = {admin1, admin2};
    struct conn a, b;

    trust(all, 2);
    conn_of(&a, &admin1, "192.0.2.30");
    conn_of(&b, &admin2, "192.0.2.31");
    gate_open(&a);
    gate_open(&b);
    EXPECT_REQUESTS("open 192.0.2.30 30000;open 192.0.2.31 30000");
    gate_close_all(&d);
    {
        char got[1024];
        requests(got, sizeof(got));
        /* Newest first or oldest first: both must be closed. */
        EXPECT_CONTAINS(got, "close 192.0.2.30");
        EXPECT_CONTAINS(got, "close 192.0.2.31");
    }
    gate_open(&a);
    EXPECT_REQUESTS("");
}

static const struct cu_test tests[] = {
    {"only an admin opens, revocation closes", test_admin_opens_others_do_not},
    {"revoked before the book sees it", test_revoked_before_open},
    {"two admins behind one NAT share it", test_nat_shares_until_the_last_holder},
    {"refresh renews live sessions, timeout ends the rest", test_refresh_and_timeout},
    {"shutdown closes everything", test_close_all},
};

int main(void)
{
    if (setup() < 0) {
        perror("test-gate: socketpair, fake parent thread or its buffer");
        return 1;
    }
    return cu_run("gate", tests, sizeof(tests) / sizeof(tests[0]));
}
