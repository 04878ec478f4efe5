/*
 * replay: runs a harness's LLVMFuzzerTestOneInput over files without
 * libFuzzer, so every build (gcc included) replays the seed corpus and the
 * regression inputs of each crash ever found (suite 'fuzz').
 *
 * usage: fuzz-replay-NAME DIR-OR-FILE...   (a missing directory is empty)
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            unsigned char *n = realloc(buf, cap ? cap * 2 : 4096);
            if (!n)
                goto out;
            buf = n;
            cap = cap ? cap * 2 : 4096;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        if (r == 0)
            break;
        len += r;
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        goto out;
    }
    /* A name on stderr first: if the input crashes, the log says which. */
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    /* Hand over an exact-size copy, as libFuzzer does, so ASan sees overreads. */
    {
        unsigned char *exact = malloc(len ? len : 1);
        if (!exact)
            goto out;
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, unsigned *count)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    int rc = 0;

    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        char **nn;
        if (e->d_name[0] == '.')
            continue;
        nn = realloc(names, (n + 1) * sizeof(*names));
        if (!nn)
            break;
        names = nn;
        if (!(names[n] = malloc(strlen(path) + strlen(e->d_name) + 2)))
            break;
        sprintf(names[n++], "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (run_path(names[i], count) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++)
        if (run_path(argv[i], &count) < 0)
            rc = 1;
    printf("replayed %u input(s)%s\n", count, rc ? ", some unreadable" : "");
    return rc;
}
