#include "caps.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static int capget_raw(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};

    return (int)syscall(SYS_capget, &h, d);
}

static int capset_raw(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};

    return (int)syscall(SYS_capset, &h, d);
}

bool caps_have_net_admin(void)
{
    struct __user_cap_data_struct d[2] = {{0}};

    if (capget_raw(d) < 0)
        return false;
    return (d[0].effective & (1u << CAP_NET_ADMIN)) != 0;
}

int caps_drop_to(uid_t uid, gid_t gid, bool keep_net_admin, char *err, size_t errlen)
{
    struct __user_cap_data_struct d[2] = {{0}};
    uint32_t keep = keep_net_admin ? (1u << CAP_NET_ADMIN) : 0;

    /* The bounding set needs CAP_SETPCAP, which we lose with the uid. It is
     * emptied whole, CAP_NET_ADMIN included: it only limits what an execve
     * could gain (we never exec), and a session process forked from this
     * one (which cannot drop anything from it any more) inherits it empty. */
    for (int c = 0; c <= 63; c++) {
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM) {
            snprintf(err, errlen, "cannot drop capability %d from the bounding set: %s", c,
                     strerror(errno));
            return -errno;
        }
    }
    if (geteuid() == 0 && uid != 0) {
        /* The user's supplementary groups too: Debian's SoftHSM, for one,
         * gives its token directory to group softhsm. */
        gid_t groups[64];
        int ngroups = 64;
        struct passwd *pw = getpwuid(uid);

        if (!pw || getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0) {
            groups[0] = gid;
            ngroups = 1;
        }
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups((size_t)ngroups, groups) < 0 ||
            setgid(gid) < 0 || setuid(uid) < 0) {
            snprintf(err, errlen, "cannot switch to uid %u: %s", (unsigned)uid,
                     strerror(errno));
            return -errno;
        }
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (capget_raw(d) < 0) {
        snprintf(err, errlen, "capget: %s", strerror(errno));
        return -errno;
    }
    if (keep && !(d[0].permitted & keep)) {
        snprintf(err, errlen,
                 "CAP_NET_ADMIN is not permitted: start as root, or give the daemon "
                 "AmbientCapabilities=CAP_NET_ADMIN");
        return -EPERM;
    }
    d[0].effective = d[0].permitted = keep;
    d[0].inheritable = 0;
    d[1].effective = d[1].permitted = d[1].inheritable = 0;
    if (capset_raw(d) < 0) {
        snprintf(err, errlen, "capset: %s", strerror(errno));
        return -errno;
    }
    if (!keep_net_admin)
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        snprintf(err, errlen, "prctl: %s", strerror(errno));
        return -errno;
    }
    return 0;
}
