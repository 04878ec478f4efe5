/*
 * The privileged parent's judgement of a roaming tunnel peer
 * (gateway/daemon/parent/roam.c), as a compromised session process would
 * test it: the parent is made by ps_server_new_record (its kernel calls
 * recorded, not made) and sent PS_TUN_UP requests naming [trust hubA] with
 * certificates and CRL files made here. Whatever the session process sends
 * or writes, the parent routes only a network the issuer put in a valid,
 * unrevoked certificate of a tunnel peer, inside root's [trust hubA]
 * networks, and refuses everything else before any kernel call.
 *
 *   [trust hubA] ca = hubA CA (EC P-256, made here), roles = tunnel,
 *                networks = 10.20.0.0/16
 *   roamer: tunnel peer of hubA, networks 10.20.1.0/24 and 10.30.0.0/24
 *   forger: the same names under another CA ("evil")
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "cunit-main.h"
#include "privsep.h"
#include "trustdb.h"
#include "verify.h"

static struct config *cfg;
static struct ps_server *ps;
static int chan[2] = {-1, -1};
static char dir[64];
static gnutls_x509_privkey_t ca_key, evil_key, peer_key;
static gnutls_x509_crt_t ca, evil;
static uint64_t crl_number;

static gnutls_x509_privkey_t new_key(void)
{
    gnutls_x509_privkey_t k;

    CU_ASSERT_FATAL(gnutls_x509_privkey_init(&k) == 0);
    CU_ASSERT_FATAL(gnutls_x509_privkey_generate(
                        k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                        0) == 0);
    return k;
}

/* A CA (issuer NULL: self-signed) or a client certificate with URIs. */
static gnutls_x509_crt_t new_cert(const char *cn, gnutls_x509_privkey_t key,
                                  gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
                                  const char *const *uris, unsigned serial)
{
    gnutls_x509_crt_t c;
    unsigned char sn[2] = {0x10, (unsigned char)serial};
    time_t now = time(NULL);

    CU_ASSERT_FATAL(gnutls_x509_crt_init(&c) == 0);
    gnutls_x509_crt_set_version(c, 3);
    gnutls_x509_crt_set_serial(c, sn, sizeof(sn));
    gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
    gnutls_x509_crt_set_activation_time(c, now - 3600);
    gnutls_x509_crt_set_expiration_time(c, now + 86400);
    gnutls_x509_crt_set_key(c, key);
    if (!issuer) {
        gnutls_x509_crt_set_basic_constraints(c, 1, 0);
        gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
    } else {
        gnutls_x509_crt_set_basic_constraints(c, 0, -1);
        gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_DIGITAL_SIGNATURE);
        gnutls_x509_crt_set_key_purpose_oid(c, GNUTLS_KP_TLS_WWW_CLIENT, 0);
        for (size_t i = 0; uris && uris[i]; i++)
            gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_URI, uris[i],
                                                 (unsigned)strlen(uris[i]),
                                                 GNUTLS_FSAN_APPEND);
    }
    CU_ASSERT_FATAL(gnutls_x509_crt_sign2(c, issuer ? issuer : c, issuer ? issuer_key : key,
                                          GNUTLS_DIG_SHA256, 0) == 0);
    return c;
}

