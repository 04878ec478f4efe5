/*
 * fuzz-config: mtlsgwd.conf (gateway/core/config.h) through config_load(), on a
 * real file as the daemon reads it (SIGHUP re-reads whatever is there), then
 * what the daemon does next with the values: parse the listen addresses and
 * the tunnel pool and routes.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cidr.h"
#include "config.h"
#include "fuzz.h"

static char dir[64], path[sizeof(dir) + sizeof("/mtlsgwd.conf")];
static int fd = -1;

static void cleanup(void)
{
    if (fd < 0)
        return;
    close(fd);
    unlink(path);
    rmdir(dir);
}

static int setup(void)
{
    snprintf(dir, sizeof(dir), "%s/fuzz-config.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/mtlsgwd.conf", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    atexit(cleanup);
    return 0;
}

static void check_listen(const char *s)
{
    struct sockaddr_storage ss;
    unsigned len = 0;
    const char *why = NULL;

    if (!s)
        return;
    if (config_parse_listen(s, &ss, &len, &why) == 0)
        FUZZ_CHECK(len > 0 && len <= sizeof(ss));
    else
        FUZZ_CHECK(why != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    struct cidr c;
    const char *why;
    int rc;

    if (fd < 0 && setup() < 0)
        abort();
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();

    rc = config_load(path, &cfg, &errors);
    if (rc < 0) {
        FUZZ_CHECK(cfg == NULL);
        FUZZ_CHECK(errors != NULL && errors[0] != '\0');
        free(errors);
        return 0;
    }
    FUZZ_CHECK(cfg != NULL);
    FUZZ_CHECK(cfg->mgmt.tls_min == 12 || cfg->mgmt.tls_min == 13);
    FUZZ_CHECK(cfg->tunnel.n_routes <= CFG_MAX_LIST);
    FUZZ_CHECK(cfg->fw.n_gate <= CFG_MAX_LIST);
    FUZZ_CHECK(!cfg->tunnel.listen || cfg->tunnel.pool);
    check_listen(cfg->mgmt.listen);
    check_listen(cfg->tunnel.listen);
    check_listen(cfg->enroll.listen);
    if (cfg->tunnel.pool)
        (void)cidr_parse(cfg->tunnel.pool, &c, &why);
    for (unsigned i = 0; i < cfg->tunnel.n_routes; i++)
        (void)cidr_parse(cfg->tunnel.routes[i], &c, &why);
    for (unsigned i = 0; i < cfg->n_uplinks; i++) {
        FUZZ_CHECK(cfg->uplinks[i].name != NULL);
        FUZZ_CHECK(cfg->uplinks[i].n_servers > 0 && cfg->uplinks[i].servers[0] != NULL);
    }
    free(errors);
    config_free(cfg);
    return 0;
}
