/* Namespace, command and JSON helpers of the netns suite. */
#define _GNU_SOURCE /* unshare(), setns(): tests run on Linux only */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netconfig.h"
#include "nsutil.h"

int ns_failures;
struct nc *ns_nc;
static int ns_a_fd = -1, ns_b_fd = -1;

void ns_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ns_failures++;
}

void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int ns_probe(void)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return -EPERM;
    if (system("ip -V >/dev/null 2>&1") != 0 || system("nft -v >/dev/null 2>&1") != 0)
        return -ENOENT;
    return 0;
}

int ns_run(void (*body)(void), const char *name)
{
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (unshare(CLONE_NEWNET) < 0) {
            fprintf(stderr, "    %s: unshare: %s\n", name, strerror(errno));
            _exit(100);
        }
        /* A test that hangs is a failure, not a stuck suite. */
        alarm(60);
        ns_failures = 0;
        if (ns_sh("ip link set lo up") != 0)
            ns_fail(__FILE__, __LINE__, "lo up");
        body();
        fflush(NULL);
        _exit(ns_failures > 99 ? 99 : ns_failures);
    }
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    if (!WIFEXITED(status)) {
        fprintf(stderr, "    %s: killed by signal %d\n", name,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return -1;
    }
    return WEXITSTATUS(status);
}

__attribute__((format(printf, 1, 0))) static int vsh(const char *fmt, va_list ap)
{
    char cmd[1024];
    int st;

    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    fflush(NULL);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int ns_sh(const char *fmt, ...)
{
    va_list ap;
    int st;

    va_start(ap, fmt);
    st = vsh(fmt, ap);
    va_end(ap);
    return st;
}

int ns_b_sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return ns_sh("nsenter --net=/proc/%d/fd/%d sh -c '%s'", (int)getpid(), ns_b_fd, cmd);
}

int ns_peer_setup(void)
{
    ns_a_fd = open("/proc/self/ns/net", O_RDONLY);
    if (ns_a_fd < 0 || unshare(CLONE_NEWNET) < 0)
        return -errno;
    /* Not O_CLOEXEC: ip and nsenter reach it as /proc/PID/fd/N. */
    ns_b_fd = open("/proc/self/ns/net", O_RDONLY);
    if (ns_b_fd < 0 || setns(ns_a_fd, CLONE_NEWNET) < 0)
        return -errno;
    if (ns_sh("ip link add va type veth peer name vb netns /proc/%d/fd/%d", (int)getpid(),
              ns_b_fd) != 0 ||
        ns_sh("ip link set va up") != 0 ||
        ns_b_sh("ip link set lo up && ip link set vb up") != 0)
        return -EIO;
    return 0;
}

/* socket() in B; the socket stays in B after we return to A. */
static int b_socket(int family, int type)
{
    int fd, saved;

    if (setns(ns_b_fd, CLONE_NEWNET) < 0)
        return -errno;
    fd = socket(family, type | SOCK_CLOEXEC, 0);
    saved = errno;
    if (setns(ns_a_fd, CLONE_NEWNET) < 0)
        abort();
    return fd < 0 ? -saved : fd;
}

static int sockaddr_of(const char *addr, uint16_t port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *len = sizeof(*in4);
        return AF_INET;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return AF_INET6;
    }
    return -EINVAL;
}

int ns_b_connect(const char *src, const char *dst, uint16_t port, int timeout_ms)
{
    struct sockaddr_storage s, d;
    socklen_t sl, dl;
    struct pollfd pfd;
    int fd = -1, err, soerr = 0;
    socklen_t olen = sizeof(soerr);
    int family = sockaddr_of(dst, port, &d, &dl);

    if (family < 0 || sockaddr_of(src, 0, &s, &sl) != family)
        return -EINVAL;
    fd = b_socket(family, SOCK_STREAM | SOCK_NONBLOCK);
    if (fd < 0)
        return fd;
    if (bind(fd, (struct sockaddr *)&s, sl) < 0) {
        err = -errno;
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&d, dl) == 0) {
        err = 0;
        goto out;
    }
    if (errno != EINPROGRESS) {
        err = -errno;
        goto out;
    }
    pfd.fd = fd;
    pfd.events = POLLOUT;
    if (poll(&pfd, 1, timeout_ms) != 1) {
        err = -ETIMEDOUT;
        goto out;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &olen);
    err = -soerr;