static void write_der(const char *path, const gnutls_datum_t *d)
{
    FILE *f = fopen(path, "w");

    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(fwrite(d->data, 1, d->size, f) == d->size);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

/* The CRL's thisUpdate, seconds before now (negative: ahead). */
static long this_ago = 60;

/* hubA's CRL file as the session process keeps it: signed by signer,
 * listing revoked (NULL: nothing), nextUpdate next_in seconds ahead (0:
 * none), thisUpdate this_ago seconds ago, cRLNumber the octets num. */
static void write_crl_num(gnutls_x509_crt_t signer, gnutls_x509_privkey_t key,
                          gnutls_x509_crt_t revoked, long next_in, const unsigned char *num,
                          size_t num_len)
{
    gnutls_x509_crl_t crl;
    gnutls_datum_t d;
    char path[128];
    time_t now = time(NULL);

    CU_ASSERT_FATAL(gnutls_x509_crl_init(&crl) == 0);
    gnutls_x509_crl_set_version(crl, 2);
    gnutls_x509_crl_set_this_update(crl, now - this_ago);
    if (next_in)
        gnutls_x509_crl_set_next_update(crl, now + next_in);
    gnutls_x509_crl_set_number(crl, num, num_len);
    if (revoked)
        gnutls_x509_crl_set_crt(crl, revoked, now - 30);
    CU_ASSERT_FATAL(gnutls_x509_crl_sign2(crl, signer, key, GNUTLS_DIG_SHA256, 0) == 0);
    CU_ASSERT_FATAL(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_DER, &d) == 0);
    snprintf(path, sizeof(path), "%s/pki", dir);
    {
        char file[256];
        trustdb_issuer_crl_path(path, "hubA", file, sizeof(file));
        write_der(file, &d);
    }
    gnutls_free(d.data);
    gnutls_x509_crl_deinit(crl);
}

static void write_crl(gnutls_x509_crt_t signer, gnutls_x509_privkey_t key,
                      gnutls_x509_crt_t revoked, long next_in, uint64_t number)
{
    unsigned char num[8];

    for (int i = 0; i < 8; i++)
        num[i] = (unsigned char)(number >> (56 - 8 * i));
    write_crl_num(signer, key, revoked, next_in, num, sizeof(num));
}

static void world_up(void)
{
    char path[128], conf[1024], *errors = NULL, err[PS_ERRLEN] = "";
    gnutls_datum_t d;

    snprintf(dir, sizeof(dir), "/tmp/mtlsgw-roam-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/pki", dir);
    CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
    snprintf(path, sizeof(path), "%s/hubA-ca.crt", dir);
    CU_ASSERT_FATAL(gnutls_x509_crt_export2(ca, GNUTLS_X509_FMT_PEM, &d) == 0);
    write_der(path, &d);
    gnutls_free(d.data);
    snprintf(conf, sizeof(conf),
             "[pki]\ndir = %s/pki\n"
             "[tunnel]\nlisten = 192.0.2.1:4433\npool = 10.99.0.0/24\nroutes = 10.10.0.0/24\n"
             "peer-networks = 10.0.0.0/8\n"
             "[trust hubA]\nca = %s\ncrl-url = http://192.0.2.7/crl\nroles = tunnel\n"
             "networks = 10.20.0.0/16\n",
             dir, path);
    snprintf(path, sizeof(path), "%s/mtlsgwd.conf", dir);
    {
        FILE *f = fopen(path, "w");
        CU_ASSERT_FATAL(f != NULL);
        fputs(conf, f);
        CU_ASSERT_FATAL(fclose(f) == 0);
    }
    if (config_load(path, &cfg, &errors) < 0)
        fprintf(stderr, "config: %s", errors ? errors : "out of memory\n");
    free(errors);
    CU_ASSERT_FATAL(cfg != NULL);
    if (ps_server_new_record(cfg, &ps, err, sizeof(err)) < 0)
        fprintf(stderr, "ps_server_new_record: %s\n", err);
    CU_ASSERT_FATAL(ps != NULL);
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) == 0);
    crl_number = 5;
}

