/*
 * wanem: the user-space WAN of tests/bench/run wan (this kernel has no
 * netem). Not a test; built beside the other bench tools.
 *
 *   wanem bridge IF_A IF_B [-d MS] [-l PCT] [-s SEED] [-q FRAMES] [-b BYTES]
 *                [-r RCVBUF]
 *   wanem offload-off DEV...
 *
 * bridge: every Ethernet frame that arrives on IF_A leaves on IF_B and the
 * other way round, through one AF_PACKET socket per interface (run it in a
 * namespace that holds only the two links). Each frame is dropped with
 * probability PCT % (xoshiro256**, seeded with SEED: the same seed drops the
 * same frames), else queued and sent MS milliseconds after it arrived. The
 * delay is the same for every frame, so each direction's queue is a FIFO in
 * deadline order: a ring of FRAMES slots (default 4096) holding at most
 * BYTES bytes (default 4 MiB) per direction, drop-tail when either is full.
 * One thread; it sleeps in poll() on the two sockets and a timerfd armed for
 * the earliest deadline (no busy loop). Before the delay line, frames wait
 * only in each socket's receive buffer (RCVBUF bytes, default 1 MiB, about
 * 400 full-size frames with the kernel's overhead), and only while wanem is
 * not scheduled; what overflows it is counted as sockdrops (run wanem at a
 * real-time priority so that the machine's load does not queue frames: the
 * wire should not be the bottleneck). Frames larger than 2048 bytes
 * (offloads left on: a GSO superframe) are dropped and counted. SIGUSR1
 * prints the counters; SIGINT/SIGTERM print them and exit 0.
 *
 * offload-off: checksum offload, every segmentation offload (TSO, GSO, UDP
 * GSO...) and GRO/LRO off on each DEV, through SIOCETHTOOL (ETHTOOL_SFEATURES,
 * what `ethtool -K` does; ethtool itself is not needed); prints what is off
 * and fails when checksum offload, TSO, GSO or GRO stayed on. Run it in the
 * namespace of each end of the emulated links: a sender must hand the wire
 * finished, MTU-sized frames with their checksums.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>

#define FRAME_MAX 2048
#define BATCH 256

struct frame {
    uint64_t due_ns;
    uint32_t len;
    unsigned char data[FRAME_MAX];
};

struct dir {
    const char *name;
    int in_fd, out_fd;
    struct frame *ring;
    size_t cap, head, count, bytes, max_bytes;
    size_t peak_count, peak_bytes;
    uint64_t in, lost, full, oversize, sent, senderr;
};

static volatile sig_atomic_t stop_flag, report_flag;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        report_flag = 1;
    else
        stop_flag = 1;
}

/* xoshiro256** (Blackman, Vigna), seeded through splitmix64. */
static uint64_t rng_s[4];

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;

    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

/* Uniform in [0, 1). */
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int open_packet(const char *ifname, int rcvbuf, int *ifindex)
{
    struct sockaddr_ll sll;
    struct packet_mreq mr;
    int fd, one = 1, buf = 8 << 20, err;
    unsigned idx = if_nametoindex(ifname);

    if (idx == 0) {
        err = -errno;
        fprintf(stderr, "wanem: no interface '%s' here: %s\n", ifname, strerror(errno));
        return err;
    }
    fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) {
        err = -errno;
        fprintf(stderr, "wanem: AF_PACKET socket: %s (root needed)\n", strerror(errno));
        return err;
    }
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)idx;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        goto fail;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = (int)idx;
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
        goto fail;
    /* Our own sends on this interface are not frames to forward. */
#ifdef PACKET_IGNORE_OUTGOING
    (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
#endif
    (void)one;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    *ifindex = (int)idx;
    return fd;
fail:
    err = -errno;
    fprintf(stderr, "wanem: %s: %s\n", ifname, strerror(errno));
    close(fd);
    return err;
}

static unsigned sock_drops(int fd)
{
    struct tpacket_stats st;
    socklen_t len = sizeof st;

    /* Reading the statistics resets them: callers add them up. */
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
        return 0;
    return st.tp_drops;
}

static void report(const struct dir *d, int n, uint64_t *sockdrops)
{
    int i;

    for (i = 0; i < n; i++)
        fprintf(stderr, "wanem: %s in=%" PRIu64 " lost=%" PRIu64 " full=%" PRIu64
                " oversize=%" PRIu64 " sent=%" PRIu64 " senderr=%" PRIu64
                " peak=%zu frames/%zu bytes sockdrops=%" PRIu64 "\n",
                d[i].name, d[i].in, d[i].lost, d[i].full, d[i].oversize, d[i].sent,
                d[i].senderr, d[i].peak_count, d[i].peak_bytes, sockdrops[i]);
}