out:
    close(fd);
    return err;
}

static int bound_socket(int fd, const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    if (fd < 0)
        return fd;
    if (sockaddr_of(addr, port, &ss, &len) < 0) {
        close(fd);
        return -EINVAL;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Addresses may still be tentative or on a link not up yet. */
    setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        int err = -errno;

        close(fd);
        return err;
    }
    return fd;
}

int ns_b_udp_socket(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = sockaddr_of(addr, port, &ss, &len);

    if (family < 0)
        return family;
    return bound_socket(b_socket(family, SOCK_DGRAM), addr, port);
}

int ns_b_udp_send(const char *src, const char *dst, uint16_t port)
{
    struct sockaddr_storage d;
    socklen_t dl;
    int family = sockaddr_of(dst, port, &d, &dl);
    int fd, err = 0;

    if (family < 0)
        return family;
    fd = bound_socket(b_socket(family, SOCK_DGRAM), src, 0);
    if (fd < 0)
        return fd;
    if (sendto(fd, "x", 1, 0, (struct sockaddr *)&d, dl) != 1)
        err = -errno;
    close(fd);
    return err;
}

int udp_socket(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = sockaddr_of(addr, port, &ss, &len);

    if (family < 0)
        return family;
    return bound_socket(socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), addr, port);
}

int udp_wait(int fd, int timeout_ms)
{
    struct pollfd pfd = { fd, POLLIN, 0 };
    char buf[64];

    if (poll(&pfd, 1, timeout_ms) != 1)
        return 0;
    return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0 ? 1 : 0;
}

