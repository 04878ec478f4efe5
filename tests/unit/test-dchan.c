/*
 * The UDP data channel's record layer (gateway/daemon/session/dchan.c):
 * keys from two real GnuTLS sessions after a real handshake over a
 * socketpair, records sealed and opened, tampering, replay, reordering,
 * epochs and the counter limit. raw_seal() builds records from the bytes
 * docs/tunnel-protocol.md specifies, with GnuTLS's AEAD directly, so the
 * format itself is checked and not only dchan against itself.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "cunit-main.h"
#include "dchan.h"

#define PRIO_13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define PRIO_CHACHA "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305"
#define PRIO_12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"
#define PRIO_12_NOEMS "NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_SESSION_HASH"

struct pair {
    gnutls_session_t hub, spoke;
    gnutls_certificate_credentials_t cred;
    int fds[2];
};

static gnutls_x509_privkey_t g_key;
static gnutls_x509_crt_t g_crt;

/* A throwaway self-signed certificate, made once. */
static void make_cert(void)
{
    time_t now = time(NULL);

    if (g_crt)
        return;
    CU_ASSERT_FATAL(gnutls_x509_privkey_init(&g_key) == 0);
    CU_ASSERT_FATAL(gnutls_x509_privkey_generate(g_key, GNUTLS_PK_ECDSA,
                                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                                 0) == 0);
    CU_ASSERT_FATAL(gnutls_x509_crt_init(&g_crt) == 0);
    gnutls_x509_crt_set_version(g_crt, 3);
    gnutls_x509_crt_set_serial(g_crt, "\x01", 1);
    gnutls_x509_crt_set_activation_time(g_crt, now - 60);
    gnutls_x509_crt_set_expiration_time(g_crt, now + 3600);
    gnutls_x509_crt_set_dn_by_oid(g_crt, GNUTLS_OID_X520_COMMON_NAME, 0, "dchan", 5);
    CU_ASSERT_FATAL(gnutls_x509_crt_set_key(g_crt, g_key) == 0);
    CU_ASSERT_FATAL(gnutls_x509_crt_sign2(g_crt, g_crt, g_key, GNUTLS_DIG_SHA256, 0) == 0);
}

static void *hub_handshake(void *arg)
{
    struct pair *p = arg;
    int rc;

    do
        rc = gnutls_handshake(p->hub);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    return (void *)(long)rc;
}

/* A mutual handshake over a socketpair, the hub on a thread. */
static int pair_open(struct pair *p, const char *prio)
{
    pthread_t t;
    void *hub_rc;
    int rc;

    memset(p, 0, sizeof(*p));
    make_cert();
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds) == 0);
    CU_ASSERT_FATAL(gnutls_certificate_allocate_credentials(&p->cred) == 0);
    CU_ASSERT_FATAL(gnutls_certificate_set_x509_key(p->cred, &g_crt, 1, g_key) == 0);
    CU_ASSERT_FATAL(gnutls_init(&p->hub, GNUTLS_SERVER) == 0);
    CU_ASSERT_FATAL(gnutls_init(&p->spoke, GNUTLS_CLIENT) == 0);
    CU_ASSERT_FATAL(gnutls_priority_set_direct(p->hub, prio, NULL) == 0);
    CU_ASSERT_FATAL(gnutls_priority_set_direct(p->spoke, prio, NULL) == 0);
    gnutls_credentials_set(p->hub, GNUTLS_CRD_CERTIFICATE, p->cred);
    gnutls_credentials_set(p->spoke, GNUTLS_CRD_CERTIFICATE, p->cred);
    gnutls_certificate_server_set_request(p->hub, GNUTLS_CERT_REQUIRE);
    gnutls_transport_set_int(p->hub, p->fds[0]);
    gnutls_transport_set_int(p->spoke, p->fds[1]);
    CU_ASSERT_FATAL(pthread_create(&t, NULL, hub_handshake, p) == 0);
    do
        rc = gnutls_handshake(p->spoke);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    pthread_join(t, &hub_rc);
    if (rc < 0 || (long)hub_rc < 0)
        fprintf(stderr, "handshake: spoke %s, hub %s\n", gnutls_strerror(rc),
                gnutls_strerror((int)(long)hub_rc));
    return rc < 0 || (long)hub_rc < 0 ? -EPROTO : 0;
}