static void world_down(void)
{
    char cmd[128];

    ps_server_free(ps);
    ps = NULL;
    config_free(cfg);
    cfg = NULL;
    close(chan[0]);
    close(chan[1]);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* A roaming peer's request: trust, certificate, name, one route (or none). */
static void build(struct ps_msg *m, const char *trust, gnutls_x509_crt_t crt, const char *name,
                  const char *route, unsigned n)
{
    struct ps_tun_up *u = &m->u.up;
    gnutls_datum_t d;

    memset(m, 0, sizeof(*m));
    m->type = PS_TUN_UP;
    snprintf(u->ifname, sizeof(u->ifname), "mtg%u", n);
    snprintf(u->peer_name, sizeof(u->peer_name), "%s", name);
    snprintf(u->local, sizeof(u->local), "10.99.0.1");
    snprintf(u->remote, sizeof(u->remote), "10.99.0.%u", n + 2);
    u->mtu = 1400;
    snprintf(u->allowed[u->n_allowed++], PS_ADDRLEN, "10.10.0.0/24");
    if (route)
        snprintf(u->routes[u->n_routes++], PS_ADDRLEN, "%s", route);
    snprintf(u->trust, sizeof(u->trust), "%s", trust);
    CU_ASSERT_FATAL(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &d) == 0);
    CU_ASSERT_FATAL(d.size <= PS_CERT_MAX);
    memcpy(u->cert, d.data, d.size);
    u->cert_len = d.size;
    gnutls_free(d.data);
}

/* Sends m, returns the parent's rc (1: no reply), its message into err. */
static int ask(const struct ps_msg *m, char *err, size_t errlen)
{
    struct ps_reply rep;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};

    if (send(chan[0], m, sizeof(*m), 0) != (ssize_t)sizeof(*m) ||
        ps_server_handle(ps, chan[1]) < 0 ||
        recvmsg(chan[0], &mh, 0) != (ssize_t)sizeof(rep) || rep.type != PS_REPLY)
        return 1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        int fd;
        memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
        close(fd);
    }
    rep.err[PS_ERRLEN - 1] = '\0';
    snprintf(err, errlen, "%s", rep.err);
    return rep.rc;
}

/* want 0: accepted; else refused with err_has in the message and the
 * kernel untouched. */
static void expect(const char *what, const struct ps_msg *m, int want, const char *err_has)
{
    char *before = strdup(ps_server_record(ps)), err[PS_ERRLEN] = "";
    int rc;

    CU_ASSERT_FATAL(before != NULL);
    rc = ask(m, err, sizeof(err));
    if (rc != want)
        fprintf(stderr, "%s: expected %d, got %d (%s)\n", what, want, rc, err);
    CU_ASSERT_EQUAL(rc, want);
    if (err_has && !strstr(err, err_has)) {
        fprintf(stderr, "%s: message '%s' lacks '%s'\n", what, err, err_has);
        CU_FAIL("message");
    }
    if (want != 0 && strcmp(before, ps_server_record(ps)) != 0) {
        fprintf(stderr, "%s: refused, yet the kernel was asked:\n%s\n", what,
                ps_server_record(ps) + strlen(before));
        CU_FAIL("kernel touched");
    }
    free(before);
}

static const char *const roamer_uris[] = {"urn:mtlsgw:role:tunnel",
                                          "urn:mtlsgw:network:10.20.1.0/24",
                                          "urn:mtlsgw:network:10.30.0.0/24", NULL};
static const char *const monitor_uris[] = {"urn:mtlsgw:role:monitor",
                                           "urn:mtlsgw:network:10.20.1.0/24", NULL};

