/* mtlsgw status, kick, and telling the running daemon about changes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "control.h"

/* One request to the daemon; the parsed answer, or NULL with a message. */
static struct json_object *ask(struct console *con, const char *cmd, const char *request,
                               bool quiet_if_absent)
{
    char *answer = NULL, err[512] = "";
    struct json_object *o, *e;
    int rc;

    if (con_load_config(con) != EXIT_OK)
        return NULL;
    rc = control_request(con->cfg->daemon.control_socket, request, &answer, err, sizeof(err));
    if (rc < 0) {
        if (!(quiet_if_absent && (rc == -ENOENT || rc == -ECONNREFUSED)))
            con_err(cmd, "%s%s", err,
                    rc == -ENOENT || rc == -ECONNREFUSED ? " (is mtlsgwd running?)" : "");
        return NULL;
    }
    o = json_tokener_parse(answer);
    free(answer);
    if (!o) {
        con_err(cmd, "the daemon's answer is not JSON");
        return NULL;
    }
    if (json_object_object_get_ex(o, "error", &e)) {
        con_err(cmd, "the daemon says: %s", json_object_get_string(e));
        json_object_put(o);
        return NULL;
    }
    return o;
}

void con_notify_daemon(struct console *con, const char *cmd)
{
    struct json_object *o = ask(con, cmd, "{\"cmd\":\"reload\"}", true), *v;

    if (!o)
        return;
    if (json_object_object_get_ex(o, "ended", &v) && json_object_get_int(v) > 0)
        printf("the running daemon re-read the registry and ended %d session(s)\n",
               json_object_get_int(v));
    else
        printf("the running daemon re-read the registry\n");
    json_object_put(o);
}

static long long get_int(struct json_object *o, const char *a, const char *b)
{
    struct json_object *x, *y;

    if (!json_object_object_get_ex(o, a, &x) || !json_object_object_get_ex(x, b, &y))
        return -1;
    return json_object_get_int64(y);
}

int cmd_status(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct json_object *o, *v, *list;
    bool json = false;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'j')
            return con_usage("status");
        json = true;
    }
    if (optind != argc)
        return con_usage("status");
    o = ask(con, "status", "{\"cmd\":\"status\"}", false);
    if (!o)
        return EXIT_FAIL;
    if (json) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        return EXIT_OK;
    }
    printf("mtlsgwd %s, up %lld s\n",
           json_object_object_get_ex(o, "version", &v) ? json_object_get_string(v) : "?",
           json_object_object_get_ex(o, "uptime", &v) ? (long long)json_object_get_int64(v)
                                                      : -1LL);
    printf("token      %s: %s\n", con->cfg->token.uri,
           json_object_object_get_ex(o, "token", &v) &&
                   json_object_object_get_ex(v, "healthy", &v) && json_object_get_boolean(v)
               ? "healthy"
               : "NOT ANSWERING");
    printf("days left  CA %lld, gateway %lld, CRL %lld\n", get_int(o, "days_left", "ca"),
           get_int(o, "days_left", "gateway"), get_int(o, "days_left", "crl"));
    printf("sessions   management %lld, tunnel %lld, handshaking %lld\n",
           get_int(o, "sessions", "management"), get_int(o, "sessions", "tunnel"),
           get_int(o, "sessions", "handshaking"));
    if (json_object_object_get_ex(o, "sessions_list", &list) &&
        json_object_array_length(list) > 0) {
        printf("\n%-6s %-16s %-8s %-10s %-22s %-8s %-15s %-20s %10s %10s\n", "ID", "PEER",
               "ROLE", "LISTENER", "REMOTE", "IFACE", "ADDRESS", "SINCE", "IN", "OUT");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            struct json_object *s = json_object_array_get_idx(list, i), *f;
#define F(k) (json_object_object_get_ex(s, k, &f) ? json_object_get_string(f) : "-")
            printf("%-6s %-16s %-8s %-10s %-22s %-8s %-15s %-20s %10s %10s\n", F("id"),
                   F("peer"), F("role"), F("listener"), F("remote"), F("interface"),
                   F("address"), F("since"), F("bytes_in"), F("bytes_out"));
#undef F
        }
    }
    json_object_put(o);
    return EXIT_OK;
}

int cmd_kick(struct console *con, int argc, char **argv)
{
    struct json_object *req, *o;
    int rc = EXIT_FAIL;

    if (argc != 2 || argv[1][0] == '-')
        return con_usage("kick");
    req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("kick"));
    json_object_object_add(req, "peer", json_object_new_string(argv[1]));
    o = ask(con, "kick", json_object_to_json_string(req), false);
    if (o) {
        struct json_object *v;
        int n = json_object_object_get_ex(o, "ended", &v) ? json_object_get_int(v) : -1;
        if (n == 0)
            printf("the sessions of %s were ending already\n", argv[1]);
        else if (n > 0)
            printf("ended %d session(s) of %s (not revoked: it may connect again)\n", n,
                   argv[1]);
        else
            printf("ended the sessions of %s (not revoked: it may connect again)\n", argv[1]);
        rc = EXIT_OK;
    }
    json_object_put(o);
    json_object_put(req);
    return rc;
}
