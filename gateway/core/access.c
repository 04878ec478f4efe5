#include "access.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd *pw = getpwuid(uid);

    if (pw)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "%u", (unsigned)uid);
    return buf;
}

/* The fix: a directory on the way only needs search permission for others
 * (o+x reveals no names); what the daemon itself uses is given to its user,
 * never opened to everyone (a PIN file, a token, the registry). */
static void say(const char *path, const struct stat *st, const char *what, bool on_the_way,
                const char *inside, char *why, size_t len)
{
    char me[64], owner[64], fix[PATH_MAX + 64];
    uid_t uid = geteuid();

    user_name(uid, me, sizeof(me));
    user_name(st->st_uid, owner, sizeof(owner));
    if (on_the_way)
        snprintf(fix, sizeof(fix), "chmod o+x %s", path);
    else
        snprintf(fix, sizeof(fix), "chown %s%s %s", S_ISDIR(st->st_mode) ? "-R " : "", me,
                 path);
    snprintf(why, len,
             "user %s (uid %u, the daemon's user) cannot %s %s%s%s (owner %s, mode %04o): "
             "run '%s'",
             me, (unsigned)uid, what, path, inside ? ", on the way to " : "",
             inside ? inside : "", owner, (unsigned)(st->st_mode & 07777), fix);
}

int access_explain(const char *path, int mode, char *why, size_t len)
{
    char buf[PATH_MAX];
    struct stat st;
    size_t n = strlen(path);

    if (n >= sizeof(buf))
        return 0;
    /* Each directory on the way must be searchable first. */
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (stat(buf, &st) == 0 && faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) < 0 &&
            errno == EACCES) {
            say(buf, &st, "enter", true, path, why, len);
            return -EACCES;
        }
        *p = '/';
    }
    if (stat(path, &st) < 0)
        return 0;
    if (faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0 || errno != EACCES)
        return 0;
    say(path, &st,
        (mode & W_OK) ? (S_ISDIR(st.st_mode) ? "write in" : "write")
                      : (S_ISDIR(st.st_mode) ? "list" : "read"),
        false, NULL, why, len);
    return -EACCES;
}

/* directories.tokendir from the SoftHSM config in SOFTHSM2_CONF, if any. */
static int softhsm_tokendir(char *out, size_t len)
{
    const char *conf = getenv("SOFTHSM2_CONF");
    char line[PATH_MAX + 64];
    FILE *f;
    int rc = -ENOENT;

    if (!conf || !(f = fopen(conf, "re")))
        return -ENOENT;
    while (fgets(line, sizeof(line), f)) {
        char *v, *end;
        if (strncmp(line, "directories.tokendir", 20) != 0 || !(v = strchr(line, '=')))
            continue;
        for (v++; *v == ' ' || *v == '\t'; v++)
            ;
        end = v + strcspn(v, "\r\n");
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
        if (*v && (size_t)snprintf(out, len, "%s", v) < len)
            rc = 0;
    }
    fclose(f);
    return rc;
}

int access_explain_token(const char *pin_file, char *why, size_t len)
{
    char dir[PATH_MAX], sub[PATH_MAX];
    struct dirent *e;
    DIR *d;
    int rc;

    if (pin_file && (rc = access_explain(pin_file, R_OK, why, len)) < 0)
        return rc;
    if (softhsm_tokendir(dir, sizeof(dir)) < 0)
        return 0;
    if ((rc = access_explain(dir, R_OK | X_OK, why, len)) < 0)
        return rc;
    if (!(d = opendir(dir)))
        return 0;
    rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' ||
            (size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= sizeof(sub))
            continue;
        rc = access_explain(sub, R_OK | W_OK | X_OK, why, len);
    }
    closedir(d);
    return rc;
}
