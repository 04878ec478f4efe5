#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool switching;
static uid_t d_uid, inv_uid;
static gid_t d_gid, inv_gid;
static gid_t inv_groups[64], d_groups[64];
static int inv_ngroups = -1, d_ngroups = 1;

int privs_init(const char *user, char *msg, size_t len)
{
    struct passwd *pw;

    inv_uid = geteuid();
    inv_gid = getegid();
    d_uid = inv_uid;
    d_gid = inv_gid;
    switching = false;
    if (inv_uid != 0) {
        snprintf(msg, len, "not root: acting as uid %u", (unsigned)inv_uid);
        return 1;
    }
    errno = 0;
    pw = getpwnam(user);
    if (!pw) {
        snprintf(msg, len,
                 "user '%s' ([daemon] user) does not exist: state files will belong to root "
                 "and the daemon will refuse to start (create the user, or set user = root)",
                 user);
        return 2;
    }
    if (pw->pw_uid == 0) {
        snprintf(msg, len, "daemon user is root");
        return 1;
    }
    d_uid = pw->pw_uid;
    d_gid = pw->pw_gid;
    /* With the user's supplementary groups (SoftHSM's token directory is
     * group softhsm on Debian). */
    d_ngroups = 64;
    if (getgrouplist(pw->pw_name, d_gid, d_groups, &d_ngroups) < 0) {
        d_groups[0] = d_gid;
        d_ngroups = 1;
    }
    inv_ngroups = getgroups(64, inv_groups);
    switching = true;
    return 0;
}

int privs_as_daemon(void)
{
    if (!switching)
        return 0;
    if (setgroups((size_t)d_ngroups, d_groups) < 0 || setegid(d_gid) < 0 || seteuid(d_uid) < 0)
        return -errno;
    return 0;
}

int privs_as_invoker(void)
{
    if (!switching)
        return 0;
    if (seteuid(inv_uid) < 0 || setegid(inv_gid) < 0)
        return -errno;
    if (inv_ngroups >= 0 && setgroups((size_t)inv_ngroups, inv_groups) < 0)
        return -errno;
    return 0;
}

uid_t privs_daemon_uid(void)
{
    return d_uid;
}

gid_t privs_daemon_gid(void)
{
    return d_gid;
}
