/* mtlsgw bans, mtlsgw unban: the running daemon's ban book (gateway/bans.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "control.h"

/* One request to the daemon; its answer, or NULL with a message naming the
 * socket (there is no ban book without a running daemon). */
static struct json_object *bans_ask(struct console *con, const char *cmd,
                                    struct json_object *req)
{
    const char *path;
    char *answer = NULL, err[512] = "";
    struct json_object *o, *e;
    int rc;

    if (con_load_config(con) != EXIT_OK)
        return NULL;
    path = con->cfg->daemon.control_socket;
    rc = control_request(path, json_object_to_json_string(req), &answer, err, sizeof(err));
    if (rc < 0) {
        con_err(cmd, "%s%s", err,
                rc == -ENOENT || rc == -ECONNREFUSED
                    ? " (is mtlsgwd running? bans live in the running daemon only)"
                    : "");
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

int cmd_bans(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct json_object *req, *o, *list = NULL;
    bool json = false;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'j')
            return con_usage("bans");
        json = true;
    }
    if (optind != argc)
        return con_usage("bans");
    req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("bans"));
    o = bans_ask(con, "bans", req);
    json_object_put(req);
    if (!o)
        return EXIT_FAIL;
    if (!json_object_object_get_ex(o, "bans", &list) ||
        !json_object_is_type(list, json_type_array)) {
        con_err("bans", "the daemon's answer has no list of bans (an older mtlsgwd?)");
        json_object_put(o);
        return EXIT_FAIL;
    }
    if (json) {
        puts(json_object_to_json_string_ext(list, JSON_C_TO_STRING_PRETTY |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
    } else if (json_object_array_length(list) == 0) {
        printf("no address is banned\n");
    } else {
        printf("%-40s %8s %10s\n", "ADDRESS", "FAILURES", "LEFT");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            struct json_object *b = json_object_array_get_idx(list, i), *a, *f, *s;
            json_object_object_get_ex(b, "address", &a);
            json_object_object_get_ex(b, "failures", &f);
            json_object_object_get_ex(b, "seconds_left", &s);
            printf("%-40s %8lld %8lld s\n", a ? json_object_get_string(a) : "?",
                   f ? (long long)json_object_get_int64(f) : -1LL,
                   s ? (long long)json_object_get_int64(s) : -1LL);
        }
        printf("\n'mtlsgw unban ADDRESS' lifts a ban.\n");
    }
    json_object_put(o);
    return EXIT_OK;
}

int cmd_unban(struct console *con, int argc, char **argv)
{
    struct json_object *req, *o, *v;

    if (argc != 2 || argv[1][0] == '-')
        return con_usage("unban");
    req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("unban"));
    json_object_object_add(req, "address", json_object_new_string(argv[1]));
    o = bans_ask(con, "unban", req);
    json_object_put(req);
    if (!o)
        return EXIT_FAIL;
    printf("lifted the ban of %s\n", json_object_object_get_ex(o, "unbanned", &v)
                                         ? json_object_get_string(v)
                                         : argv[1]);
    json_object_put(o);
    return EXIT_OK;
}
