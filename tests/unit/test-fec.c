/*
 * test-fec: parity on the UDP data channel (gateway/daemon/session/fec.c)
 * with real records: a hub channel seals DATA records and their PARITY
 * (dchan.c, GnuTLS AES-256-GCM under fixed test keys), a spoke channel
 * opens them, loses one, and rebuilds it from the rest. Also what an
 * attacker's datagram may not do: displace a kept record, or make a
 * rebuilt record that the AEAD would not take.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cunit-main.h"
#include "dchan.h"
#include "fec.h"

#define N 5
#define CAP (DCHAN_OVERHEAD + 1400)

static struct dchan *g_hub, *g_spoke;
static unsigned char g_rec[N + 1][CAP + FEC_PARITY_HDR + DCHAN_OVERHEAD];
static int g_len[N + 1];  /* sealed lengths; [N]: the PARITY */
static unsigned char g_pkt[N][1400];
static size_t g_plen[N];

static void keys(void)
{
    struct dchan_keys h = {.epoch = 0, .id = 0x01020304, .cipher = GNUTLS_CIPHER_AES_256_GCM,
                           .role = DCHAN_HUB};
    struct dchan_keys s;

    for (int i = 0; i < DCHAN_KEY; i++) {
        h.tx_key[i] = (unsigned char)i;
        h.rx_key[i] = (unsigned char)(0x80 + i);
    }
    for (int i = 0; i < DCHAN_IV; i++) {
        h.tx_iv[i] = (unsigned char)(0x40 + i);
        h.rx_iv[i] = (unsigned char)(0xc0 + i);
    }
    s = h;
    s.role = DCHAN_SPOKE;
    memcpy(s.tx_key, h.rx_key, DCHAN_KEY);
    memcpy(s.rx_key, h.tx_key, DCHAN_KEY);
    memcpy(s.tx_iv, h.rx_iv, DCHAN_IV);
    memcpy(s.rx_iv, h.tx_iv, DCHAN_IV);
    dchan_free(g_hub);
    dchan_free(g_spoke);
    g_hub = g_spoke = NULL;
    CU_ASSERT_FATAL(dchan_new(&h, &g_hub) == 0 && dchan_new(&s, &g_spoke) == 0);
}

/* N DATA records of different lengths (IPv4 packets as far as the length
 * goes: the record layer does not look inside), then their PARITY. */
static void seal_group(void)
{
    struct fec_tx f;
    size_t pl;

    keys();
    CU_ASSERT_FATAL(fec_tx_init(&f, CAP) == 0);
    for (int i = 0; i < N; i++) {
        g_plen[i] = i == N - 1 ? 333 : 1400 - (size_t)i * 17;
        for (size_t j = 0; j < g_plen[i]; j++)
            g_pkt[i][j] = (unsigned char)(i * 31 + j * 7);
        g_pkt[i][0] = 0x45;
        memcpy(g_rec[i] + DCHAN_HDR, g_pkt[i], g_plen[i]);
        g_len[i] = dchan_seal(g_hub, DCHAN_DATA, g_rec[i], g_plen[i], sizeof(g_rec[i]));
        CU_ASSERT_FATAL(g_len[i] > 0);
        EXPECT_INT(fec_tx_add(&f, g_rec[i], (size_t)g_len[i]), 1);
    }
    pl = fec_tx_parity(&f, g_rec[N] + DCHAN_HDR);
    EXPECT_INT(pl, FEC_PARITY_HDR + DCHAN_OVERHEAD + 1400);
    EXPECT_INT(g_rec[N][DCHAN_HDR], N);
    EXPECT_INT(fec_tx_parity(&f, g_rec[N] + DCHAN_HDR + 2000), 0); /* a new, empty group */
    g_len[N] = dchan_seal(g_hub, DCHAN_PARITY, g_rec[N], pl, sizeof(g_rec[N]));
    CU_ASSERT_FATAL(g_len[N] > 0);
    fec_tx_fini(&f);
}

/* The receiving side: stage, open, keep record i (a copy: the test reuses
 * the originals). Returns dchan_open's result. */
static int receive(struct fec_rx *r, int i)
{
    unsigned char buf[sizeof(g_rec[0])];
    unsigned type;
    int n;

    memcpy(buf, g_rec[i], (size_t)g_len[i]);
    fec_rx_stage(r, buf, (size_t)g_len[i]);
    n = dchan_open(g_spoke, buf, (size_t)g_len[i], &type);
    if (n >= 0)
        fec_rx_keep(r, 0, (uint64_t)i);
    return n;
}

