#include "config-diff.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

enum kind { STR, UINT, LIST, GATE };

/* Everything server.c's reload does not copy into the running config. */
static const struct restart_key {
    const char *name;
    enum kind kind;
    size_t off, n_off; /* n_off: LIST's count */
} restart_keys[] = {
#define S(name, f) {name, STR, offsetof(struct config, f), 0}
#define U(name, f) {name, UINT, offsetof(struct config, f), 0}
    S("[token] uri", token.uri),
    S("[token] module", token.module),
    S("[token] pin-file", token.pin_file),
    S("[pki] dir", pki.dir),
    S("[daemon] user", daemon.user),
    S("[daemon] control-socket", daemon.control_socket),
    U("[daemon] ban-threshold", daemon.ban_threshold),
    U("[daemon] ban-time", daemon.ban_time),
    S("[management] listen", mgmt.listen),
    S("[management] key", mgmt.key),
    S("[management] cert", mgmt.cert),
    U("[management] tls-min", mgmt.tls_min),
    S("[tunnel] listen", tunnel.listen),
    S("[tunnel] pool", tunnel.pool),
    {"[tunnel] routes", LIST, offsetof(struct config, tunnel.routes),
     offsetof(struct config, tunnel.n_routes)},
    {"[tunnel] peer-networks", LIST, offsetof(struct config, tunnel.peer_networks),
     offsetof(struct config, tunnel.n_peer_networks)},
    U("[tunnel] mtu", tunnel.mtu),
    U("[tunnel] keepalive", tunnel.keepalive),
    U("[tunnel] offload", tunnel.offload),
    U("[tunnel] fec", tunnel.fec),
    {"[firewall] gate", GATE, offsetof(struct config, fw.gate), 0},
    S("[enroll] listen", enroll.listen),
    U("[enroll] tls-min", enroll.tls_min),
    S("[crl] listen", crl.listen),
    U("[crl] resign", crl.resign),
    S("[pki] crl-url", pki.crl_url),
#undef S
#undef U
};

static bool str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static bool key_differs(const struct restart_key *k, const struct config *o,
                        const struct config *n)
{
    const char *po = (const char *)o + k->off, *pn = (const char *)n + k->off;

    switch (k->kind) {
    case STR:
        return str_differs(*(char *const *)po, *(char *const *)pn);
    case UINT:
        return *(const unsigned *)po != *(const unsigned *)pn;
    case LIST: {
        unsigned no = *(const unsigned *)((const char *)o + k->n_off);
        unsigned nn = *(const unsigned *)((const char *)n + k->n_off);
        if (no != nn)
            return true;
        for (unsigned i = 0; i < no; i++)
            if (str_differs(((char *const *)po)[i], ((char *const *)pn)[i]))
                return true;
        return false;
    }
    case GATE:
        if (o->fw.n_gate != n->fw.n_gate)
            return true;
        for (unsigned i = 0; i < o->fw.n_gate; i++)
            if (o->fw.gate[i].proto != n->fw.gate[i].proto ||
                o->fw.gate[i].port != n->fw.gate[i].port)
                return true;
        return false;
    }
    return false;
}

static bool uplink_differs(const struct cfg_uplink *a, const struct cfg_uplink *b)
{
    if (a->n_servers != b->n_servers || a->server_random != b->server_random ||
        a->prefer_first != b->prefer_first || a->probe_interval != b->probe_interval)
        return true;
    for (unsigned i = 0; i < a->n_servers; i++)
        if (str_differs(a->servers[i], b->servers[i]))
            return true;
    if (str_differs(a->server_name, b->server_name) ||
        str_differs(a->cert, b->cert) || str_differs(a->ca, b->ca) ||
        str_differs(a->key, b->key) || str_differs(a->enroll, b->enroll) ||
        a->n_accept_routes != b->n_accept_routes)
        return true;
    for (unsigned i = 0; i < a->n_accept_routes; i++)
        if (str_differs(a->accept_routes[i], b->accept_routes[i]))
            return true;
    return false;
}

static const struct cfg_uplink *find_uplink(const struct config *c, const char *name)
{
    for (unsigned i = 0; i < c->n_uplinks; i++)
        if (strcmp(c->uplinks[i].name, name) == 0)
            return &c->uplinks[i];
    return NULL;
}

static void add(char *out, size_t len, size_t *used, const char *name, const char *sub)
{
    int w;

    if (*used >= len)
        return;
    w = snprintf(out + *used, len - *used, "%s%s%s%s", *used ? ", " : "", name, sub ? " " : "",
                 sub ? sub : "");
    if (w > 0)
        *used += (size_t)w;
}

size_t config_restart_diff(const struct config *o, const struct config *n, char *out,
                           size_t len)
{
    size_t count = 0, used = 0;
    char name[160];

    if (len)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++) {
        if (!key_differs(&restart_keys[i], o, n))
            continue;
        add(out, len, &used, restart_keys[i].name, NULL);
        count++;
    }
    /* An uplink added, removed or changed: named by its section. */
    for (unsigned i = 0; i < o->n_uplinks; i++) {
        const struct cfg_uplink *u = find_uplink(n, o->uplinks[i].name);
        if (u && !uplink_differs(&o->uplinks[i], u))
            continue;
        snprintf(name, sizeof(name), "[uplink %s]%s", o->uplinks[i].name,
                 u ? "" : " (removed)");
        add(out, len, &used, name, NULL);
        count++;
    }
    for (unsigned i = 0; i < n->n_uplinks; i++) {
        if (find_uplink(o, n->uplinks[i].name))
            continue;
        snprintf(name, sizeof(name), "[uplink %s] (added)", n->uplinks[i].name);
        add(out, len, &used, name, NULL);
        count++;
    }
    /* [trust NAME] sections: the fetcher holds them from the start. */
    if (o->n_trusts != n->n_trusts) {
        add(out, len, &used, "[trust] sections", NULL);
        count++;
    }
    return count;
}