static void test_roam(void)
{
    gnutls_x509_crt_t roamer = new_cert("roamer", peer_key, ca, ca_key, roamer_uris, 1);
    gnutls_x509_crt_t forged = new_cert("roamer", peer_key, evil, evil_key, roamer_uris, 1);
    gnutls_x509_crt_t mon = new_cert("mon", peer_key, ca, ca_key, monitor_uris, 2);
    struct ps_msg m;

    world_up();
    build(&m, "hubA", roamer, "roamer", "10.20.1.0/24", 1);
    expect("no CRL fetched yet", &m, -EPERM, "no CRL fetched yet");
    write_crl(evil, evil_key, NULL, 3600, crl_number);
    expect("a CRL the session process signed itself", &m, -EPERM, "not signed by");
    write_crl(ca, ca_key, NULL, -60, crl_number);
    expect("a CRL past its nextUpdate", &m, -EPERM, "nextUpdate has passed");
    write_crl(ca, ca_key, NULL, 0, crl_number);
    expect("a CRL without nextUpdate (good forever)", &m, -EPERM, "no nextUpdate");
    {
        /* Past the cap: refused unread (GnuTLS's import is quadratic). */
        static unsigned char big[3u * 1024 * 1024];
        gnutls_datum_t d = {big, sizeof(big)};
        char path[128], file[256];
        snprintf(path, sizeof(path), "%s/pki", dir);
        trustdb_issuer_crl_path(path, "hubA", file, sizeof(file));
        write_der(file, &d);
        expect("a CRL file over 2 MiB", &m, -EPERM, "larger than");
    }
    write_crl(ca, ca_key, NULL, 3600, crl_number);

    build(&m, "hubB", roamer, "roamer", "10.20.1.0/24", 1);
    expect("an issuer root's config does not list", &m, -EPERM, "no [trust hubB]");
    build(&m, "hubA", forged, "roamer", "10.20.1.0/24", 1);
    expect("a certificate of another CA", &m, -EPERM, "not signed by [trust hubA]");
    build(&m, "hubA", mon, "mon", "10.20.1.0/24", 1);
    expect("a monitor peer's certificate", &m, -EPERM, "not a tunnel peer");
    build(&m, "hubA", roamer, "someone", "10.20.1.0/24", 1);
    expect("another peer's name", &m, -EPERM, "its certificate names 'roamer'");
    build(&m, "hubA", roamer, "roamer", "10.30.0.0/24", 1);
    expect("a network of the certificate outside networks =", &m, -EPERM,
           "outside [trust hubA] networks");
    build(&m, "hubA", roamer, "roamer", "10.20.2.0/24", 1);
    expect("inside networks = but not in the certificate", &m, -EPERM,
           "not a network in roaming peer roamer's certificate");
    build(&m, "hubA", roamer, "roamer", "10.20.0.0/16", 1);
    expect("wider than the certificate's network", &m, -EPERM, "not a network in");
    build(&m, "hubA", roamer, "roamer", "10.99.0.0/24", 1);
    expect("over the pool", &m, -EPERM, NULL);
    build(&m, "hubA", roamer, "roamer", "10.20.1.0/24", 1);
    m.u.up.cert[m.u.up.cert_len - 5] ^= 0x01; /* in the signature */
    expect("a certificate changed in transit", &m, -EPERM, NULL);
    build(&m, "hubA", roamer, "roamer", "10.20.1.0/24", 1);
    m.u.up.cert_len = PS_CERT_MAX + 1;
    expect("a certificate length past the buffer", &m, -EINVAL, "malformed");

    build(&m, "hubA", roamer, "roamer", NULL, 1);
    expect("no route: accepted", &m, 0, NULL);
    build(&m, "hubA", roamer, "roamer", "10.20.1.0/24", 2);
    expect("its certificate's network inside networks =: accepted", &m, 0, NULL);
    CU_ASSERT(strstr(ps_server_record(ps), "route_add 10.20.1.0/24 dev mtg2") != NULL);

    write_crl(ca, ca_key, roamer, 3600, crl_number + 1);
    build(&m, "hubA", roamer, "roamer", NULL, 3);
    expect("listed by hubA's CRL", &m, -EPERM, "revoked by issuer hubA's CRL");
    write_crl(ca, ca_key, NULL, 3600, crl_number);
    expect("an older CRL (lower number) put back", &m, -EPERM, "older than one seen");
    world_down();

    gnutls_x509_crt_deinit(roamer);
    gnutls_x509_crt_deinit(forged);
    gnutls_x509_crt_deinit(mon);
}

/*
 * Freshness is the CRL's signed thisUpdate (max-stale 3600 here), never the
 * file's mtime, which a compromised session process can set: an old CRL
 * just written is stale, a recent one with an old mtime is fresh.
 */