/* Open the PARITY and ask for the missing record. */
static int recover(struct fec_rx *r, uint64_t *miss)
{
    unsigned char buf[sizeof(g_rec[0])];
    unsigned type;
    int n;

    memcpy(buf, g_rec[N], (size_t)g_len[N]);
    n = dchan_open(g_spoke, buf, (size_t)g_len[N], &type);
    EXPECT_INT(type, DCHAN_PARITY);
    if (n < 0)
        return n;
    return fec_rx_recover(r, 0, N, buf + DCHAN_HDR, (size_t)n, miss);
}

/* The PARITY's plaintext into pt (opened once: its counter is then seen). */
static void parity_pt(unsigned char *pt)
{
    unsigned char buf[sizeof(g_rec[0])];
    unsigned type;
    int n;

    memcpy(buf, g_rec[N], (size_t)g_len[N]);
    n = dchan_open(g_spoke, buf, (size_t)g_len[N], &type);
    EXPECT_INT(n, FEC_PARITY_HDR + CAP);
    memcpy(pt, buf + DCHAN_HDR, FEC_PARITY_HDR + CAP);
}

/* Lose each record in turn: the PARITY rebuilds it byte for byte, and the
 * rebuilt record opens to the very packet. */
static void test_rebuild_each(void)
{
    for (int lost = 0; lost < N; lost++) {
        struct fec_rx *r = fec_rx_new(CAP);
        uint64_t miss = 99;
        unsigned type;
        int len, n;
        CU_ASSERT_FATAL(r != NULL);
        seal_group();
        for (int i = 0; i < N; i++)
            if (i != lost)
                CU_ASSERT(receive(r, i) > 0);
        len = recover(r, &miss);
        EXPECT_INT(len, g_len[lost]);
        EXPECT_INT(miss, lost);
        if (len == g_len[lost]) {
            CU_ASSERT(memcmp(r->out, g_rec[lost], (size_t)len) == 0);
            n = dchan_open(g_spoke, r->out, (size_t)len, &type);
            EXPECT_INT(n, g_plen[lost]);
            EXPECT_INT(type, DCHAN_DATA);
            CU_ASSERT(n > 0 && memcmp(r->out + DCHAN_HDR, g_pkt[lost], (size_t)n) == 0);
            /* The original, coming late after all, is a replay. */
            CU_ASSERT(receive(r, lost) == -EALREADY);
        }
        fec_rx_free(r);
    }
}

/* Nothing to rebuild with all present or two missing. */
static void test_none_or_two(void)
{
    struct fec_rx *r = fec_rx_new(CAP);
    uint64_t miss;

    CU_ASSERT_FATAL(r != NULL);
    seal_group();
    for (int i = 2; i < N; i++)
        receive(r, i);
    EXPECT_INT(recover(r, &miss), 0); /* 0 and 1 missing */
    fec_rx_free(r);

    r = fec_rx_new(CAP);
    CU_ASSERT_FATAL(r != NULL);
    seal_group();
    for (int i = 0; i < N; i++)
        receive(r, i);
    EXPECT_INT(recover(r, &miss), 0);
    fec_rx_free(r);
}

/* The attack: a stranger sends datagrams that land in a kept record's slot
 * before the PARITY: record 3's bytes with one tag bit flipped (its
 * counter was seen: a replay), and with its counter moved on by FEC_RING
 * (the same slot, not seen: the AEAD refuses it). Neither may replace the
 * kept copy: record 1 is still rebuilt right. (A receiver that kept every
 * staged datagram would rebuild garbage, and lose the record.) */
static void test_forgery_displaces_nothing(void)
{
    struct fec_rx *r = fec_rx_new(CAP);
    unsigned char forged[sizeof(g_rec[0])];
    unsigned type;
    uint64_t miss;

    CU_ASSERT_FATAL(r != NULL);
    seal_group();
    for (int i = 0; i < N; i++)
        if (i != 1)
            receive(r, i);
    memcpy(forged, g_rec[3], (size_t)g_len[3]);
    forged[g_len[3] - 1] ^= 1;
    fec_rx_stage(r, forged, (size_t)g_len[3]);
    CU_ASSERT(dchan_open(g_spoke, forged, (size_t)g_len[3], &type) == -EALREADY);
    memcpy(forged, g_rec[3], (size_t)g_len[3]);
    forged[15] = 3 + FEC_RING;
    fec_rx_stage(r, forged, (size_t)g_len[3]);
    CU_ASSERT(dchan_open(g_spoke, forged, (size_t)g_len[3], &type) == -EBADMSG);
    EXPECT_INT(recover(r, &miss), g_len[1]);
    CU_ASSERT(memcmp(r->out, g_rec[1], (size_t)g_len[1]) == 0);
    fec_rx_free(r);
}

/* A PARITY that does not match its records (altered before sealing: only
 * the peer could) rebuilds bytes that the AEAD refuses. */