/* Reads what is waiting on d->in_fd (at most BATCH frames) into d's ring. */
static void receive(struct dir *d, double loss, uint64_t delay_ns)
{
    unsigned char scratch[FRAME_MAX];
    struct sockaddr_ll from;
    socklen_t flen;
    ssize_t n;
    int i;

    for (i = 0; i < BATCH; i++) {
        struct frame *f = NULL;
        int room = d->count < d->cap;

        if (room)
            f = &d->ring[(d->head + d->count) % d->cap];
        flen = sizeof from;
        n = recvfrom(d->in_fd, room ? f->data : scratch, FRAME_MAX, MSG_DONTWAIT | MSG_TRUNC,
                     (struct sockaddr *)&from, &flen);
        if (n < 0)
            return; /* EAGAIN, or an error poll() reports again */
        if (from.sll_pkttype == PACKET_OUTGOING)
            continue;
        d->in++;
        if (n > FRAME_MAX) {
            d->oversize++;
            continue;
        }
        if (loss > 0 && rng_unit() < loss) {
            d->lost++;
            continue;
        }
        if (!room || d->bytes + (size_t)n > d->max_bytes) {
            d->full++;
            continue;
        }
        f->len = (uint32_t)n;
        f->due_ns = now_ns() + delay_ns;
        d->count++;
        d->bytes += (size_t)n;
        if (d->count > d->peak_count)
            d->peak_count = d->count;
        if (d->bytes > d->peak_bytes)
            d->peak_bytes = d->bytes;
    }
}

/* Sends every frame of d whose time has come. */
static void transmit(struct dir *d, uint64_t now)
{
    while (d->count > 0) {
        struct frame *f = &d->ring[d->head];

        if (f->due_ns > now)
            return;
        if (send(d->out_fd, f->data, f->len, 0) < 0)
            d->senderr++;
        else
            d->sent++;
        d->head = (d->head + 1) % d->cap;
        d->count--;
        d->bytes -= f->len;
    }
}

static int arm(int tfd, const struct dir *d, int n)
{
    struct itimerspec its;
    uint64_t due = UINT64_MAX;
    int i;

    memset(&its, 0, sizeof its);
    for (i = 0; i < n; i++)
        if (d[i].count > 0 && d[i].ring[d[i].head].due_ns < due)
            due = d[i].ring[d[i].head].due_ns;
    if (due != UINT64_MAX) {
        its.it_value.tv_sec = (time_t)(due / 1000000000ULL);
        its.it_value.tv_nsec = (long)(due % 1000000000ULL);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        return -errno;
    return 0;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -EINVAL;
    *out = v;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: wanem bridge IF_A IF_B [-d DELAY_MS] [-l LOSS_PCT] [-s SEED]"
            " [-q FRAMES] [-b BYTES] [-r RCVBUF]\n       wanem offload-off DEV...\n");
    return 2;
}