static void test_stale(void)
{
    gnutls_x509_crt_t roamer = new_cert("roamer", peer_key, ca, ca_key, roamer_uris, 1);
    struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    char path[128], file[256];
    struct ps_msg m;

    world_up();
    snprintf(path, sizeof(path), "%s/pki", dir);
    trustdb_issuer_crl_path(path, "hubA", file, sizeof(file));
    build(&m, "hubA", roamer, "roamer", NULL, 1);
    this_ago = 7200;
    write_crl(ca, ca_key, NULL, 86400, crl_number);
    expect("a CRL signed longer ago than max-stale, written (touched) now", &m, -EPERM,
           "past max-stale");
    this_ago = -3600;
    write_crl(ca, ca_key, NULL, 86400, crl_number + 1);
    expect("a CRL signed an hour ahead of this clock", &m, -EPERM, "ahead of this clock");
    this_ago = 60;
    write_crl(ca, ca_key, NULL, 86400, crl_number + 2);
    CU_ASSERT_FATAL(utimensat(AT_FDCWD, file, old, 0) == 0);
    expect("a CRL signed a minute ago, its file's mtime two hours old: fresh", &m, 0, NULL);
    world_down();
    gnutls_x509_crt_deinit(roamer);
}

/* cRLNumbers are compared as integers of up to 20 octets: 2^64 (9 octets)
 * seen, 2^64 - 1 (8 octets) is older (it used to read as equal: both
 * "UINT64_MAX"). */
static void test_big_number(void)
{
    gnutls_x509_crt_t roamer = new_cert("roamer", peer_key, ca, ca_key, roamer_uris, 1);
    static const unsigned char two64[9] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char below[9] = {0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char above[10] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    struct ps_msg m;

    world_up();
    build(&m, "hubA", roamer, "roamer", NULL, 1);
    write_crl_num(ca, ca_key, NULL, 86400, two64, sizeof(two64));
    expect("CRL number 2^64 (9 octets)", &m, 0, NULL);
    build(&m, "hubA", roamer, "roamer", NULL, 2);
    write_crl_num(ca, ca_key, NULL, 86400, below, sizeof(below));
    expect("then CRL number 2^64 - 1", &m, -EPERM, "older than one seen");
    write_crl_num(ca, ca_key, NULL, 86400, above, sizeof(above));
    expect("then CRL number 2^72 + 1 (10 octets)", &m, 0, NULL);
    world_down();
    gnutls_x509_crt_deinit(roamer);
}

/* DER: tag, definite length, contents (out may be NULL: the size only). */
static size_t der_put(unsigned char *out, unsigned char tag, const unsigned char *body,
                      size_t len)
{
    size_t h = len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : 5;

    if (out) {
        out[0] = tag;
        if (h == 2) {
            out[1] = (unsigned char)len;
        } else {
            out[1] = (unsigned char)(0x80 | (h - 2));
            for (size_t i = 0; i < h - 2; i++)
                out[2 + i] = (unsigned char)(len >> (8 * (h - 3 - i)));
        }
        if (body)
            memmove(out + h, body, len);
    }
    return h + len;
}

/*
 * A forged CRL in the name of hubA's CA (att16b/bigcrl): n entries with a
 * reasonCode each (37 bytes), a signature of junk. No key needed: anyone, a compromised
 * session process too, can write one. GnuTLS's import of it took the
 * parent a minute (the tunnels stalled with it).
 */
static const unsigned char ecdsa_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
                                             0x3d, 0x04, 0x03, 0x02};