static void pair_close(struct pair *p)
{
    gnutls_deinit(p->hub);
    gnutls_deinit(p->spoke);
    gnutls_certificate_free_credentials(p->cred);
    close(p->fds[0]);
    close(p->fds[1]);
}

/* Both sides' keys for an epoch, from a fresh TLS 1.3 pair. */
static void keys_pair(struct dchan_keys *hub, struct dchan_keys *spoke, const char *prio)
{
    struct pair p;

    CU_ASSERT_FATAL(pair_open(&p, prio) == 0);
    EXPECT_INT(dchan_keys_from_session(p.hub, DCHAN_HUB, 0, hub), 0);
    EXPECT_INT(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 0, spoke), 0);
    pair_close(&p);
}

static void chans(struct dchan **hub, struct dchan **spoke, const char *prio)
{
    struct dchan_keys kh, ks;

    keys_pair(&kh, &ks, prio);
    CU_ASSERT_FATAL(dchan_new(&kh, hub) == 0);
    CU_ASSERT_FATAL(dchan_new(&ks, spoke) == 0);
    dchan_keys_wipe(&kh);
    dchan_keys_wipe(&ks);
}

/* A record built from the documented bytes, independently of dchan_seal. */
static size_t raw_seal(const struct dchan_keys *k, unsigned type, uint16_t epoch, uint64_t ctr,
                       const unsigned char *pt, size_t len, unsigned char *rec)
{
    gnutls_aead_cipher_hd_t h;
    gnutls_datum_t key = {(unsigned char *)k->tx_key, DCHAN_KEY};
    unsigned char nonce[DCHAN_IV];
    size_t out = len + DCHAN_TAG;

    rec[0] = (unsigned char)(0x10 | type);
    rec[1] = 0;
    rec[2] = (unsigned char)(epoch >> 8);
    rec[3] = (unsigned char)epoch;
    for (int i = 0; i < 4; i++)
        rec[4 + i] = (unsigned char)(k->id >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        rec[8 + i] = (unsigned char)(ctr >> (56 - 8 * i));
    memcpy(nonce, k->tx_iv, DCHAN_IV);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] ^= rec[8 + i];
    CU_ASSERT_FATAL(gnutls_aead_cipher_init(&h, k->cipher, &key) == 0);
    CU_ASSERT_FATAL(gnutls_aead_cipher_encrypt(h, nonce, DCHAN_IV, rec, DCHAN_HDR, DCHAN_TAG, pt,
                                               len, rec + DCHAN_HDR, &out) == 0);
    gnutls_aead_cipher_deinit(h);
    return DCHAN_HDR + out;
}

static int seal_data(struct dchan *ch, unsigned char *rec, size_t len, unsigned char fill)
{
    memset(rec + DCHAN_HDR, fill, len);
    return dchan_seal(ch, DCHAN_DATA, rec, len, len + DCHAN_OVERHEAD);
}