static int cmd_bridge(int argc, char **argv)
{
    double delay_ms = 0, loss_pct = 0, qframes = 4096, qbytes = 4 << 20, rcvbuf = 1 << 20, v;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32), sm;
    uint64_t sockdrops[2] = { 0, 0 };
    struct dir d[2];
    struct pollfd pfd[3];
    struct sigaction sa;
    int fa = -1, fb = -1, tfd = -1, ia, ib, i, rc = 1;

    if (argc < 4)
        return usage();
    for (i = 4; i < argc; i += 2) { /* option and its value */
        const char *opt = argv[i];

        if (i + 1 >= argc)
            return usage();
        if (strcmp(opt, "-d") == 0 && parse_num(argv[i + 1], 0, 10000, &v) == 0)
            delay_ms = v;
        else if (strcmp(opt, "-l") == 0 && parse_num(argv[i + 1], 0, 100, &v) == 0)
            loss_pct = v;
        else if (strcmp(opt, "-s") == 0 && parse_num(argv[i + 1], 0, 1e18, &v) == 0)
            seed = (uint64_t)v;
        else if (strcmp(opt, "-q") == 0 && parse_num(argv[i + 1], 1, 1 << 20, &v) == 0)
            qframes = v;
        else if (strcmp(opt, "-b") == 0 && parse_num(argv[i + 1], FRAME_MAX, 1 << 30, &v) == 0)
            qbytes = v;
        else if (strcmp(opt, "-r") == 0 && parse_num(argv[i + 1], 4096, 1 << 30, &v) == 0)
            rcvbuf = v;
        else {
            fprintf(stderr, "wanem: bad option or value: %s %s\n", opt, argv[i + 1]);
            return usage();
        }
    }
    sm = seed;
    for (i = 0; i < 4; i++)
        rng_s[i] = splitmix64(&sm);

    memset(d, 0, sizeof d);
    fa = open_packet(argv[2], (int)rcvbuf, &ia);
    fb = open_packet(argv[3], (int)rcvbuf, &ib);
    if (fa < 0 || fb < 0)
        goto out;
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) {
        fprintf(stderr, "wanem: timerfd: %s\n", strerror(errno));
        goto out;
    }
    d[0].name = "a->b";
    d[0].in_fd = fa;
    d[0].out_fd = fb;
    d[1].name = "b->a";
    d[1].in_fd = fb;
    d[1].out_fd = fa;
    for (i = 0; i < 2; i++) {
        d[i].cap = (size_t)qframes;
        d[i].max_bytes = (size_t)qbytes;
        d[i].ring = calloc(d[i].cap, sizeof *d[i].ring);
        if (!d[i].ring) {
            fprintf(stderr, "wanem: no memory for %zu frames\n", d[i].cap);
            goto out;
        }
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    fprintf(stderr, "wanem: bridging %s (a) and %s (b): delay %.3f ms each way, loss %.3f %%,"
            " seed %" PRIu64 ", queue %zu frames / %zu bytes per direction,"
            " socket buffers %.0f bytes\n",
            argv[2], argv[3], delay_ms, loss_pct, seed, d[0].cap, d[0].max_bytes, rcvbuf);
    pfd[0].fd = fa;
    pfd[1].fd = fb;
    pfd[2].fd = tfd;
    for (i = 0; i < 3; i++)
        pfd[i].events = POLLIN;
    while (!stop_flag) {
        uint64_t now;

        if (report_flag) {
            report_flag = 0;
            sockdrops[0] += sock_drops(fa);
            sockdrops[1] += sock_drops(fb);
            report(d, 2, sockdrops);
        }
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "wanem: poll: %s\n", strerror(errno));
            goto out;
        }
        if (pfd[0].revents & (POLLERR | POLLNVAL) || pfd[1].revents & (POLLERR | POLLNVAL)) {
            fprintf(stderr, "wanem: a link went away\n");
            goto out;
        }
        if (pfd[2].revents & POLLIN) {
            uint64_t expirations;

            if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                goto out;
        }
        if (pfd[0].revents & POLLIN)
            receive(&d[0], loss_pct / 100.0, (uint64_t)(delay_ms * 1e6));
        if (pfd[1].revents & POLLIN)
            receive(&d[1], loss_pct / 100.0, (uint64_t)(delay_ms * 1e6));
        now = now_ns();
        transmit(&d[0], now);
        transmit(&d[1], now);
        if (arm(tfd, d, 2) < 0) {
            fprintf(stderr, "wanem: timerfd_settime: %s\n", strerror(errno));
            goto out;
        }
    }
    rc = 0;
out:
    if (fa >= 0 && fb >= 0) {
        sockdrops[0] += sock_drops(fa);
        sockdrops[1] += sock_drops(fb);
        report(d, 2, sockdrops);
    }
    for (i = 0; i < 2; i++)
        free(d[i].ring);
    if (tfd >= 0)
        close(tfd);
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return rc;
}

/* ---- offload-off ---------------------------------------------------------- */

static int feature_targeted(const char *name)
{
    return strncmp(name, "tx-checksum", 11) == 0 || strncmp(name, "rx-checksum", 11) == 0 ||
           strstr(name, "segmentation") != NULL || strncmp(name, "rx-gro", 6) == 0 ||
           strncmp(name, "rx-lro", 6) == 0 || strcmp(name, "rx-udp-gro-forwarding") == 0;
}

/* Those that must be off for the emulator to see finished, MTU-sized frames. */
static int feature_required(const char *name)
{
    return strncmp(name, "tx-checksum", 11) == 0 || strcmp(name, "tx-tcp-segmentation") == 0 ||
           strcmp(name, "tx-tcp6-segmentation") == 0 ||
           strcmp(name, "tx-generic-segmentation") == 0 ||
           strcmp(name, "tx-udp-segmentation") == 0 || strcmp(name, "rx-gro") == 0;
}

