/*
 * dchan-bench: the UDP data channel's record layer on one core: seal then
 * open 1400-byte packets in place (what a packet costs the two ends
 * together) and each half alone, for AES-256-GCM and ChaCha20-Poly1305; then
 * whether this kernel does UDP GSO (UDP_SEGMENT) and GRO (UDP_GRO), tried
 * over loopback. Not a test: it prints figures for stage 2's budget.
 *
 * usage: dchan-bench [SECONDS per figure, default 2] [PACKET bytes, default 1400]
 * Each figure is the median of 5 rounds, the three figures alternating.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "dchan.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void keys_for(struct dchan_keys *k, enum dchan_role role, gnutls_cipher_algorithm_t c)
{
    memset(k, 0x11, sizeof(*k));
    memset(role == DCHAN_HUB ? k->tx_key : k->rx_key, 0x22, DCHAN_KEY);
    memset(role == DCHAN_HUB ? k->tx_iv : k->rx_iv, 0x33, DCHAN_IV);
    k->epoch = 0;
    k->id = 7;
    k->role = role;
    k->cipher = c;
}

enum { SEAL = 1, OPEN = 2 };

/* Time `what` (SEAL, OPEN or both) over a ring of records (the cache sees
 * what a NIC's ring would give it); the untimed half still runs, so each
 * record is sealed and opened once. Plaintext Gbit/s. */
static double run(gnutls_cipher_algorithm_t c, int what, double secs, size_t len)
{
    enum { RING = 1024 };
    struct dchan_keys kh, ks;
    struct dchan *hub = NULL, *spoke = NULL;
    size_t stride = len + DCHAN_OVERHEAD;
    unsigned char *ring = malloc(RING * stride);
    unsigned long long n = 0;
    unsigned type;
    double timed = 0;

    keys_for(&kh, DCHAN_HUB, c);
    keys_for(&ks, DCHAN_SPOKE, c);
    if (!ring || dchan_new(&kh, &hub) < 0 || dchan_new(&ks, &spoke) < 0) {
        fprintf(stderr, "dchan-bench: setup failed\n");
        exit(1);
    }
    memset(ring, 0x45, RING * stride);
    while (timed < secs) {
        double t0 = now_s(), t1;
        for (int i = 0; i < RING; i++) {
            if (dchan_seal(hub, DCHAN_DATA, ring + (size_t)i * stride, len, stride) < 0)
                exit(1);
            if (what == (SEAL | OPEN) &&
                dchan_open(spoke, ring + (size_t)i * stride, stride, &type) != (int)len)
                exit(1);
        }
        t1 = now_s();
        if (what != (SEAL | OPEN)) {
            for (int i = 0; i < RING; i++)
                if (dchan_open(spoke, ring + (size_t)i * stride, stride, &type) != (int)len)
                    exit(1);
        }
        timed += what == OPEN ? now_s() - t1 : t1 - t0;
        n += RING;
    }
    dchan_free(hub);
    dchan_free(spoke);
    free(ring);
    return (double)n * (double)len * 8 / timed / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of RUNS rounds, the three figures alternating. */
static void measure(gnutls_cipher_algorithm_t c, const char *name, double secs, size_t len)
{
    enum { RUNS = 5 };
    double r[3][RUNS];
    static const int what[3] = {SEAL | OPEN, SEAL, OPEN};

    for (int k = 0; k < RUNS; k++)
        for (int j = 0; j < 3; j++)
            r[j][k] = run(c, what[j], secs / RUNS, len);
    for (int j = 0; j < 3; j++)
        qsort(r[j], RUNS, sizeof(double), cmp);
    printf("dchan: %-18s seal+open %6.2f Gbit/s (%4.0f kpps); seal %6.2f, open %6.2f\n", name,
           r[0][RUNS / 2], r[0][RUNS / 2] * 1e9 / 8 / (double)len / 1e3, r[1][RUNS / 2],
           r[2][RUNS / 2]);
}

static const char *yes(int ok)
{
    return ok ? "yes" : "no";
}

/* Send 3 segments as one GSO datagram to a GRO socket on loopback. */
static void probe_udp(size_t seg)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int one = 1, gso = (int)seg, rx = socket(AF_INET, SOCK_DGRAM, 0);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    int seg_ok, gro_ok, seg_err = 0, gro_err = 0, reads = 0;
    size_t got = 0;
    unsigned char *buf = calloc(1, 65536);

    if (rx < 0 || tx < 0 || !buf || bind(rx, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(rx, (struct sockaddr *)&a, &alen) < 0) {
        printf("udp: probe failed: %s\n", strerror(errno));
        return;
    }
    if (!(seg_ok = setsockopt(tx, IPPROTO_UDP, UDP_SEGMENT, &gso, sizeof(gso)) == 0))
        seg_err = errno;
    if (!(gro_ok = setsockopt(rx, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0))
        gro_err = errno;
    printf("udp: UDP_SEGMENT %s%s%s, UDP_GRO %s%s%s\n", yes(seg_ok), seg_ok ? "" : ": ",
           seg_ok ? "" : strerror(seg_err), yes(gro_ok), gro_ok ? "" : ": ",
           gro_ok ? "" : strerror(gro_err));
    if (seg_ok &&
        sendto(tx, buf, 3 * seg, 0, (struct sockaddr *)&a, sizeof(a)) == (ssize_t)(3 * seg)) {
        struct timeval tv = {0, 200000};
        setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        for (ssize_t r; got < 3 * seg && (r = recv(rx, buf, 65536, 0)) > 0; reads++)
            got += (size_t)r;
        printf("udp: one send of 3 x %zu bytes with UDP_SEGMENT: %zu bytes in %d read%s%s\n", seg,
               got, reads, reads == 1 ? "" : "s",
               reads == 1 ? " (GRO handed the batch up whole)" : "");
    }
    close(rx);
    close(tx);
    free(buf);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2;
    size_t len = argc > 2 ? (size_t)atoi(argv[2]) : 1400;
    static const struct {
        gnutls_cipher_algorithm_t c;
        const char *name;
    } ciphers[] = {{GNUTLS_CIPHER_AES_256_GCM, "AES-256-GCM"},
                   {GNUTLS_CIPHER_CHACHA20_POLY1305, "ChaCha20-Poly1305"}};

    if (secs <= 0 || len < 1 || len > 65000) {
        fprintf(stderr, "usage: dchan-bench [SECONDS] [PACKET]\n");
        return 2;
    }
    printf("dchan: %zu-byte packets, one core, GnuTLS %s\n", len, gnutls_check_version(NULL));
    for (size_t i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
        measure(ciphers[i].c, ciphers[i].name, secs, len);
    probe_udp(len);
    return 0;
}