static void test_keys_agree(void)
{
    struct pair p;
    struct dchan_keys hub, spoke, hub1, spoke1, other_hub, other_spoke;

    CU_ASSERT_FATAL(pair_open(&p, PRIO_13) == 0);
    EXPECT_INT(dchan_keys_from_session(p.hub, DCHAN_HUB, 0, &hub), 0);
    EXPECT_INT(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 0, &spoke), 0);
    EXPECT_INT(dchan_keys_from_session(p.hub, DCHAN_HUB, 1, &hub1), 0);
    EXPECT_INT(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 1, &spoke1), 0);
    pair_close(&p);

    EXPECT_INT(hub.cipher, GNUTLS_CIPHER_AES_256_GCM);
    EXPECT_INT(hub.id, spoke.id);
    /* The hub's send key is the spoke's receive key, and back. */
    CU_ASSERT_TRUE(memcmp(hub.tx_key, spoke.rx_key, DCHAN_KEY) == 0);
    CU_ASSERT_TRUE(memcmp(hub.tx_iv, spoke.rx_iv, DCHAN_IV) == 0);
    CU_ASSERT_TRUE(memcmp(hub.rx_key, spoke.tx_key, DCHAN_KEY) == 0);
    CU_ASSERT_TRUE(memcmp(hub.rx_iv, spoke.tx_iv, DCHAN_IV) == 0);
    /* Directions differ; epochs differ; the channel id stays. */
    CU_ASSERT_FALSE(memcmp(hub.tx_key, hub.rx_key, DCHAN_KEY) == 0);
    CU_ASSERT_FALSE(memcmp(hub.tx_iv, hub.rx_iv, DCHAN_IV) == 0);
    CU_ASSERT_FALSE(memcmp(hub.tx_key, hub1.tx_key, DCHAN_KEY) == 0);
    CU_ASSERT_FALSE(memcmp(hub.rx_key, hub1.rx_key, DCHAN_KEY) == 0);
    CU_ASSERT_TRUE(memcmp(hub1.tx_key, spoke1.rx_key, DCHAN_KEY) == 0);
    EXPECT_INT(hub1.id, hub.id);
    EXPECT_INT(hub1.epoch, 1);

    /* Another session: other keys, another id. */
    keys_pair(&other_hub, &other_spoke, PRIO_13);
    CU_ASSERT_FALSE(memcmp(hub.tx_key, other_hub.tx_key, DCHAN_KEY) == 0);
    CU_ASSERT_NOT_EQUAL(hub.id, other_hub.id);

    dchan_keys_wipe(&hub);
    EXPECT_INT(hub.id, 0);
    for (size_t i = 0; i < DCHAN_KEY; i++)
        EXPECT_INT(hub.tx_key[i] | hub.rx_key[i], 0);
}

static void test_tls12(void)
{
    struct pair p;
    struct dchan_keys hub, spoke;

    CU_ASSERT_FATAL(pair_open(&p, PRIO_12) == 0);
    EXPECT_INT(dchan_keys_from_session(p.hub, DCHAN_HUB, 0, &hub), 0);
    EXPECT_INT(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 0, &spoke), 0);
    CU_ASSERT_TRUE(memcmp(hub.tx_key, spoke.rx_key, DCHAN_KEY) == 0);
    pair_close(&p);

    /* Without the extended master secret: refused, keys untouched. */
    CU_ASSERT_FATAL(pair_open(&p, PRIO_12_NOEMS) == 0);
    memset(&hub, 0x5a, sizeof(hub));
    EXPECT_INT(dchan_keys_from_session(p.hub, DCHAN_HUB, 0, &hub), -ENOTSUP);
    EXPECT_INT(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 0, &spoke), -ENOTSUP);
    EXPECT_INT(hub.tx_key[0], 0x5a);
    pair_close(&p);
}

