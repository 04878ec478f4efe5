/*
 * Benchmark (not a test): time to bring up and tear down the kernel
 * plumbing of N tunnel peers through netconfig: TUN + address + route +
 * trusted interface + allowed prefix, then the reverse. Prints per-peer
 * times per step and the ratio of each against N = 100, so that a step
 * that grows worse than linearly shows. Run it in a fresh namespace:
 * tests/bench/plumbing.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "netconfig.h"

enum step { S_TUN, S_UP, S_ADDR, S_ROUTE, S_TRUST, S_ALLOW,
            S_UNTRUST, S_DISALLOW, S_ROUTE_DEL, S_LINKS_DEL, S_CLOSE, S_COUNT };
static const char *const step_names[S_COUNT] = {
    "tun", "up", "addr", "route", "trust", "allow",
    "untrust", "disallow", "route del", "links del", "close tun",
};

struct peer {
    char name[NC_IFNAMSIZ];
    char addr[32], net[32];
    int fd;
};

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

#define STEP(s, call)                                                                        \
    do {                                                                                     \
        double t0_ = now_us();                                                               \
        int r_ = (call);                                                                     \
        t[s] += now_us() - t0_;                                                              \
        if (r_ < 0) {                                                                        \
            fprintf(stderr, "plumbing: peer %zu: %s: %s\n", i, step_names[s],               \
                    nc_error(nc));                                                           \
            goto out;                                                                        \
        }                                                                                    \
    } while (0)

/* Per-peer microseconds of each step for n peers, into per[]. */
static int run(struct nc *nc, size_t n, double per[S_COUNT])
{
    struct peer *p = calloc(n, sizeof(*p));
    const char **names = calloc(n, sizeof(*names));
    double t[S_COUNT] = { 0 };
    int err = -1;
    size_t i = 0;

    if (!p || !names) {
        free(p);
        free(names);
        return -ENOMEM;
    }
    for (i = 0; i < n; i++) {
        snprintf(p[i].name, sizeof(p[i].name), "mtg%u", (unsigned)(i % 100000));
        snprintf(p[i].addr, sizeof(p[i].addr), "100.64.%zu.%zu", i / 250, i % 250 + 1);
        snprintf(p[i].net, sizeof(p[i].net), "10.%zu.%zu.0/24", i / 250, i % 250);
        p[i].fd = -1;
    }
    if (nc_fw_install(nc, NULL) < 0) {
        fprintf(stderr, "plumbing: %s\n", nc_error(nc));
        goto out;
    }
    for (i = 0; i < n; i++) {
        const char *net = p[i].net;

        STEP(S_TUN, nc_tun_create(nc, p[i].name, &p[i].fd));
        STEP(S_UP, nc_link_set_up(nc, p[i].name));
        STEP(S_ADDR, nc_addr_add(nc, p[i].name, "100.127.255.254", p[i].addr));
        STEP(S_ROUTE, nc_route_add(nc, p[i].net, p[i].name, 0, 0));
        STEP(S_TRUST, nc_fw_trust_iface(nc, p[i].name, 60000));
        STEP(S_ALLOW, nc_fw_allow_prefixes(nc, p[i].name, &net, 1));
    }
    for (i = 0; i < n; i++) {
        const char *net = p[i].net;

        STEP(S_UNTRUST, nc_fw_untrust_iface(nc, p[i].name));
        STEP(S_DISALLOW, nc_fw_disallow_prefixes(nc, p[i].name, &net, 1));
        STEP(S_ROUTE_DEL, nc_route_del(nc, p[i].net, p[i].name, 0, 0));
        names[i] = p[i].name;
    }
    /* Each link deletion waits for an RCU grace period: delete them all in
     * one go, then the fds close on devices that are gone already. */
    i = 0;
    STEP(S_LINKS_DEL, nc_links_del(nc, names, n));
    for (i = 0; i < n; i++) {
        STEP(S_CLOSE, close(p[i].fd));
        p[i].fd = -1;
    }
    for (int s = 0; s < S_COUNT; s++)
        per[s] = t[s] / (double)n;
    err = 0;
out:
    for (i = 0; i < n; i++) {
        if (p[i].fd >= 0)
            close(p[i].fd);
    }
    free(p);
    free(names);
    return err;
}

/* Microseconds per link when each one goes alone, as when one peer leaves:
 * closing a TUN fd unregisters its device, which waits for RCU. */
static double single_close(struct nc *nc, size_t n)
{
    double t = 0;

    for (size_t i = 0; i < n; i++) {
        int fd = -1;
        double t0;

        if (nc_tun_create(nc, "mtgsingle", &fd) < 0)
            return -1;
        t0 = now_us();
        close(fd);
        t += now_us() - t0;
    }
    return t / (double)n;
}

int main(int argc, char **argv)
{
    size_t sizes[8] = { 1, 100, 1000 };
    size_t n_sizes = 3;
    double per[8][S_COUNT];
    struct rlimit rl = { 8192, 8192 };
    struct nc *nc = NULL;
    int ref = -1;

    if (argc > 1) {
        n_sizes = 0;
        for (int a = 1; a < argc && n_sizes < 8; a++)
            sizes[n_sizes++] = strtoul(argv[a], NULL, 10);
    }
    /* One TUN fd per peer. */
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    if (nc_new(NULL, &nc) < 0)
        return 1;
    for (size_t k = 0; k < n_sizes; k++) {
        if (run(nc, sizes[k], per[k]) < 0) {
            nc_free(nc);
            return 1;
        }
        if (sizes[k] == 100)
            ref = (int)k;
    }
    printf("%-10s", "us/peer");
    for (size_t k = 0; k < n_sizes; k++)
        printf(" %10s%-4zu", "N=", sizes[k]);
    if (ref >= 0)
        printf("  ratio %zu/100", sizes[n_sizes - 1]);
    printf("\n");
    for (int s = 0; s <= S_COUNT + 1; s++) {
        double v[8] = { 0 };
        const char *label = s < S_COUNT ? step_names[s] : s == S_COUNT ? "= up" : "= down";

        for (size_t k = 0; k < n_sizes; k++) {
            if (s < S_COUNT) {
                v[k] = per[k][s];
            } else {
                int a = s == S_COUNT ? S_TUN : S_UNTRUST;
                int b = s == S_COUNT ? S_ALLOW : S_CLOSE;

                for (int x = a; x <= b; x++)
                    v[k] += per[k][x];
            }
        }
        printf("%-10s", label);
        for (size_t k = 0; k < n_sizes; k++)
            printf(" %14.1f", v[k]);
        if (ref >= 0 && v[ref] > 0)
            printf("  %6.2f", v[n_sizes - 1] / v[ref]);
        printf("\n");
    }
    printf("one link at a time (closing its TUN fd alone): %.1f us per link (20 links)\n",
           single_close(nc, 20));
    nc_free(nc);
    return 0;
}