static unsigned char *forged_crl_alg(size_t n, size_t *len, const unsigned char *alg,
                                     size_t alg_len)
{
    static const unsigned char sig[] = {0x00, 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01};
    static const unsigned char when[] = "260101000000Z";
    gnutls_datum_t dn;
    size_t ent = n * 37, cap = ent + 4096, o = 0, tbs_len, all;
    unsigned char *list = malloc(ent + 8), *tbs = malloc(cap), *out;

    CU_ASSERT_FATAL(list && tbs);
    CU_ASSERT_FATAL(gnutls_x509_crt_get_raw_dn(ca, &dn) == 0);
    for (size_t i = 0; i < n; i++) {
        /* SEQUENCE { serial, revocationDate, { reasonCode keyCompromise } } */
        unsigned char e[37] = {0x30, 35, 0x02, 4, 0x01, (unsigned char)(i >> 16),
                               (unsigned char)(i >> 8), (unsigned char)i, 0x17, 13};
        static const unsigned char reason[14] = {0x30, 12, 0x30, 10, 0x06, 3, 0x55, 0x1d,
                                                 0x15, 0x04, 3, 0x0a, 1, 1};
        memcpy(e + 10, when, 13);
        memcpy(e + 23, reason, sizeof(reason));
        memcpy(list + 37 * i, e, 37);
    }
    o += der_put(tbs + o, 0x02, (const unsigned char *)"\x01", 1); /* v2 */
    memcpy(tbs + o, alg, alg_len);
    o += alg_len;
    memcpy(tbs + o, dn.data, dn.size);
    o += dn.size;
    o += der_put(tbs + o, 0x17, when, 13);
    o += der_put(tbs + o, 0x17, (const unsigned char *)"991231000000Z", 13);
    o += der_put(tbs + o, 0x30, list, ent);
    tbs_len = der_put(NULL, 0x30, NULL, o);
    all = tbs_len + alg_len + sizeof(sig) + 2;
    out = malloc(all + 8);
    CU_ASSERT_FATAL(out != NULL);
    {
        size_t h = der_put(out, 0x30, NULL, all) - all, q = h;
        q += der_put(out + q, 0x30, tbs, o);
        memcpy(out + q, alg, alg_len);
        q += alg_len;
        q += der_put(out + q, 0x03, sig, sizeof(sig));
        *len = q;
    }
    gnutls_free(dn.data);
    free(list);
    free(tbs);
    return out;
}

static unsigned char *forged_crl(size_t n, size_t *len)
{
    return forged_crl_alg(n, len, ecdsa_sha256, sizeof(ecdsa_sha256));
}


static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * What a compromised session process can put where the parent reads the
 * kept CRL: a forged 2 MiB CRL (refused on its signature, before GnuTLS's
 * quadratic import, in well under a second), a FIFO (refused, not opened
 * blocking: the parent would wait there forever), a symlink (not followed).
 */
static void test_hostile_files(void)
{
    gnutls_x509_crt_t roamer = new_cert("roamer", peer_key, ca, ca_key, roamer_uris, 1);
    char path[128], file[256], other[256];
    unsigned char *big;
    size_t len;
    double t0, el;
    struct ps_msg m;

    world_up();
    snprintf(path, sizeof(path), "%s/pki", dir);
    trustdb_issuer_crl_path(path, "hubA", file, sizeof(file));
    build(&m, "hubA", roamer, "roamer", NULL, 1);

    big = forged_crl(56000, &len);
    printf("\n# forged CRL: 56,000 entries, %zu bytes\n", len);
    CU_ASSERT(len <= 2u * 1024 * 1024);
    {
        gnutls_datum_t d = {big, (unsigned)len};
        write_der(file, &d);
    }
    t0 = now_s();
    expect("a forged 2 MiB CRL in hubA's name", &m, -EPERM, "not signed by its CA");
    el = now_s() - t0;
    printf("# the parent refused it in %.3f s\n", el);
    CU_ASSERT(el < 1.0);
    t0 = now_s();
    CU_ASSERT_EQUAL(verify_crl_precheck(big, len, ca), -EPERM);
    CU_ASSERT(now_s() - t0 < 1.0);
    free(big);

    CU_ASSERT_FATAL(unlink(file) == 0);
    CU_ASSERT_FATAL(mkfifo(file, 0644) == 0);
    alarm(20); /* blocked in open() on the FIFO: killed, and failed */
    expect("a FIFO where the CRL is kept", &m, -EPERM, "not a regular file");
    alarm(0);
    CU_ASSERT_FATAL(unlink(file) == 0);

    write_crl(ca, ca_key, NULL, 3600, crl_number);
    snprintf(other, sizeof(other), "%s/elsewhere.crl", dir);
    CU_ASSERT_FATAL(rename(file, other) == 0);
    CU_ASSERT_FATAL(symlink(other, file) == 0);
    expect("a symlink where the CRL is kept (to a good CRL)", &m, -EPERM,
           "not a regular file");
    CU_ASSERT_FATAL(unlink(file) == 0);
    CU_ASSERT_FATAL(rename(other, file) == 0);
    expect("the same CRL as a file: accepted", &m, 0, NULL);
    world_down();
    gnutls_x509_crt_deinit(roamer);
}