static void round_trip(const char *prio, gnutls_cipher_algorithm_t want)
{
    struct dchan_keys kh, ks;
    struct dchan *hub = NULL, *spoke = NULL;
    unsigned char rec[1500 + DCHAN_OVERHEAD], probe[64];
    unsigned type = 0;
    int n;

    keys_pair(&kh, &ks, prio);
    EXPECT_INT(kh.cipher, want);
    CU_ASSERT_FATAL(dchan_new(&kh, &hub) == 0 && dchan_new(&ks, &spoke) == 0);

    /* Data both ways, the plaintext back in place. */
    n = seal_data(hub, rec, 1400, 0xab);
    EXPECT_INT(n, 1400 + DCHAN_OVERHEAD);
    EXPECT_INT(rec[0], 0x11);
    EXPECT_INT(rec[1], 0);
    CU_ASSERT_FALSE(rec[DCHAN_HDR] == 0xab && rec[DCHAN_HDR + 1] == 0xab);
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), 1400);
    EXPECT_INT(type, DCHAN_DATA);
    EXPECT_INT(rec[DCHAN_HDR], 0xab);
    EXPECT_INT(rec[DCHAN_HDR + 1399], 0xab);
    n = seal_data(spoke, rec, 1, 0x45);
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), 1);

    /* Probe up, reply down, keepalives; not the other way. */
    memset(probe + DCHAN_HDR, 7, DCHAN_PROBE_ID);
    n = dchan_seal(spoke, DCHAN_PROBE, probe, DCHAN_PROBE_ID, sizeof(probe));
    EXPECT_INT(dchan_open(hub, probe, (size_t)n, &type), DCHAN_PROBE_ID);
    EXPECT_INT(type, DCHAN_PROBE);
    n = dchan_seal(hub, DCHAN_PROBE_REPLY, probe, DCHAN_PROBE_ID, sizeof(probe));
    EXPECT_INT(dchan_open(spoke, probe, (size_t)n, &type), DCHAN_PROBE_ID);
    EXPECT_INT(type, DCHAN_PROBE_REPLY);
    EXPECT_INT(probe[DCHAN_HDR + 7], 7);
    n = dchan_seal(hub, DCHAN_KEEPALIVE, rec, 0, DCHAN_OVERHEAD);
    EXPECT_INT(n, DCHAN_OVERHEAD);
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), 0);
    EXPECT_INT(type, DCHAN_KEEPALIVE);
    EXPECT_INT(dchan_seal(hub, DCHAN_PROBE, probe, DCHAN_PROBE_ID, sizeof(probe)), -EINVAL);
    EXPECT_INT(dchan_seal(spoke, DCHAN_PROBE_REPLY, probe, DCHAN_PROBE_ID, sizeof(probe)),
               -EINVAL);
    EXPECT_INT(dchan_seal(spoke, DCHAN_KEEPALIVE, rec, 1, sizeof(rec)), -EINVAL);
    EXPECT_INT(dchan_seal(spoke, 0, rec, 10, sizeof(rec)), -EINVAL);
    EXPECT_INT(dchan_seal(spoke, DCHAN_DATA, rec, 1400, 1400 + DCHAN_OVERHEAD - 1), -EINVAL);
    EXPECT_INT(dchan_seal(spoke, DCHAN_DATA, rec, DCHAN_PAYLOAD_MAX + 1, SIZE_MAX), -EMSGSIZE);
    /* A reply forged toward the hub with the hub's own send key (a
     * reflection) is not something the hub takes. */
    n = (int)raw_seal(&kh, DCHAN_PROBE_REPLY, 0, 100, probe, DCHAN_PROBE_ID, rec);
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), -EBADMSG);
    n = (int)raw_seal(&kh, DCHAN_DATA, 0, 100, probe, 20, rec);
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), -EBADMSG);

    dchan_free(hub);
    dchan_free(spoke);
    dchan_free(NULL);
    dchan_keys_wipe(&kh);
    dchan_keys_wipe(&ks);
}

static void test_round_trip_aes(void)
{
    round_trip(PRIO_13, GNUTLS_CIPHER_AES_256_GCM);
}

static void test_round_trip_chacha(void)
{
    round_trip(PRIO_CHACHA, GNUTLS_CIPHER_CHACHA20_POLY1305);
}