static int ethtool(int fd, const char *dev, void *cmd)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
    ifr.ifr_data = cmd;
    return ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
}

static int offload_off(int fd, const char *dev)
{
    struct ethtool_sset_info *si = NULL;
    struct ethtool_gstrings *gs = NULL;
    struct ethtool_gfeatures *gf = NULL;
    struct ethtool_sfeatures *sf = NULL;
    uint32_t n, blocks, i;
    char off[1024] = "", on[1024] = "";
    int err;

    si = calloc(1, sizeof *si + sizeof(uint32_t));
    if (!si)
        return -ENOMEM;
    si->cmd = ETHTOOL_GSSET_INFO;
    si->sset_mask = 1ULL << ETH_SS_FEATURES;
    err = ethtool(fd, dev, si);
    if (err < 0 || !(si->sset_mask & (1ULL << ETH_SS_FEATURES))) {
        fprintf(stderr, "wanem: %s: cannot read its feature names: %s\n", dev,
                strerror(err < 0 ? -err : EOPNOTSUPP));
        err = err < 0 ? err : -EOPNOTSUPP;
        goto out;
    }
    n = si->data[0];
    blocks = (n + 31) / 32;
    gs = calloc(1, sizeof *gs + (size_t)n * ETH_GSTRING_LEN);
    gf = calloc(1, sizeof *gf + blocks * sizeof gf->features[0]);
    sf = calloc(1, sizeof *sf + blocks * sizeof sf->features[0]);
    if (!gs || !gf || !sf) {
        err = -ENOMEM;
        goto out;
    }
    gs->cmd = ETHTOOL_GSTRINGS;
    gs->string_set = ETH_SS_FEATURES;
    gs->len = n;
    gf->cmd = ETHTOOL_GFEATURES;
    gf->size = blocks;
    if ((err = ethtool(fd, dev, gs)) < 0 || (err = ethtool(fd, dev, gf)) < 0) {
        fprintf(stderr, "wanem: %s: cannot read its features: %s\n", dev, strerror(-err));
        goto out;
    }
    sf->cmd = ETHTOOL_SFEATURES;
    sf->size = blocks;
    for (i = 0; i < n; i++) {
        char name[ETH_GSTRING_LEN + 1];
        uint32_t bit = 1U << (i % 32);

        memcpy(name, gs->data + (size_t)i * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
        name[ETH_GSTRING_LEN] = '\0';
        if (feature_targeted(name) && (gf->features[i / 32].available & bit))
            sf->features[i / 32].valid |= bit; /* requested stays 0: off */
    }
    err = ethtool(fd, dev, sf);
    if (err < 0) {
        fprintf(stderr, "wanem: %s: ETHTOOL_SFEATURES: %s\n", dev, strerror(-err));
        goto out;
    }
    if ((err = ethtool(fd, dev, gf)) < 0)
        goto out;
    for (i = 0; i < n; i++) {
        char name[ETH_GSTRING_LEN + 1];
        uint32_t bit = 1U << (i % 32);
        char *list;

        memcpy(name, gs->data + (size_t)i * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
        name[ETH_GSTRING_LEN] = '\0';
        if (!feature_targeted(name))
            continue;
        list = (gf->features[i / 32].active & bit) ? on : off;
        if (strlen(list) + strlen(name) + 2 < sizeof off) {
            strcat(list, " ");
            strcat(list, name);
        }
        if ((gf->features[i / 32].active & bit) && feature_required(name)) {
            fprintf(stderr, "wanem: %s: %s is still on\n", dev, name);
            err = -EOPNOTSUPP;
        }
    }
    printf("%s: off:%s; on:%s\n", dev, off, on[0] ? on : " (none)");
out:
    free(si);
    free(gs);
    free(gf);
    free(sf);
    return err;
}

static int cmd_offload_off(int argc, char **argv)
{
    int fd, i, rc = 0;

    if (argc < 3)
        return usage();
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "wanem: socket: %s\n", strerror(errno));
        return 1;
    }
    for (i = 2; i < argc; i++)
        if (offload_off(fd, argv[i]) < 0)
            rc = 1;
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "bridge") == 0)
        return cmd_bridge(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "offload-off") == 0)
        return cmd_offload_off(argc, argv);
    return usage();
}