int tcp_listen(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = sockaddr_of(addr, port, &ss, &len);
    int fd;

    if (family < 0)
        return family;
    fd = bound_socket(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), addr, port);
    if (fd >= 0 && listen(fd, 16) < 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

static uint16_t csum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

size_t ipv4_udp_packet(uint8_t *buf, const char *src, const char *dst, uint16_t dport)
{
    const size_t len = 20 + 8 + 4;
    uint16_t c;

    memset(buf, 0, len);
    buf[0] = 0x45;
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    buf[8] = 64;
    buf[9] = IPPROTO_UDP;
    inet_pton(AF_INET, src, buf + 12);
    inet_pton(AF_INET, dst, buf + 16);
    c = csum(buf, 20);
    buf[10] = (uint8_t)(c >> 8);
    buf[11] = (uint8_t)c;
    buf[20] = 0x9c; /* source port 40000 */
    buf[21] = 0x40;
    buf[22] = (uint8_t)(dport >> 8);
    buf[23] = (uint8_t)dport;
    buf[25] = 12; /* UDP length; checksum 0: none, allowed on IPv4 */
    memcpy(buf + 28, "ping", 4);
    return len;
}

size_t ipv6_udp_packet(uint8_t *buf, const char *src, const char *dst, uint16_t dport)
{
    const size_t len = 40 + 8 + 4;
    uint8_t pseudo[40 + 8 + 4];
    uint16_t c;

    memset(buf, 0, len);
    buf[0] = 0x60;
    buf[5] = 12; /* payload length */
    buf[6] = IPPROTO_UDP;
    buf[7] = 64;
    inet_pton(AF_INET6, src, buf + 8);
    inet_pton(AF_INET6, dst, buf + 24);
    buf[40] = 0x9c; /* source port 40000 */
    buf[41] = 0x40;
    buf[42] = (uint8_t)(dport >> 8);
    buf[43] = (uint8_t)dport;
    buf[45] = 12;
    memcpy(buf + 48, "ping", 4);
    /* The checksum is mandatory on IPv6 (RFC 8200 8.1): over the pseudo
     * header (addresses, length, next header) and the datagram. */
    memset(pseudo, 0, sizeof(pseudo));
    memcpy(pseudo, buf + 8, 32);
    pseudo[35] = 12;
    pseudo[39] = IPPROTO_UDP;
    memcpy(pseudo + 40, buf + 40, 12);
    c = csum(pseudo, sizeof(pseudo));
    buf[46] = (uint8_t)(c >> 8);
    buf[47] = (uint8_t)c;
    return len;
}

json_object *ns_json(const char *fmt, ...)
{
    char cmd[1024];
    char *out = NULL;
    size_t len = 0, cap = 0;
    json_object *j = NULL;
    va_list ap;
    FILE *f;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    fflush(NULL);
    f = popen(cmd, "r");
    if (!f)
        return NULL;
    for (;;) {
        size_t n;

        if (len + 4096 + 1 > cap) {
            char *p = realloc(out, cap = cap * 2 + 8192);

            if (!p)
                break;
            out = p;
        }
        n = fread(out + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    st = pclose(f);
    if (out && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        out[len] = '\0';
        j = json_tokener_parse(out);
    }
    free(out);
    return j;
}

static json_object *ip_link(const char *name)
{
    json_object *arr = ns_json("ip -j link show dev %s 2>/dev/null", name);
    json_object *l;

    if (!arr || json_object_array_length(arr) != 1) {
        json_object_put(arr);
        return NULL;
    }
    l = json_object_get(json_object_array_get_idx(arr, 0));
    json_object_put(arr);
    return l;
}

bool ip_link_exists(const char *name)
{
    json_object *l = ip_link(name);

    json_object_put(l);
    return l != NULL;
}

bool ip_link_has_flag(const char *name, const char *flag)
{
    json_object *l = ip_link(name), *flags;
    bool has = false;

    if (l && json_object_object_get_ex(l, "flags", &flags)) {
        for (size_t i = 0; i < json_object_array_length(flags); i++)
            has |= !strcmp(json_object_get_string(json_object_array_get_idx(flags, i)), flag);
    }
    json_object_put(l);
    return has;
}

int ip_link_mtu(const char *name)
{
    json_object *l = ip_link(name), *mtu;
    int v = -1;

    if (l && json_object_object_get_ex(l, "mtu", &mtu))
        v = json_object_get_int(mtu);
    json_object_put(l);
    return v;
}

int ip_link_count(void)
{
    json_object *arr = ns_json("ip -j link show");
    int n = arr ? (int)json_object_array_length(arr) : -1;

    json_object_put(arr);
    return n;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int jint(json_object *o, const char *key, int dflt)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : dflt;
}

bool ip_addr_present(const char *dev, const char *local, int prefixlen, const char *peer)
{
    json_object *arr = ns_json("ip -j addr show dev %s 2>/dev/null", dev), *ai;
    bool found = false;

    if (!arr || json_object_array_length(arr) != 1 ||
        !json_object_object_get_ex(json_object_array_get_idx(arr, 0), "addr_info", &ai)) {
        json_object_put(arr);
        return false;
    }
    for (size_t i = 0; !found && i < json_object_array_length(ai); i++) {
        json_object *a = json_object_array_get_idx(ai, i);
        const char *l = jstr(a, "local"), *p = jstr(a, "address");

        found = l && !strcmp(l, local) && jint(a, "prefixlen", -1) == prefixlen &&
                (!peer || (p && !strcmp(p, peer)));
    }
    json_object_put(arr);
    return found;
}

bool ip_route_present(int family, unsigned table, const char *dst, const char *dev,
                      int metric)
{
    json_object *arr = ns_json("ip -j -%d route show table %u 2>/dev/null", family, table);
    bool found = false;

    for (size_t i = 0; arr && !found && i < json_object_array_length(arr); i++) {
        json_object *r = json_object_array_get_idx(arr, i);
        const char *d = jstr(r, "dst"), *v = jstr(r, "dev");

        found = d && v && !strcmp(d, dst) && !strcmp(v, dev) && jint(r, "metric", 0) == metric;
    }
    json_object_put(arr);
    return found;
}

/* An nft -j element as text. */
static void elem_text(json_object *e, char *buf, size_t len)
{
    json_object *v;

    buf[0] = '\0';
    switch (json_object_get_type(e)) {
    case json_type_string:
        snprintf(buf, len, "%s", json_object_get_string(e));
        return;
    case json_type_int:
        snprintf(buf, len, "%d", json_object_get_int(e));
        return;
    case json_type_object:
        if (json_object_object_get_ex(e, "elem", &v) &&
            json_object_object_get_ex(v, "val", &v)) {
            elem_text(v, buf, len);
        } else if (json_object_object_get_ex(e, "concat", &v)) {
            size_t off = 0;

            for (size_t i = 0; i < json_object_array_length(v) && off < len; i++) {
                char part[128];

                elem_text(json_object_array_get_idx(v, i), part, sizeof(part));
                off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " . " : "", part);
            }
        } else if (json_object_object_get_ex(e, "prefix", &v)) {
            snprintf(buf, len, "%s/%d", jstr(v, "addr"), jint(v, "len", -1));
        }
        return;
    default:
        return;
    }
}

static json_object *nft_elems(const char *set, json_object **root)
{
    json_object *arr, *s, *elems;

    *root = ns_json("nft -j list set inet mtlsgw %s 2>/dev/null", set);
    if (!*root || !json_object_object_get_ex(*root, "nftables", &arr))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        if (json_object_object_get_ex(json_object_array_get_idx(arr, i), "set", &s))
            return json_object_object_get_ex(s, "elem", &elems) ? elems : NULL;
    }
    return NULL;
}

int nft_set_count(const char *set)
{
    json_object *root = NULL;
    json_object *e = nft_elems(set, &root);
    int n = root ? (e ? (int)json_object_array_length(e) : 0) : -1;

    json_object_put(root);
    return n;
}

/* Some nft versions list an inet_proto . inet_service element by number
 * ("6 . 2222", Debian 12's nft on kernel 6.1), others by name ("tcp . 2222"). */
static bool same_proto_elem(const char *got, const char *want)
{
    static const struct { const char *num, *name; } protos[] = {
        { "6 . ", "tcp . " }, { "17 . ", "udp . " },
    };

    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        size_t n = strlen(protos[i].num), m = strlen(protos[i].name);

        if (!strncmp(got, protos[i].num, n) && !strncmp(want, protos[i].name, m))
            return !strcmp(got + n, want + m);
    }
    return false;
}

static json_object *find_elem(json_object *elems, const char *want)
{
    for (size_t i = 0; elems && i < json_object_array_length(elems); i++) {
        char t[256];

        elem_text(json_object_array_get_idx(elems, i), t, sizeof(t));
        if (!strcmp(t, want) || same_proto_elem(t, want))
            return json_object_array_get_idx(elems, i);
    }
    return NULL;
}

bool nft_set_has(const char *set, const char *elem)
{
    json_object *root = NULL;
    bool has = find_elem(nft_elems(set, &root), elem) != NULL;

    json_object_put(root);
    return has;
}

int nft_elem_timeout(const char *set, const char *elem)
{
    json_object *root = NULL, *v;
    json_object *e = find_elem(nft_elems(set, &root), elem);
    int t = -1;

    if (e && json_object_object_get_ex(e, "elem", &v))
        t = jint(v, "timeout", -1);
    json_object_put(root);
    return t;
}

bool nft_table_exists(void)
{
    return ns_sh("nft list table inet mtlsgw >/dev/null 2>&1") == 0;
}
