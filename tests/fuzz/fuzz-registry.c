/*
 * fuzz-registry: the peer registry (gateway/core/registry.h) from memory, as
 * registry_load() and the daemon's reload read <pki dir>/registry.json;
 * then every use the daemon makes of a parsed registry: lookups, the JSON
 * the API answers with, and a save/parse round trip must give the same
 * peers back. The same bytes go to the other file of the pki dir,
 * invites.json (gateway/core/invite.h: invites_parse, then a save/load round
 * trip).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fuzz.h"
#include "invite.h"
#include "registry.h"

static bool same_peer(const struct peer *a, const struct peer *b)
{
    if (strcmp(a->name, b->name) || a->role != b->role || a->status != b->status ||
        strcmp(a->serial, b->serial) || a->n_networks != b->n_networks)
        return false;
    for (size_t i = 0; i < a->n_networks; i++)
        if (strcmp(a->networks[i], b->networks[i]))
            return false;
    return true;
}

static bool same_invite(const struct invite *a, const struct invite *b)
{
    if (strcmp(a->name, b->name) || a->role != b->role || a->days != b->days ||
        a->created != b->created || a->expires != b->expires || a->used_at != b->used_at ||
        strcmp(a->salt, b->salt) || strcmp(a->hash, b->hash) || a->n_networks != b->n_networks)
        return false;
    for (size_t i = 0; i < a->n_networks; i++)
        if (strcmp(a->networks[i], b->networks[i]))
            return false;
    return true;
}

/* A scratch file on tmpfs (the savers fsync); path must hold 64 bytes. */
static int scratch(char *path, size_t len)
{
    int fd;

    snprintf(path, len, "%s/fuzz-registry.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static void check_invites(const uint8_t *data, size_t size)
{
    struct invites *set = NULL, *again = NULL;
    char err[256], path[64];
    size_t n;

    err[0] = '\0';
    if (invites_parse((const char *)data, size, &set, err, sizeof(err)) < 0) {
        FUZZ_CHECK(set == NULL);
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        return;
    }
    FUZZ_CHECK(set != NULL);
    n = invites_count(set);
    for (size_t i = 0; i < n; i++) {
        struct invite *inv = invites_at(set, i);
        FUZZ_CHECK(inv && inv->name && peer_name_valid(inv->name));
        FUZZ_CHECK(strlen(inv->salt) == 32 && strlen(inv->hash) == 64);
        FUZZ_CHECK(invites_find(set, inv->name) != NULL);
        (void)invite_state_name(invite_state(inv, 1700000000));
        (void)invite_code_matches(inv, "ABCD-EFGH-JKMN-PQRS-TVWX");
    }
    if (scratch(path, sizeof(path)) == 0) {
        if (invites_save(set, path) == 0) {
            FUZZ_CHECK(invites_load(path, &again, err, sizeof(err)) == 0);
            FUZZ_CHECK(invites_count(again) == n);
            for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(same_invite(invites_at(set, i), invites_at(again, i)));
            invites_free(again);
        }
        unlink(path);
    }
    invites_free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct registry *reg = NULL, *again = NULL;
    char err[256], path[64];
    size_t n;

    check_invites(data, size);
    err[0] = '\0';
    if (registry_parse((const char *)data, size, &reg, err, sizeof(err)) < 0) {
        FUZZ_CHECK(reg == NULL);
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        return 0;
    }
    FUZZ_CHECK(reg != NULL);
    n = registry_count(reg);
    for (size_t i = 0; i < n; i++) {
        const struct peer *p = registry_at(reg, i);
        struct json_object *o;

        FUZZ_CHECK(p && p->name && p->serial);
        FUZZ_CHECK(peer_name_valid(p->name));
        FUZZ_CHECK(registry_find_name(reg, p->name) != NULL);
        FUZZ_CHECK(registry_find_serial(reg, p->serial) != NULL);
        if (p->key_id)
            (void)registry_find_key(reg, p->key_id);
        o = registry_peer_json(p, 1700000000);
        if (o) {
            (void)json_object_to_json_string(o);
            json_object_put(o);
        }
    }
    (void)registry_next_crl_number(reg);

    /* What the console and the daemon write, they must read back. On tmpfs:
     * registry_save() fsyncs. */
    if (scratch(path, sizeof(path)) == 0) {
        if (registry_save(reg, path) == 0) {
            FUZZ_CHECK(registry_load(path, &again, err, sizeof(err)) == 0);
            FUZZ_CHECK(registry_count(again) == n);
            for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(same_peer(registry_at(reg, i), registry_at(again, i)));
            registry_free(again);
        }
        unlink(path);
    }
    registry_free(reg);
    return 0;
}