/* The documented bytes open; dchan's own output has the documented form. */
static void test_format(void)
{
    struct dchan_keys kh, ks;
    struct dchan *spoke;
    unsigned char pt[40], rec[40 + DCHAN_OVERHEAD];
    unsigned type;
    size_t n;

    keys_pair(&kh, &ks, PRIO_13);
    CU_ASSERT_FATAL(dchan_new(&ks, &spoke) == 0);
    memset(pt, 0x60, sizeof(pt));
    n = raw_seal(&kh, DCHAN_DATA, 0, 5, pt, sizeof(pt), rec);
    EXPECT_INT(n, sizeof(rec));
    EXPECT_INT(dchan_open(spoke, rec, n, &type), sizeof(pt));
    CU_ASSERT_TRUE(memcmp(rec + DCHAN_HDR, pt, sizeof(pt)) == 0);
    /* dchan_seal: the same bytes raw_seal makes for the same counter. */
    {
        struct dchan *hub;
        unsigned char mine[sizeof(rec)];
        CU_ASSERT_FATAL(dchan_new(&kh, &hub) == 0);
        EXPECT_INT(dchan_tx_seek(hub, 5), 0);
        memcpy(mine + DCHAN_HDR, pt, sizeof(pt));
        EXPECT_INT(dchan_seal(hub, DCHAN_DATA, mine, sizeof(pt), sizeof(mine)), sizeof(mine));
        n = raw_seal(&kh, DCHAN_DATA, 0, 5, pt, sizeof(pt), rec);
        CU_ASSERT_TRUE(memcmp(mine, rec, sizeof(rec)) == 0);
        EXPECT_INT(dchan_tx_seek(hub, 4), -EINVAL); /* never back */
        dchan_free(hub);
    }
    dchan_free(spoke);
}

/* Every bit of a record, flipped, is refused; the original still opens. */
static void test_tamper(void)
{
    struct dchan *hub = NULL, *spoke = NULL;
    unsigned char good[100 + DCHAN_OVERHEAD], rec[sizeof(good)];
    unsigned type;
    int n;

    chans(&hub, &spoke, PRIO_13);
    n = seal_data(hub, good, 100, 0x45);
    CU_ASSERT_FATAL(n == (int)sizeof(good));
    for (size_t bit = 0; bit < 8 * sizeof(good); bit++) {
        int rc;
        memcpy(rec, good, sizeof(good));
        rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        rc = dchan_open(spoke, rec, sizeof(rec), &type);
        if (rc >= 0)
            fprintf(stderr, "bit %zu flipped: opened\n", bit);
        CU_ASSERT_TRUE(rc < 0);
        /* Past the epoch field, only the AEAD check (or the counter
         * limit) can refuse it: the point of the header as AD. */
        if (bit / 8 >= 8)
            EXPECT_INT(rc, -EBADMSG);
    }
    /* Truncated or extended records. */
    memcpy(rec, good, sizeof(good));
    EXPECT_INT(dchan_open(spoke, rec, sizeof(rec) - 1, &type), -EBADMSG);
    EXPECT_INT(dchan_open(spoke, rec, DCHAN_OVERHEAD - 1, &type), -EBADMSG);
    memcpy(rec, good, sizeof(good));
    EXPECT_INT(dchan_open(spoke, rec, sizeof(rec), &type), 100);
    dchan_free(hub);
    dchan_free(spoke);
}

static void test_replay(void)
{
    struct dchan *hub = NULL, *spoke = NULL;
    unsigned char rec[64 + DCHAN_OVERHEAD], copy[sizeof(rec)];
    unsigned type;
    int n;

    chans(&hub, &spoke, PRIO_13);
    n = seal_data(spoke, rec, 64, 1);
    memcpy(copy, rec, sizeof(rec));
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), 64);
    memcpy(rec, copy, sizeof(rec));
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), -EALREADY);
    /* A forgery of a fresh counter does not burn it: the real one opens. */
    n = seal_data(spoke, rec, 64, 2);
    memcpy(copy, rec, sizeof(rec));
    rec[DCHAN_HDR] ^= 1;
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), -EBADMSG);
    EXPECT_INT(dchan_open(hub, copy, (size_t)n, &type), 64);
    dchan_free(hub);
    dchan_free(spoke);
}

#define REC 48
#define NREC (DCHAN_WINDOW + 200)