/* A CRL signed by a clock a minute fast is signed all the same
 * (verify_crl_signed_by): its time is verify_crl_fresh's to judge, with
 * its 300 s of skew (att16b/crl-future.sh: the fetcher took it for a bad
 * signature). The pre-check agrees, PEM or DER. */
static void test_crl_signature(void)
{
    gnutls_x509_crl_t crl;
    gnutls_datum_t der, pem;
    time_t now = time(NULL);

    CU_ASSERT_FATAL(gnutls_x509_crl_init(&crl) == 0);
    gnutls_x509_crl_set_version(crl, 2);
    gnutls_x509_crl_set_this_update(crl, now + 60);
    gnutls_x509_crl_set_next_update(crl, now + 3600);
    CU_ASSERT_FATAL(gnutls_x509_crl_sign2(crl, ca, ca_key, GNUTLS_DIG_SHA256, 0) == 0);
    CU_ASSERT(verify_crl_signed_by(crl, ca));
    CU_ASSERT(!verify_crl_signed_by(crl, evil));
    CU_ASSERT(verify_crl_fresh(now + 60, now + 3600, 3600, now, NULL, 0));
    CU_ASSERT_FATAL(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_DER, &der) == 0);
    CU_ASSERT_FATAL(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem) == 0);
    CU_ASSERT_EQUAL(verify_crl_precheck(der.data, der.size, ca), 0);
    CU_ASSERT_EQUAL(verify_crl_precheck(pem.data, pem.size, ca), 0);
    CU_ASSERT_EQUAL(verify_crl_precheck(der.data, der.size, evil), -EPERM);
    der.data[der.size - 3] ^= 1; /* in the signature */
    CU_ASSERT_EQUAL(verify_crl_precheck(der.data, der.size, ca), -EPERM);
    CU_ASSERT_EQUAL(verify_crl_precheck("garbage", 7, ca), -EBADMSG);
    gnutls_free(der.data);
    gnutls_free(pem.data);
    gnutls_x509_crl_deinit(crl);
    /* Past its nextUpdate: signed, and not fresh. */
    CU_ASSERT_FATAL(gnutls_x509_crl_init(&crl) == 0);
    gnutls_x509_crl_set_version(crl, 2);
    gnutls_x509_crl_set_this_update(crl, now - 7200);
    gnutls_x509_crl_set_next_update(crl, now - 3600);
    CU_ASSERT_FATAL(gnutls_x509_crl_sign2(crl, ca, ca_key, GNUTLS_DIG_SHA256, 0) == 0);
    CU_ASSERT(verify_crl_signed_by(crl, ca));
    gnutls_x509_crl_deinit(crl);
}

/*
 * att16c: the pre-check reads exactly what is imported. A real CRL with a
 * forged one after it (PEM appended to DER: GnuTLS's DER import refuses
 * the trailing bytes and its PEM import found the forged block), or bytes
 * after the signature, are not one CRL; an algorithm GnuTLS does not know
 * is refused, and RSA-PSS (not checked before import) only while small.
 */
