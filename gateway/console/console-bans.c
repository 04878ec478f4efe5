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

/* There is no ban book without a running daemon: say so. */
#define BANS_ABSENT " (is mtlsgwd running? bans live in the running daemon only)"

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
    o = con_ask_daemon(con, "bans", json_object_to_json_string(req), BANS_ABSENT);
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
    o = con_ask_daemon(con, "unban", json_object_to_json_string(req), BANS_ABSENT);
    json_object_put(req);
    if (!o)
        return EXIT_FAIL;
    printf("lifted the ban of %s\n", json_object_object_get_ex(o, "unbanned", &v)
                                         ? json_object_get_string(v)
                                         : argv[1]);
    json_object_put(o);
    return EXIT_OK;
}