static void test_bad_parity_rebuilds_nothing_authentic(void)
{
    struct fec_rx *r = fec_rx_new(CAP);
    unsigned char pt[FEC_PARITY_HDR + CAP];
    unsigned type;
    uint64_t miss;
    int len;

    CU_ASSERT_FATAL(r != NULL);
    seal_group();
    for (int i = 0; i < N; i++)
        if (i != 2)
            receive(r, i);
    parity_pt(pt);
    /* What the PARITY would say with one byte of record 2's ciphertext flipped. */
    pt[FEC_PARITY_HDR + DCHAN_HDR + 5] ^= 0x20;
    len = fec_rx_recover(r, 0, N, pt, sizeof(pt), &miss);
    EXPECT_INT(len, g_len[2]);
    CU_ASSERT(len > 0 && dchan_open(g_spoke, r->out, (size_t)len, &type) == -EBADMSG);
    fec_rx_free(r);
}

/* Malformed PARITY plaintexts: -EBADMSG, never a read past the buffers. */
static void test_malformed(void)
{
    struct fec_rx *r = fec_rx_new(CAP);
    unsigned char pt[FEC_PARITY_HDR + CAP];
    uint64_t miss;

    CU_ASSERT_FATAL(r != NULL);
    seal_group();
    for (int i = 0; i < N; i++)
        if (i != 4)
            receive(r, i);
    parity_pt(pt);
    EXPECT_INT(fec_rx_recover(r, 0, N, pt, 3, &miss), -EBADMSG);
    pt[0] = 0;
    EXPECT_INT(fec_rx_recover(r, 0, N, pt, sizeof(pt), &miss), -EBADMSG);
    pt[0] = FEC_K_MAX + 1;
    EXPECT_INT(fec_rx_recover(r, 0, N, pt, sizeof(pt), &miss), -EBADMSG);
    pt[0] = N;
    pt[1] = 1;
    EXPECT_INT(fec_rx_recover(r, 0, N, pt, sizeof(pt), &miss), -EBADMSG);
    pt[1] = 0;
    EXPECT_INT(fec_rx_recover(r, 0, N - 1, pt, sizeof(pt), &miss), -EBADMSG); /* pc < n */
    /* Shorter than a record it covers. */
    EXPECT_INT(fec_rx_recover(r, 0, N, pt, FEC_PARITY_HDR + 400, &miss), -EBADMSG);
    /* A lengths' XOR that makes the missing one longer than the parity. */
    pt[2] ^= 0x40;
    EXPECT_INT(fec_rx_recover(r, 0, N, pt, sizeof(pt), &miss), -EBADMSG);
    pt[2] ^= 0x40;
    /* Records of another epoch are not this group's. */
    EXPECT_INT(fec_rx_recover(r, 1, N, pt, sizeof(pt), &miss), 0);
    EXPECT_INT(fec_rx_recover(r, 0, N, pt, sizeof(pt), &miss), g_len[4]);
    fec_rx_free(r);
}

/* A sender's group takes at most FEC_K_MAX records and none over its cap. */
static void test_group_limits(void)
{
    struct fec_tx f;
    unsigned char rec[CAP + 1] = {0};

    CU_ASSERT_FATAL(fec_tx_init(&f, CAP) == 0);
    EXPECT_INT(fec_tx_add(&f, rec, CAP + 1), 0);
    for (int i = 0; i < FEC_K_MAX; i++)
        EXPECT_INT(fec_tx_add(&f, rec, 100), 1);
    EXPECT_INT(fec_tx_add(&f, rec, 100), 0);
    fec_tx_fini(&f);
}

/* Parity from the reported loss (0.01 %): none under 0.2 %, then 10 % / loss. */
static void test_group_for(void)
{
    EXPECT_INT(fec_group_for(0), 0);
    EXPECT_INT(fec_group_for(FEC_LOSS_ON - 1), 0);
    EXPECT_INT(fec_group_for(FEC_LOSS_ON), FEC_K_MAX);
    EXPECT_INT(fec_group_for(50), FEC_K_MAX);
    EXPECT_INT(fec_group_for(100), 10);
    EXPECT_INT(fec_group_for(300), 3);
    EXPECT_INT(fec_group_for(500), 2);
    EXPECT_INT(fec_group_for(10000), 2);
}