static void test_crl_smuggle(void)
{
    static const unsigned char pss[] = {0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                        0xf7, 0x0d, 0x01, 0x01, 0x0a};
    gnutls_x509_crl_t crl;
    gnutls_datum_t der, forged_der, forged_pem = {NULL, 0};
    unsigned char *buf, *forged;
    size_t flen;
    time_t now = time(NULL);

    CU_ASSERT_FATAL(gnutls_x509_crl_init(&crl) == 0);
    gnutls_x509_crl_set_version(crl, 2);
    gnutls_x509_crl_set_this_update(crl, now - 60);
    gnutls_x509_crl_set_next_update(crl, now + 3600);
    CU_ASSERT_FATAL(gnutls_x509_crl_sign2(crl, ca, ca_key, GNUTLS_DIG_SHA256, 0) == 0);
    CU_ASSERT_FATAL(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_DER, &der) == 0);
    gnutls_x509_crl_deinit(crl);
    forged = forged_crl(100, &flen);
    forged_der.data = forged;
    forged_der.size = (unsigned)flen;
    CU_ASSERT_FATAL(gnutls_pem_base64_encode2("X509 CRL", &forged_der, &forged_pem) == 0);
    buf = malloc(der.size + forged_pem.size + 1);
    CU_ASSERT_FATAL(buf != NULL);
    memcpy(buf, der.data, der.size);
    memcpy(buf + der.size, forged_pem.data, forged_pem.size);
    CU_ASSERT_EQUAL(verify_crl_precheck(der.data, der.size, ca), 0);
    CU_ASSERT_EQUAL(verify_crl_precheck(buf, der.size + forged_pem.size, ca), -EBADMSG);
    CU_ASSERT_EQUAL(verify_crl_precheck(buf, der.size + 1, ca), -EBADMSG);
    /* What is imported is what was checked: DER as DER, never a PEM block
     * found after it. */
    CU_ASSERT_FATAL(gnutls_x509_crl_init(&crl) == 0);
    CU_ASSERT_EQUAL(verify_crl_import(crl, buf, der.size + forged_pem.size), -EBADMSG);
    gnutls_x509_crl_deinit(crl);
    CU_ASSERT_FATAL(gnutls_x509_crl_init(&crl) == 0);
    CU_ASSERT_EQUAL(verify_crl_import(crl, der.data, der.size), 0);
    gnutls_x509_crl_deinit(crl);
    /* An OID GnuTLS does not know (ecdsa-with-SHA256's last arc changed). */
    forged[flen - 12] = 0x7f;
    CU_ASSERT_EQUAL(verify_crl_precheck(forged, flen, ca), -ENOTSUP);
    free(forged);
    /* RSA-PSS: unchecked, so small only (the size bounds the import). */
    forged = forged_crl_alg(100, &flen, pss, sizeof(pss));
    CU_ASSERT_EQUAL(verify_crl_precheck(forged, flen, ca), 0);
    free(forged);
    forged = forged_crl_alg(2000, &flen, pss, sizeof(pss));
    CU_ASSERT(flen > VERIFY_CRL_MAX_UNCHECKED_BYTES);
    CU_ASSERT_EQUAL(verify_crl_precheck(forged, flen, ca), -EFBIG);
    free(forged);
    free(buf);
    gnutls_free(forged_pem.data);
    gnutls_free(der.data);
}

static void setup_keys(void)
{
    ca_key = new_key();
    evil_key = new_key();
    peer_key = new_key();
    ca = new_cert("hubA CA", ca_key, NULL, NULL, NULL, 0);
    evil = new_cert("hubA CA", evil_key, NULL, NULL, NULL, 0);
}

static void test_all(void)
{
    setup_keys();
    test_roam();
    test_stale();
    test_big_number();
    test_crl_signature();
    test_crl_smuggle();
    test_hostile_files();
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(evil);
    gnutls_x509_privkey_deinit(ca_key);
    gnutls_x509_privkey_deinit(evil_key);
    gnutls_x509_privkey_deinit(peer_key);
}

static const struct cu_test tests[] = {
    {"roaming peer: the parent's own checks", test_all},
};

CU_MAIN("roam", tests)