/* Within the window any order is taken, once; beyond it nothing. */
static void test_reorder(void)
{
    struct dchan *hub = NULL, *spoke = NULL;
    unsigned char(*recs)[REC] = calloc(NREC, REC);
    unsigned char rec[REC];
    unsigned type;
    size_t top = NREC - 1;

    CU_ASSERT_FATAL(recs != NULL);
    chans(&hub, &spoke, PRIO_13);
    for (size_t i = 0; i < NREC; i++)
        CU_ASSERT_FATAL(seal_data(spoke, recs[i], REC - DCHAN_OVERHEAD, (unsigned char)i) == REC);

    /* The newest first, then the oldest the window keeps, then one older. */
    memcpy(rec, recs[top], REC);
    EXPECT_INT(dchan_open(hub, rec, REC, &type), REC - DCHAN_OVERHEAD);
    memcpy(rec, recs[top - (DCHAN_WINDOW - 1)], REC);
    EXPECT_INT(dchan_open(hub, rec, REC, &type), REC - DCHAN_OVERHEAD);
    memcpy(rec, recs[top - DCHAN_WINDOW], REC);
    EXPECT_INT(dchan_open(hub, rec, REC, &type), -ESTALE);
    memcpy(rec, recs[0], REC);
    EXPECT_INT(dchan_open(hub, rec, REC, &type), -ESTALE);
    /* The rest of the window, backwards then interleaved: each once. */
    for (size_t i = top - 1; i > top - (DCHAN_WINDOW - 1); i -= 2) {
        memcpy(rec, recs[i], REC);
        if (dchan_open(hub, rec, REC, &type) != REC - DCHAN_OVERHEAD)
            CU_FAIL("reordered record within the window refused");
    }
    for (size_t i = top - 2; i > top - (DCHAN_WINDOW - 1); i -= 2) {
        memcpy(rec, recs[i], REC);
        if (dchan_open(hub, rec, REC, &type) != REC - DCHAN_OVERHEAD)
            CU_FAIL("reordered record within the window refused");
    }
    for (size_t i = top - (DCHAN_WINDOW - 1); i <= top; i++) {
        memcpy(rec, recs[i], REC);
        if (dchan_open(hub, rec, REC, &type) != -EALREADY)
            CU_FAIL("a replay within the window was not refused as one");
    }
    free(recs);
    dchan_free(hub);
    dchan_free(spoke);
}

static void test_window(void)
{
    struct dchan_window w;

    dchan_window_init(&w);
    EXPECT_INT(dchan_window_check(&w, 0), 0);
    dchan_window_update(&w, 0);
    EXPECT_INT(dchan_window_check(&w, 0), -EALREADY);
    EXPECT_INT(dchan_window_check(&w, 1), 0);
    /* A jump far ahead forgets everything behind the window... */
    dchan_window_update(&w, 1000000);
    EXPECT_INT(dchan_window_check(&w, 1000000), -EALREADY);
    EXPECT_INT(dchan_window_check(&w, 0), -ESTALE);
    EXPECT_INT(dchan_window_check(&w, 1000000 - DCHAN_WINDOW), -ESTALE);
    /* ...and the ring words it skipped hold no stale bits. */
    for (uint64_t c = 1000000 - (DCHAN_WINDOW - 1); c < 1000000; c++)
        if (dchan_window_check(&w, c) != 0)
            CU_FAIL("a counter inside the window after a jump was refused");
    /* Step one word at a time: bits from a lap ago are cleared. */
    dchan_window_init(&w);
    for (uint64_t c = 0; c < 4 * DCHAN_WINDOW_BITS; c += 63) {
        if (dchan_window_check(&w, c) != 0)
            CU_FAIL("a fresh counter was refused");
        dchan_window_update(&w, c);
    }
    EXPECT_INT(dchan_window_check(&w, 4 * DCHAN_WINDOW_BITS - 1), 0);
}