/* The sender's reaction to LOSS reports, one a second (t in ms). */
static void test_reports(void)
{
    struct fec_ctl c = {0};
    long long t = 10000;

    /* Parity starts on the third lossy report in a row, not before. */
    EXPECT_INT(fec_ctl_report(&c, 100, t, 0, 0), 100);
    EXPECT_INT(fec_ctl_report(&c, 100, t += 1000, 0, 0), 100);
    EXPECT_INT(c.k, 0);
    EXPECT_INT(fec_ctl_report(&c, 100, t += 1000, 0, 0), 100);
    EXPECT_INT(c.k, 10);
    /* While on, each lossy report sets the group anew. */
    fec_ctl_report(&c, 300, t += 1000, 0, 0);
    EXPECT_INT(c.k, 3);
    /* Off after 10 quiet reports in a row; one in between resets the count. */
    for (int i = 0; i < 9; i++)
        fec_ctl_report(&c, 0, t += 1000, 0, 0);
    EXPECT_INT(c.k, 3);
    fec_ctl_report(&c, 10, t += 1000, 0, 0); /* 0.1 %: neither */
    for (int i = 0; i < 9; i++)
        fec_ctl_report(&c, 4, t += 1000, 0, 0);
    EXPECT_INT(c.k, 3);
    fec_ctl_report(&c, 4, t += 1000, 0, 0);
    EXPECT_INT(c.k, 0);
    /* A burst between quiet ones does not start it. */
    fec_ctl_report(&c, 500, t += 1000, 0, 0);
    fec_ctl_report(&c, 0, t += 1000, 0, 0);
    fec_ctl_report(&c, 500, t += 1000, 0, 0);
    fec_ctl_report(&c, 500, t += 1000, 0, 0);
    EXPECT_INT(c.k, 0);
    /* Over 100 % is 100 %. */
    EXPECT_INT(fec_ctl_report(&c, 60000, t += 1000, 0, 0), 10000);
    EXPECT_INT(c.k, 2);
}

/* The attack: an authenticated peer sends reports as fast as it likes to
 * flap parity on and off. Only one a FEC_REPORT_MIN_MS counts: 13 reports
 * in 130 ms start nothing. (Without the limit, 3 of them start it.) */
static void test_reports_rate_limited(void)
{
    struct fec_ctl c = {0};
    long long t = 10000;

    EXPECT_INT(fec_ctl_report(&c, 1000, t, 0, 0), 1000);
    for (int i = 0; i < 12; i++)
        EXPECT_INT(fec_ctl_report(&c, 1000, t += 10, 0, 0), -1);
    EXPECT_INT(c.k, 0);
    EXPECT_INT(fec_ctl_report(&c, 1000, t += FEC_REPORT_MIN_MS, 0, 0), 1000);
    EXPECT_INT(c.k, 0);
}

/* Parity lives on reports: on, then FEC_STALE_MS without one (a quiet
 * peer, or an on-path attacker dropping the reports to pin parity on)
 * and it stops; not a millisecond before. */
static void test_reports_stale(void)
{
    struct fec_ctl c = {0};
    long long t = 10000;

    CU_ASSERT(!fec_ctl_stale(&c, t + 60000)); /* off: nothing to stop */
    for (int i = 0; i < FEC_ONSET; i++)
        fec_ctl_report(&c, 100, t += 1000, 0, 0);
    EXPECT_INT(c.k, 10);
    CU_ASSERT(!fec_ctl_stale(&c, t + FEC_STALE_MS));
    EXPECT_INT(c.k, 10);
    CU_ASSERT(fec_ctl_stale(&c, t + FEC_STALE_MS + 1));
    EXPECT_INT(c.k, 0);
}

/* What this side dropped itself (its send buffer full) is not the path's
 * loss: 1 % reported, 1 % of our records dropped here: nothing to do. */
static void test_reports_own_drops(void)
{
    struct fec_ctl c = {0};
    long long t = 10000;
    unsigned long long tx = 0, drop = 0;

    for (int i = 0; i < 5; i++) {
        tx += 10000;
        drop += 100;
        EXPECT_INT(fec_ctl_report(&c, 100, t += 1000, tx, drop), 0);
    }
    EXPECT_INT(c.k, 0);
    for (int i = 0; i < 3; i++) { /* the same loss, none of it ours */
        tx += 10000;
        fec_ctl_report(&c, 100, t += 1000, tx, drop);
    }
    EXPECT_INT(c.k, 10);
}

static void test_cleanup(void)
{
    dchan_free(g_hub);
    dchan_free(g_spoke);
    g_hub = g_spoke = NULL;
}

static const struct cu_test tests[] = {
    {"each lost record rebuilt from the parity", test_rebuild_each},
    {"none or two missing: nothing rebuilt", test_none_or_two},
    {"a forged datagram displaces no kept record", test_forgery_displaces_nothing},
    {"a parity that does not match rebuilds nothing authentic",
     test_bad_parity_rebuilds_nothing_authentic},
    {"malformed parity refused", test_malformed},
    {"group limits", test_group_limits},
    {"parity from the reported loss", test_group_for},
    {"reports: onset, group, quiet, bursts", test_reports},
    {"reports: one a second counts", test_reports_rate_limited},
    {"reports: our own drops are not the path's", test_reports_own_drops},
    {"reports: none for FEC_STALE_MS stops parity", test_reports_stale},
    {"cleanup", test_cleanup},
};

CU_MAIN("fec", tests)