/* A rekey as the control channel drives it, with records in flight. */
static void test_epochs(void)
{
    struct pair p;
    struct dchan_keys kh0, ks0, kh1, ks1, kh2, ks2;
    struct dchan *hub = NULL, *spoke = NULL;
    unsigned char old_down[40], old_up[40], rec[40];
    unsigned type;
    int n;

    CU_ASSERT_FATAL(pair_open(&p, PRIO_13) == 0);
    CU_ASSERT_FATAL(dchan_keys_from_session(p.hub, DCHAN_HUB, 0, &kh0) == 0);
    CU_ASSERT_FATAL(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 0, &ks0) == 0);
    CU_ASSERT_FATAL(dchan_keys_from_session(p.hub, DCHAN_HUB, 1, &kh1) == 0);
    CU_ASSERT_FATAL(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 1, &ks1) == 0);
    CU_ASSERT_FATAL(dchan_keys_from_session(p.hub, DCHAN_HUB, 2, &kh2) == 0);
    CU_ASSERT_FATAL(dchan_keys_from_session(p.spoke, DCHAN_SPOKE, 2, &ks2) == 0);
    pair_close(&p);
    CU_ASSERT_FATAL(dchan_new(&kh0, &hub) == 0 && dchan_new(&ks0, &spoke) == 0);

    /* In flight at epoch 0, both ways. */
    seal_data(hub, old_down, 8, 1);
    seal_data(spoke, old_up, 8, 2);
    EXPECT_INT(dchan_install(hub, &kh2), -EINVAL); /* not the next one */
    EXPECT_INT(dchan_switch(hub), -EINVAL);        /* nothing installed */

    /* The hub starts: installs 1 (receives 0 and 1), still sends 0. */
    EXPECT_INT(dchan_install(hub, &kh1), 0);
    EXPECT_INT(dchan_install(hub, &kh2), -EINVAL); /* one rekey at a time */
    EXPECT_INT(dchan_tx_epoch(hub), 0);
    EXPECT_INT(dchan_rx_epoch(hub), 1);
    /* The spoke: installs and switches at once, then answers. */
    EXPECT_INT(dchan_install(spoke, &ks1), 0);
    EXPECT_INT(dchan_switch(spoke), 0);
    n = seal_data(spoke, rec, 8, 3);
    EXPECT_INT(rec[3], 1);
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), 8);
    EXPECT_INT(dchan_open(hub, old_up, sizeof(old_up), &type), 8);
    /* The hub reads the answer and switches. */
    EXPECT_INT(dchan_switch(hub), 0);
    n = seal_data(hub, rec, 8, 4);
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), 8);

    /* The old epoch's receive key lives DCHAN_OVERLAP_MS past the new
     * epoch's first record, then goes. */
    dchan_expire(spoke, 1000);
    dchan_expire(spoke, 1000 + DCHAN_OVERLAP_MS - 1);
    memcpy(rec, old_down, sizeof(rec));
    EXPECT_INT(dchan_open(spoke, rec, sizeof(rec), &type), 8);
    seal_data(hub, old_down, 8, 5); /* epoch 1 now */
    dchan_expire(spoke, 1000 + DCHAN_OVERLAP_MS);
    n = (int)raw_seal(&kh0, DCHAN_DATA, 0, 77, old_up, 8, rec);
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), -ENOKEY);
    EXPECT_INT(dchan_open(spoke, old_down, sizeof(old_down), &type), 8);

    /* The next rekey drops epoch 0 at the hub (two keys at most). */
    EXPECT_INT(dchan_install(hub, &kh2), 0);
    n = (int)raw_seal(&ks0, DCHAN_DATA, 0, 78, old_up, 8, rec);
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), -ENOKEY);
    n = (int)raw_seal(&ks1, DCHAN_DATA, 1, 78, old_up, 8, rec);
    EXPECT_INT(dchan_open(hub, rec, (size_t)n, &type), 8);
    /* Keys of another channel or role are refused. */
    EXPECT_INT(dchan_install(spoke, &kh2), -EINVAL);
    ks2.id ^= 1;
    EXPECT_INT(dchan_install(spoke, &ks2), -EINVAL);

    dchan_free(hub);
    dchan_free(spoke);
}

static void test_counter_limit(void)
{
    struct dchan_keys kh, ks;
    struct dchan *hub = NULL, *spoke = NULL;
    unsigned char rec[20 + DCHAN_OVERHEAD], pt[20] = {0x45};
    unsigned type;
    int n;

    keys_pair(&kh, &ks, PRIO_13);
    CU_ASSERT_FATAL(dchan_new(&kh, &hub) == 0 && dchan_new(&ks, &spoke) == 0);
    CU_ASSERT_FALSE(dchan_wants_rekey(hub));
    EXPECT_INT(dchan_tx_seek(hub, DCHAN_REKEY_AT - 1), 0);
    CU_ASSERT_FALSE(dchan_wants_rekey(hub));
    n = seal_data(hub, rec, 20, 0);
    CU_ASSERT_TRUE(dchan_wants_rekey(hub));
    /* The receiver sees it too. */
    CU_ASSERT_FALSE(dchan_wants_rekey(spoke));
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), 20);
    CU_ASSERT_TRUE(dchan_wants_rekey(spoke));
    /* The last counter, then no more. */
    EXPECT_INT(dchan_tx_seek(hub, DCHAN_LIMIT - 1), 0);
    n = seal_data(hub, rec, 20, 0);
    EXPECT_INT(n, 20 + DCHAN_OVERHEAD);
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), 20);
    EXPECT_INT(seal_data(hub, rec, 20, 0), -EKEYEXPIRED);
    EXPECT_INT(seal_data(hub, rec, 20, 0), -EKEYEXPIRED);
    EXPECT_INT(dchan_tx_seek(hub, DCHAN_LIMIT + 1), -EINVAL);
    /* A record past the limit, authentic or not, is refused. */
    n = (int)raw_seal(&kh, DCHAN_DATA, 0, DCHAN_LIMIT, pt, sizeof(pt), rec);
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), -EBADMSG);
    n = (int)raw_seal(&kh, DCHAN_DATA, 0, UINT64_MAX, pt, sizeof(pt), rec);
    EXPECT_INT(dchan_open(spoke, rec, (size_t)n, &type), -EBADMSG);
    dchan_free(hub);
    dchan_free(spoke);
}

static void test_peek(void)
{
    struct dchan_keys kh, ks;
    struct dchan *hub;
    unsigned char rec[10 + DCHAN_OVERHEAD];
    uint32_t id = 0;
    int n;

    keys_pair(&kh, &ks, PRIO_13);
    CU_ASSERT_FATAL(dchan_new(&kh, &hub) == 0);
    n = seal_data(hub, rec, 10, 0);
    EXPECT_INT(dchan_peek_id(rec, (size_t)n, &id), 0);
    EXPECT_INT(id, kh.id);
    EXPECT_INT(dchan_peek_id(rec, DCHAN_OVERHEAD - 1, &id), -EBADMSG);
    rec[0] = 0x21;
    EXPECT_INT(dchan_peek_id(rec, (size_t)n, &id), -EBADMSG);
    rec[0] = 0x10;
    EXPECT_INT(dchan_peek_id(rec, (size_t)n, &id), -EBADMSG);
    rec[0] = 0x17;
    EXPECT_INT(dchan_peek_id(rec, (size_t)n, &id), -EBADMSG);
    rec[0] = 0x14;
    rec[1] = 1;
    EXPECT_INT(dchan_peek_id(rec, (size_t)n, &id), -EBADMSG);
    dchan_free(hub);
}

static const struct cu_test tests[] = {
    {"keys agree, per direction and epoch", test_keys_agree},
    {"TLS 1.2 needs the extended master secret", test_tls12},
    {"round trip AES-256-GCM", test_round_trip_aes},
    {"round trip ChaCha20-Poly1305", test_round_trip_chacha},
    {"the documented bytes", test_format},
    {"every flipped bit refused", test_tamper},
    {"replay refused", test_replay},
    {"reorder within the window, not beyond", test_reorder},
    {"window", test_window},
    {"epochs and overlap", test_epochs},
    {"counter limit", test_counter_limit},
    {"peek", test_peek},
};

CU_MAIN("dchan", tests)
